// The eBPF datapath (`"Datapath": "ebpf"`) on this node: from_net on the underlay and tunnel
// devices and from_pod on every pod veth the pod records name (read from the kernel and the
// pins, not from the agent's word), the endpoints map against the pod records and the remotes
// count against the leases, and a warn when the agent wanted the datapath and fell back.
import { BpfDatapath } from "../../kernel/bpf/datapath.ts";
import { podRecordDir, readPodRecords } from "../../node/pod-record.ts";
import { type Check, type Outcome, ok, skip } from "../check.ts";
import { type DoctorContext, fixCommands } from "../context.ts";

/**
 * On a classic node: no datapath program left on a pod veth or the node's links (an agent that
 * switched back, or one killed before it cleaned up), since one would move pod packets past the
 * bridge, netfilter and NetworkPolicy.
 */
function classicLeftovers(ctx: DoctorContext): Outcome {
  if (!ctx.agent) return skip("no agent report: which datapath the node runs is unknown");
  const left: string[] = [];
  const ifaces = new Set<string>(readPodRecords(podRecordDir(ctx.paths.subnetFile)).flatMap((r) => (r.hostIface ? [r.hostIface] : [])));
  for (const l of ctx.nl.links()) if (!l.name.startsWith("lo")) ifaces.add(l.name);
  for (const name of ifaces) {
    const l = ctx.nl.link(name);
    if (!l) continue;
    let progs: string[];
    try {
      progs = BpfDatapath.programsAt(l.index);
    } catch (e) {
      return skip(`cannot list the programs on ${name}: ${(e as Error).message}`);
    }
    if (progs.length) left.push(`${progs.join(", ")} at the ingress of ${name}: its packets skip the bridge and netfilter, NetworkPolicy included`);
  }
  if (left.length) return { status: "fail", evidence: left, fix: `${fixCommands(ctx).restartAgent} (an agent on the classic datapath takes the eBPF datapath's programs off at start)` };
  return ok(`Datapath classic: no eBPF datapath program on any of ${ifaces.size} link(s)`);
}

export const datapathChecks: Check[] = [
  {
    id: "datapath.programs", group: "datapath", title: "the eBPF datapath's programs are attached (from_net on the underlay and tunnels, from_pod on every pod veth)",
    run(ctx) {
      const f = ctx.agent?.features?.datapath, d = ctx.agent?.datapath;
      if (f && !f.on) return { status: "warn", evidence: [`the agent wanted the eBPF datapath and stays classic: ${f.why ?? "off"}`], fix: f.fix ?? "see the agent's log" };
      if (!d?.on) return classicLeftovers(ctx);
      const o = { pinDir: d.pinDir, ...(d.mode ? { mode: d.mode } : {}) };
      const missing: string[] = [];
      for (const dev of d.netDevices ?? []) {
        const l = ctx.nl.link(dev);
        if (l && !BpfDatapath.netAttachedPinned(o, l.index)) missing.push(`from_net is not attached at the ingress of ${dev}`);
      }
      let pods = 0;
      for (const r of readPodRecords(podRecordDir(ctx.paths.subnetFile))) {
        if (!r.hostIface) continue;
        const l = ctx.nl.link(r.hostIface);
        if (!l) continue;
        pods++;
        if (!BpfDatapath.podAttached(o, l.index)) missing.push(`from_pod is not attached at the ingress of ${r.hostIface} (pod ${r.ips.join(", ")}): its packets take the classic path`);
      }
      if (missing.length) return { status: "fail", evidence: missing, fix: `${fixCommands(ctx).restartAgent} (the agent re-attaches within a second while it runs: if it did not, it is not running, see agent.running)` };
      return ok(`${d.mode ?? "tc"}: from_net on ${(d.netDevices ?? []).join(", ")}, from_pod on ${pods} pod veth(s)`);
    },
  },
  {
    id: "datapath.maps", group: "datapath", title: "the eBPF datapath's maps agree with the pod records and the leases",
    run(ctx) {
      const d = ctx.agent?.datapath;
      if (!d?.on) return ok("Datapath classic: no maps to keep");
      let eps;
      try {
        eps = BpfDatapath.endpointsPinned(d.pinDir);
      } catch (e) {
        return { status: "fail", evidence: [(e as Error).message], fix: `${fixCommands(ctx).restartAgent} (it loads and pins the datapath at start)` };
      }
      const problems: string[] = [];
      let count = 0;
      try {
        const have = new Map(eps.map.entries());
        count = have.size;
        const want = new Set<string>();
        for (const r of readPodRecords(podRecordDir(ctx.paths.subnetFile))) {
          if (!r.hostIface) continue;
          const l = ctx.nl.link(r.hostIface);
          if (!l) continue;
          for (const a of r.ips) {
            const ip = a.includes("/") ? a.slice(0, a.indexOf("/")) : a;
            want.add(ip);
            const e = have.get(ip);
            if (!e) problems.push(`endpoint ${ip} (${r.hostIface}) is missing`);
            else if (e.ifindex !== l.index) problems.push(`endpoint ${ip} points to ifindex ${e.ifindex}, ${r.hostIface} is ${l.index}`);
            else if (r.podMac && e.mac.toLowerCase() !== r.podMac.toLowerCase()) problems.push(`endpoint ${ip} has MAC ${e.mac}, the pod's is ${r.podMac}`);
          }
        }
        for (const ip of have.keys()) if (!want.has(ip)) problems.push(`endpoint ${ip} has no pod record on this node`);
      } finally {
        eps.close();
      }
      const peers = ctx.agent?.peerLeases?.length;
      if (peers !== undefined && d.remotes !== undefined && d.remotes < peers) problems.push(`remotes holds ${d.remotes} subnet(s), the registry has ${peers} peer lease(s)`);
      if (problems.length) return { status: "fail", evidence: problems, fix: `${fixCommands(ctx).restartAgent} (it rewrites both maps from the pod records and the leases; a running agent puts drift back within a second)` };
      return ok(`${count} endpoint(s) as the pod records say, ${d.remotes ?? 0} remote(s) for ${peers ?? 0} peer lease(s)`);
    },
  },
];
