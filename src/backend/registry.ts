// Every backend gauze has, registered by name (each backend module registers itself when it
// loads). The agent, doctor and uninstall make their backends through this module, so all of
// them know every type; nothing else needs to import the backends one by one.
import "./vxlan.ts";
import "./host-gw.ts";
import "./macvlan.ts";
import "./wireguard.ts";

export { backendTypes } from "./backend.ts";
export { backendDevices, createNetworkBackend } from "./dual-stack.ts";
