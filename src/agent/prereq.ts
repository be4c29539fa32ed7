// Kernel prerequisites the agent checks at start and on every pass (and doctor reports).
import { readFileSync } from "node:fs";

export const BR_NETFILTER = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/** flannel refuses to run without br_netfilter; so does gauze, with flannel's words. */
export function checkBrNetfilter(): string | undefined {
  let v: string;
  try {
    v = readFileSync(BR_NETFILTER, "utf8").trim();
  } catch {
    return `Failed to check br_netfilter: stat ${BR_NETFILTER}: no such file or directory (modprobe br_netfilter)`;
  }
  return v === "1" ? undefined : `br_netfilter: ${BR_NETFILTER} is ${v}, not 1 (sysctl -w net.bridge.bridge-nf-call-iptables=1)`;
}

