// Per-attachment masquerade (ipMasq: true), as the reference bridge plugin does it: a chain
// GZ-<hash> that accepts traffic to the pod's own subnet and masquerades the rest, jumped to
// from nat POSTROUTING for the pod's source address. Applied with one iptables-restore.
import { sha256Hex } from "../util/builtin.ts";
import { runSync } from "../kernel/spawn.ts";
import { parseCIDR, formatPrefix } from "../ipam/cidr.ts";

export function masqChain(network: string, containerId: string): string {
  return "GZ-" + sha256Hex(`${network}\u0000${containerId}`).slice(0, 16).toUpperCase();
}

function restore(family: 4 | 6, rules: string): void {
  const bin = family === 4 ? "iptables-restore" : "ip6tables-restore";
  const r = runSync([bin, "--noflush", "-w"], { input: rules });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr.trim()}`);
}

export function addMasquerade(network: string, containerId: string, addresses: string[]): void {
  const chain = masqChain(network, containerId);
  for (const family of [4, 6] as const) {
    const mine = addresses.map((a) => parseCIDR(a)!).filter((c) => c.host.family === family);
    if (mine.length === 0) continue;
    const multicast = family === 4 ? "224.0.0.0/4" : "ff00::/8";
    const lines = ["*nat", `:${chain} - [0:0]`];
    for (const c of mine) lines.push(`-A ${chain} -d ${formatPrefix(c.prefix)} -j ACCEPT`);
    lines.push(`-A ${chain} ! -d ${multicast} -j MASQUERADE`);
    const comment = `gauze:${network}:${containerId}`.slice(0, 255);
    for (const c of mine) {
      lines.push(`-A POSTROUTING -s ${formatPrefix({ ip: c.host, bits: family === 4 ? 32 : 128 })} -m comment --comment "${comment}" -j ${chain}`);
    }
    lines.push("COMMIT", "");
    restore(family, lines.join("\n"));
  }
}

/** Removes the chain and its POSTROUTING jumps; a no-op when they are not there. */
export function removeMasquerade(network: string, containerId: string): void {
  const chain = masqChain(network, containerId);
  for (const family of [4, 6] as const) {
    const save = runSync([family === 4 ? "iptables" : "ip6tables", "-w", "-t", "nat", "-S"]);
    if (save.status !== 0) continue; // no iptables for this family: nothing of ours can be there
    const lines = save.stdout.split("\n");
    const jumps = lines.filter((l) => l.startsWith("-A POSTROUTING ") && l.endsWith(`-j ${chain}`));
    const exists = lines.includes(`-N ${chain}`);
    if (!exists && jumps.length === 0) continue;
    const rules = ["*nat", ...jumps.map((l) => "-D" + l.slice(2))];
    if (exists) rules.push(`:${chain} - [0:0]`, `-X ${chain}`);
    rules.push("COMMIT", "");
    restore(family, rules.join("\n"));
  }
}
