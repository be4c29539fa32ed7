// IPAM: reservations whose pod is gone (leaks), and a range running out.
import { readSubnetFile } from "../../node/subnet-file.ts";
import { DiskStore } from "../../ipam/disk-store.ts";
import { canonicalizeRangeSet, rangeSetCapacity } from "../../ipam/range.ts";
import { formatIP, parseCIDR, formatPrefix } from "../../net/cidr.ts";
import { hostVethName } from "../../dataplane/veth.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Check, ok, skip } from "../check.ts";

function store(dataDir: string, network: string): DiskStore | undefined {
  const dir = join(dataDir, network);
  return existsSync(dir) ? new DiskStore(dir) : undefined;
}

export const ipamChecks: Check[] = [
  {
    id: "ipam.leaks", group: "ipam", title: "every address reservation belongs to a live pod",
    run(ctx) {
      const s = store(ctx.paths.dataDir, ctx.network?.name ?? "gauze");
      if (!s) return ok(`no reservations under ${ctx.paths.dataDir}`);
      // A macvlan pod has no host end to look for: its interface lives only in its namespace.
      if (ctx.network?.plugins.some((p) => p.mode === "macvlan")) return skip(`${s.list().length} reservation(s); macvlan pods have no host veth to match them with (the runtime's CNI GC is the judge)`);
      const links = new Set(ctx.nl.links().map((l) => l.name));
      const leaks = s.list().filter((r) => r.containerId && !links.has(hostVethName(r.containerId, r.ifname || "eth0")));
      if (leaks.length === 0) return ok(`${s.list().length} reservation(s), all with their pod's veth`);
      return {
        status: "warn", evidence: leaks.map((r) => `${formatIP(r.ip)} held by ${r.containerId.slice(0, 12)}/${r.ifname} whose veth is gone`),
        fix: "the runtime's CNI GC releases them (containerd 2 calls it; with older runtimes: CNI_COMMAND=DEL for each container ID)",
      };
    },
  },
  {
    id: "ipam.exhaustion", group: "ipam", title: "the node's pod range has room",
    run(ctx) {
      let env;
      try {
        env = readSubnetFile(ctx.paths.subnetFile);
      } catch {
        return skip("no subnet file");
      }
      const sub = parseCIDR(env.subnet);
      if (!sub) return skip("subnet file unreadable");
      const cap = Number(rangeSetCapacity(canonicalizeRangeSet([{ subnet: formatPrefix(sub.prefix) }], "subnet")));
      const used = store(ctx.paths.dataDir, ctx.network?.name ?? "gauze")?.list().length ?? 0;
      const pct = Math.round((100 * used) / cap);
      if (used >= cap) return { status: "fail", evidence: [`${used} of ${cap} addresses reserved`], fix: "ADD fails with code 11: delete pods, release leaks (ipam.leaks), or use a longer SubnetLen" };
      if (pct >= 90) return { status: "warn", evidence: [`${used} of ${cap} addresses reserved (${pct} %)`], fix: "the node is close to its pod limit" };
      return ok(`${used} of ${cap} addresses reserved`);
    },
  },
];
