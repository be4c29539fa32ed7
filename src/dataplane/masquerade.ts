// Per-attachment masquerade (ipMasq: true), as the reference bridge plugin does it: a chain
// GZ-<hash> that accepts traffic to the pod's own subnet and masquerades the rest, jumped to
// from nat POSTROUTING for the pod's source address. One iptables-restore per address family.
import { sha256Hex } from "../util/builtin.ts";
import { iptablesRestore, iptablesSave } from "../kernel/iptables.ts";
import { parseCIDR, formatPrefix } from "../net/cidr.ts";

export function masqChain(network: string, containerId: string): string {
  return "GZ-" + sha256Hex(`${network}\u0000${containerId}`).slice(0, 16).toUpperCase();
}

export const MASQ_COMMENT_PREFIX = "gauze:";

export function addMasquerade(network: string, containerId: string, addresses: string[]): void {
  const chain = masqChain(network, containerId);
  const done: (4 | 6)[] = [];
  try {
    for (const family of [4, 6] as const) {
      const mine = addresses.map((a) => parseCIDR(a)!).filter((c) => c.host.family === family);
      if (mine.length === 0) continue;
      const multicast = family === 4 ? "224.0.0.0/4" : "ff00::/8";
      const lines = ["*nat", `:${chain} - [0:0]`];
      for (const c of mine) lines.push(`-A ${chain} -d ${formatPrefix(c.prefix)} -j ACCEPT`);
      lines.push(`-A ${chain} ! -d ${multicast} -j MASQUERADE`);
      const comment = `${MASQ_COMMENT_PREFIX}${network}:${containerId}`.slice(0, 255);
      for (const c of mine) {
        lines.push(`-A POSTROUTING -s ${formatPrefix({ ip: c.host, bits: family === 4 ? 32 : 128 })} -m comment --comment "${comment}" -j ${chain}`);
      }
      lines.push("COMMIT", "");
      iptablesRestore(lines.join("\n"), { family });
      done.push(family);
    }
  } catch (e) {
    // One family failed (no ip6tables, say): take back what the other got.
    for (const family of done) removeMasqueradeFamily(chain, family);
    throw e;
  }
}

function removeMasqueradeFamily(chain: string, family: 4 | 6): void {
  let save: string;
  try {
    save = iptablesSave("nat", { family });
  } catch {
    return; // no iptables for this family: nothing of ours can be there
  }
  const lines = save.split("\n");
  const jumps = lines.filter((l) => l.startsWith("-A POSTROUTING ") && l.endsWith(`-j ${chain}`));
  const exists = lines.some((l) => l.startsWith(`:${chain} `));
  if (!exists && jumps.length === 0) return;
  const rules = ["*nat", ...jumps.map((l) => "-D" + l.slice(2))];
  if (exists) rules.push(`:${chain} - [0:0]`, `-X ${chain}`);
  rules.push("COMMIT", "");
  iptablesRestore(rules.join("\n"), { family });
}

/** Removes the chain and its POSTROUTING jumps; a no-op when they are not there. */
export function removeMasquerade(network: string, containerId: string): void {
  const chain = masqChain(network, containerId);
  for (const family of [4, 6] as const) removeMasqueradeFamily(chain, family);
}

/** Container IDs of this network that have masquerade rules (for GC). */
export function masqueradedContainers(network: string): string[] {
  let save: string;
  try {
    save = iptablesSave("nat");
  } catch {
    return [];
  }
  const prefix = `${MASQ_COMMENT_PREFIX}${network}:`;
  const out = new Set<string>();
  for (const line of save.split("\n")) {
    if (!line.startsWith("-A POSTROUTING ")) continue;
    const m = /--comment "?([^" ]+)"? -j GZ-[0-9A-F]+$/.exec(line);
    if (m && m[1]!.startsWith(prefix)) out.add(m[1]!.slice(prefix.length));
  }
  return [...out];
}
