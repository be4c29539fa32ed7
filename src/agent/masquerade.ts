// Node-level masquerade and forwarding for the pod network, flannel-style, in chains of our own:
// nat GAUZE-POSTRTG (pod -> pod: untouched; pod -> outside: MASQUERADE --random-fully) and
// filter GAUZE-FWD (accept the pod network in FORWARD, whatever the policy, but only on the pod
// bridge: what comes from the pods on it, and what goes to the pods on it; nothing else the node
// forwards). One iptables-save to look, one iptables-restore --noflush to apply; nothing outside
// our chains but two jumps.
// Dual-stack: the same chains in ip6tables for the IPv6 pod network.
import { type Family, iptablesRestore, iptablesSave } from "../kernel/iptables.ts";

const NAT_CHAIN = "GAUZE-POSTRTG";
const FWD_CHAIN = "GAUZE-FWD";
const NAT_JUMP = `-A POSTROUTING -m comment --comment "gauze: masquerade pod traffic leaving the pod network" -j ${NAT_CHAIN}`;
const FWD_JUMP = `-A FORWARD -m comment --comment "gauze: forward the pod network" -j ${FWD_CHAIN}`;

/** Both tables in one iptables-save (one process instead of two). */
function save(netns?: string, family: Family = 4): string {
  return iptablesSave(undefined, { family, ...(netns ? { netns } : {}) });
}

/** The FORWARD rules for the pod network on the pod bridge (doctor checks for them by these lines). */
export function forwardRules(network: string, bridge: string): string[] {
  return [`-A ${FWD_CHAIN} -s ${network} -i ${bridge} -j ACCEPT`, `-A ${FWD_CHAIN} -d ${network} -o ${bridge} -j ACCEPT`];
}

export function ensureMasquerade(network: string, masquerade: boolean, bridge: string, netns?: string, family: Family = 4): void {
  const current = save(netns, family);
  const nat = ["*nat", `:${NAT_CHAIN} - [0:0]`, `-A ${NAT_CHAIN} -s ${network} -d ${network} -j RETURN`];
  if (masquerade) nat.push(`-A ${NAT_CHAIN} -s ${network} ! -d ${family === 4 ? "224.0.0.0/4" : "ff00::/8"} -j MASQUERADE --random-fully`);
  if (!current.includes(NAT_JUMP)) nat.push(NAT_JUMP);
  const filter = ["*filter", `:${FWD_CHAIN} - [0:0]`, ...forwardRules(network, bridge)];
  if (!current.includes(FWD_JUMP)) filter.push(FWD_JUMP);
  iptablesRestore([...nat, "COMMIT", ...filter, "COMMIT", ""].join("\n"), { family, ...(netns ? { netns } : {}) });
}

export function removeMasquerade(family: Family = 4): void {
  let current: string;
  try {
    current = save(undefined, family);
  } catch {
    return;
  }
  const nat = ["*nat"];
  if (current.includes(NAT_JUMP)) nat.push(NAT_JUMP.replace("-A ", "-D "));
  if (current.includes(`:${NAT_CHAIN} `)) nat.push(`:${NAT_CHAIN} - [0:0]`, `-X ${NAT_CHAIN}`);
  const filter = ["*filter"];
  if (current.includes(FWD_JUMP)) filter.push(FWD_JUMP.replace("-A ", "-D "));
  if (current.includes(`:${FWD_CHAIN} `)) filter.push(`:${FWD_CHAIN} - [0:0]`, `-X ${FWD_CHAIN}`);
  if (nat.length + filter.length > 2) iptablesRestore([...nat, "COMMIT", ...filter, "COMMIT", ""].join("\n"), { family });
}
