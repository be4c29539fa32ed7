// NIC offload features through ethtool (-k to read, -K to set), with argument arrays. ethtool
// is optional: without it, reads say "unknown" and sets report that they could not.
import { runSync } from "./spawn.ts";

/** Feature name -> on/off for a device, or undefined when ethtool cannot say. */
export function readOffloads(dev: string, netns?: string): Record<string, boolean> | undefined {
  const r = runSync(["ethtool", "-k", dev], netns ? { netns } : {});
  if (r.status !== 0) return undefined;
  const out: Record<string, boolean> = {};
  for (const line of r.stdout.split("\n")) {
    const m = /^\s*([a-z0-9-]+): (on|off)/.exec(line);
    if (m) out[m[1]!] = m[2] === "on";
  }
  return out;
}

/** Sets one feature if it differs; false when ethtool is missing or refused. */
export function setOffload(dev: string, feature: string, on: boolean, netns?: string): boolean {
  const cur = readOffloads(dev, netns);
  if (!cur) return false;
  if (cur[feature] === on) return true;
  return runSync(["ethtool", "-K", dev, feature, on ? "on" : "off"], netns ? { netns } : {}).status === 0;
}
