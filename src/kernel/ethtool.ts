// NIC offload features through ethtool (-k to read, -K to set), with argument arrays.
import { runSync } from "./spawn.ts";

/** Feature name -> on/off for a device, or undefined when ethtool cannot say. */
export function readOffloads(dev: string, netns?: string): Record<string, boolean> | undefined {
  const r = runSync([...(netns ? ["nsenter", `--net=${netns}`] : []), "ethtool", "-k", dev]);
  if (r.status !== 0) return undefined;
  const out: Record<string, boolean> = {};
  for (const line of r.stdout.split("\n")) {
    const m = /^\s*([a-z0-9-]+): (on|off)/.exec(line);
    if (m) out[m[1]!] = m[2] === "on";
  }
  return out;
}

/** Sets one feature if it differs; false when ethtool is missing or refused. */
export function setOffload(dev: string, feature: string, on: boolean): boolean {
  const cur = readOffloads(dev);
  if (!cur) return false;
  if (cur[feature] === on) return true;
  return runSync(["ethtool", "-K", dev, feature, on ? "on" : "off"]).status === 0;
}
