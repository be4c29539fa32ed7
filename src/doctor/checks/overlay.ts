// The overlay: the VXLAN device as configured, an MTU chain that fits (and a path that carries
// it), every other node's entries as the backend's own plan says they should be, UDP 8472
// getting through, and the checksum-offload trap. The kernel is read through the same netlink
// client the agent programs it with, and the peers are judged by the same plan.
import { runSync } from "../../kernel/spawn.ts";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { readOffloads, setOffload } from "../../kernel/ethtool.ts";
import { kernelVersion } from "../../kernel/sysctl.ts";
import { checksumOffloadBroken } from "../../backend/vxlan.ts";
import { iptablesSave } from "../../kernel/iptables.ts";
import type { Link, Rtnl } from "../../kernel/netlink/index.ts";
import { VXLAN_OVERHEAD } from "../../backend/vxlan.ts";
import { type Backend, type Plan, applyPlan } from "../../backend/backend.ts";
import { createNetworkBackend } from "../../backend/registry.ts";
import { parseCIDR } from "../../net/cidr.ts";
import { readNodeLink } from "../../agent/node-link.ts";
import type { Lease } from "../../store/registry.ts";
import type { DoctorContext } from "../context.ts";
import { type Check, ok, skip } from "../check.ts";
import { fixCommands } from "../context.ts";

function vxlanOnly(ctx: DoctorContext): string | undefined {
  if (!ctx.agent?.device) return "no agent report: nothing to compare the overlay with";
  if (ctx.agent.backend !== "vxlan") return `backend ${ctx.agent.backend}: no VXLAN device`;
  return undefined;
}

/** The agent's backend, rebuilt from its report, and the peers it last saw. */
export function agentBackend(ctx: DoctorContext): { backend: Backend; peers: Lease[] } {
  const a = ctx.agent!;
  const link = readNodeLink(ctx.nl, a.iface ?? "eth0");
  // Dual-stack: the IPv6 side too, from the report's IPv6 network, subnet length and node address.
  const v6 = a.ipv6Network ? parseCIDR(a.ipv6Network)?.prefix : undefined;
  const v6Len = (a.backendOptions?.ipv6 as { subnetLen?: number } | undefined)?.subnetLen ?? 64;
  const prefixLen6 = a.nodeIpv6 ? ctx.nl.addrs({ index: link.index, name: link.iface }, 6).find((x) => x.address === a.nodeIpv6)?.prefixLen : undefined;
  const network = parseCIDR(a.network ?? "")?.prefix;
  if (!network) throw new Error(`the agent's status names no pod network (${JSON.stringify(a.network)}): is the agent on this node running?`);
  const backend = createNetworkBackend({
    type: a.backend ?? "vxlan", link, network, config: a.backendConfig ?? (a.backendOptions ? toConfig(a.backendOptions) : {}),
    ...(v6 && a.nodeIpv6 ? { ipv6: { network: v6, subnetLen: v6Len, self: a.node, link: { ...link, ip: a.nodeIpv6, ...(prefixLen6 !== undefined ? { prefixLen: prefixLen6 } : {}) } } } : {}),
  });
  const peers: Lease[] = (a.peerLeases ?? []).map((p) => ({
    node: p.node, subnet: p.subnet, publicIp: p.publicIp, backendType: p.backendType ?? a.backend ?? "vxlan",
    backendData: { ...(p.vtepMac ? { vtepMac: p.vtepMac } : {}), ...(p.publicKey ? { publicKey: p.publicKey } : {}), ...(p.v6VtepMac ? { v6VtepMac: p.v6VtepMac } : {}) }, expiresAt: 0,
    ...(p.ipv6Subnet ? { ipv6Subnet: p.ipv6Subnet } : {}), ...(p.publicIpv6 ? { publicIpv6: p.publicIpv6 } : {}),
  }));
  return { backend, peers };
}

/** The status report's options back into the Backend block's spelling (VNI, Port). */
function toConfig(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // An older agent's report: its option names, back to the config's.
  const names: Record<string, string> = { vni: "VNI", port: "Port", directRouting: "DirectRouting" };
  for (const [k, v] of Object.entries(o)) if (k !== "ipv6") out[names[k] ?? k] = v;
  return out;
}

/** What the backend would change on this node now: empty when every peer is programmed. */
export function peerPlan(ctx: DoctorContext): { backend: Backend; plan: Plan; peers: Lease[] } {
  const { backend, peers } = agentBackend(ctx);
  return { backend, peers, plan: backend.plan(backend.read(ctx.nl), peers) };
}

function ping(argv: string[]): boolean {
  return runSync(["ping", "-n", "-q", "-c", "1", "-W", "1", ...argv]).status === 0;
}

function link(nl: Rtnl, name: string): Link | undefined {
  return nl.link(name);
}

export const overlayChecks: Check[] = [
  {
    id: "overlay.device", group: "overlay", title: "the VXLAN device is there as configured",
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      const a = ctx.agent!;
      const l = link(ctx.nl, a.device!);
      if (!l) return { status: "fail", evidence: [`${a.device} does not exist`], fix: `${fixCommands(ctx).restartAgent} (it creates the device; a running agent re-creates it within a second)` };
      const d = l.vxlan;
      const want = { id: a.vni ?? 1, port: a.port ?? 8472, local: a.nodeIp };
      const problems: string[] = [];
      if (l.kind !== "vxlan") problems.push(`${a.device} is a ${l.kind ?? "plain device"}, not vxlan`);
      if (d?.vni !== want.id) problems.push(`VNI ${d?.vni}, configured ${want.id}`);
      if (d?.port !== want.port) problems.push(`UDP port ${d?.port}, configured ${want.port}`);
      if (d?.local !== want.local) problems.push(`local ${d?.local}, the node's IP is ${want.local}`);
      if (d?.learning !== false) problems.push("learning is on (gauze programs the FDB itself)");
      if (!l.up) problems.push(`${a.device} is down`);
      // Dual-stack: the IPv6 tunnel, same VNI and port, from the node's IPv6 address.
      const l6 = a.device6 ? link(ctx.nl, a.device6) : undefined;
      if (a.device6 && !l6) problems.push(`${a.device6} (the IPv6 tunnel) does not exist`);
      if (l6 && (l6.vxlan?.vni !== want.id || l6.vxlan?.port !== want.port || l6.vxlan?.local !== a.nodeIpv6 || !l6.up)) {
        problems.push(`${a.device6}: VNI ${l6.vxlan?.vni}, UDP ${l6.vxlan?.port}, local ${l6.vxlan?.local}${l6.up ? "" : ", down"}; configured VNI ${want.id}, UDP ${want.port}, local ${a.nodeIpv6}`);
      }
      if (problems.length) return { status: "fail", evidence: problems, fix: `delete ${[a.device, a.device6].filter(Boolean).join(" and ")} and restart the agent: ${fixCommands(ctx).restartAgent} (it re-creates them as configured)` };
      return ok(`${a.device}: VNI ${d?.vni}, UDP ${d?.port}, local ${d?.local}, nolearning, MAC ${l.mac}${l6 ? `; ${a.device6}: local ${l6.vxlan?.local}, MAC ${l6.mac}` : ""}`);
    },
  },
  {
    id: "overlay.mtu", group: "overlay", title: "MTUs fit: underlay >= VXLAN + 50 >= bridge >= pods, and the underlay carries it",
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      const a = ctx.agent!;
      const under = link(ctx.nl, a.iface ?? "eth0");
      const dev = link(ctx.nl, a.device!);
      const br = link(ctx.nl, "cni0");
      const problems: string[] = [];
      const facts: string[] = [];
      if (under && dev) {
        facts.push(`${under.name} ${under.mtu}, ${dev.name} ${dev.mtu}${br ? `, cni0 ${br.mtu}` : ""}`);
        if (under.mtu < dev.mtu + VXLAN_OVERHEAD) problems.push(`${under.name} MTU ${under.mtu} < ${dev.name} MTU ${dev.mtu} + ${VXLAN_OVERHEAD}: full-size pod packets are fragmented or dropped`);
        if (br && br.mtu > dev.mtu) problems.push(`cni0 MTU ${br.mtu} > ${dev.name} MTU ${dev.mtu}`);
      }
      if (br) {
        for (const p of ctx.nl.links(br).filter((p) => p.mtu > br.mtu)) problems.push(`pod veth ${p.name} MTU ${p.mtu} > cni0 MTU ${br.mtu}`);
      }
      // Active probe: does the path to each node carry a full-size underlay packet?
      if (under) {
        const size = under.mtu - 28;
        for (const p of a.peerLeases ?? []) {
          if (!ping(["-M", "do", "-s", String(size), p.publicIp]) && ping(["-s", "56", p.publicIp])) {
            problems.push(`the path to ${p.node} (${p.publicIp}) drops ${under.mtu}-byte packets that small ones pass: an MTU black hole on the underlay`);
          }
        }
        facts.push(`${(a.peerLeases ?? []).length} peer path(s) probed with ${under.mtu}-byte packets`);
      }
      if (problems.length) return { status: "fail", evidence: problems, fix: "make the underlay MTU the same on every node and switch port, or lower the pod MTU: the VXLAN device MTU follows the node's interface MTU - 50 at agent start" };
      return ok(...facts);
    },
  },
  {
    id: "overlay.peers", group: "overlay", title: "every other node has its route, neighbour and FDB entry",
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      const { plan } = peerPlan(ctx);
      const skipped = plan.skipped.map((s) => `${s.node} (${s.subnet}): lease skipped: ${s.why}`);
      if (plan.changes.length === 0) {
        const names = (ctx.agent!.peerLeases ?? []).map((p) => `${p.node} ${p.subnet}`).join(", ") || "none";
        return skipped.length ? { status: "warn", evidence: [`${plan.peers} peer(s) programmed`, ...skipped], fix: "fix or remove the leases named: the agent cannot program them" } : ok(`${plan.peers} peer(s) programmed: ${names}`);
      }
      const evidence = plan.changes.map((c) => `${c.peer || "no peer"}: ${c.op === "add" ? `${c.text} missing or different` : `${c.text} is stale (no lease for it)`}`);
      return {
        status: "fail", evidence: [...evidence, ...skipped],
        fix: `${fixCommands(ctx).doctorFix} applies the agent's own plan; a running agent repairs this by itself within a second of the change`,
        repair: () => {
          const again = peerPlan(ctx);
          const r = applyPlan(ctx.nl, again.plan, () => undefined);
          return `applied the backend's plan for ${again.plan.peers} peer(s): ${r.added} entries added, ${r.removed} removed${r.failed ? `, ${r.failed} refused` : ""}`;
        },
      };
    },
  },
  {
    id: "overlay.vxlan-port", group: "overlay", title: `UDP to every other node's VXLAN port gets through`,
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      // Ping each peer's VTEP address through the overlay: it only answers if UDP gets there and back.
      const { plan, peers } = peerPlan(ctx);
      const broken = new Set(plan.changes.map((c) => c.peer)); // broken entries: overlay.peers
      const probed = peers.filter((p) => p.backendData.vtepMac && !broken.has(p.node));
      const dead = probed.filter((p) => !ping(["-I", ctx.agent!.device!, p.subnet.split("/")[0]!]));
      const port = ctx.agent!.port ?? 8472;
      if (dead.length === 0) return ok(`${probed.length} peer VTEP(s) answered through UDP ${port}`);
      return {
        status: "fail", evidence: dead.map((p) => `${p.node} (${p.publicIp}): no answer from its VTEP ${p.subnet.split("/")[0]} over UDP ${port}, while its entries are right`),
        fix: `allow UDP ${port} between all nodes, both ways (cloud security groups, iptables INPUT on the nodes: iptables -I INPUT -p udp --dport ${port} -j ACCEPT)`,
      };
    },
  },
  {
    id: "overlay.checksum-offload", group: "overlay", title: "VXLAN checksum offload: off only where the kernel has the --random-fully checksum bug, on elsewhere",
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      const dev = ctx.agent!.device!;
      const off = readOffloads(dev);
      if (!off) return skip("ethtool not available");
      let randomFully = false;
      try {
        randomFully = iptablesSave("nat").includes("--random-fully");
      } catch {
        // no iptables: no masquerade either
      }
      const broken = checksumOffloadBroken(kernelVersion());
      const release = kernelVersion()?.join(".") ?? "unknown";
      if (!broken && off["tx-checksum-ip-generic"] === false) {
        return {
          status: "warn", evidence: [`${dev} has tx-checksum-ip-generic off on kernel ${release}, which has the checksum fix`, "without it the kernel cannot segment TCP on the device: pod-to-pod throughput drops to about a fifth"],
          fix: `ethtool -K ${dev} tx-checksum-ip-generic on (the gauze agent does it when it sets the device up)`,
          repair: () => (setOffload(dev, "tx-checksum-ip-generic", true) ? `ethtool -K ${dev} tx-checksum-ip-generic on` : "ethtool refused"),
        };
      }
      if (!(broken && off["tx-checksum-ip-generic"] && randomFully)) return ok(`${dev} tx-checksum-ip-generic ${off["tx-checksum-ip-generic"] ? "on" : "off"}; kernel ${release} ${broken ? "has" : "does not have"} the VXLAN checksum bug; --random-fully ${randomFully ? "in use" : "not in use"}`);
      return {
        status: "warn", evidence: [`${dev} has tx-checksum-ip-generic on, nat rules use MASQUERADE --random-fully, and kernel ${release} predates the fix (5.7)`, "known kernel problem: bad outer checksums, connections through the overlay stall for about 63 s"],
        fix: `ethtool -K ${dev} tx-checksum-ip-generic off`,
        repair: () => (setOffload(dev, "tx-checksum-ip-generic", false) ? `ethtool -K ${dev} tx-checksum-ip-generic off` : "ethtool refused"),
      };
    },
  },
  {
    id: "overlay.macvlan-host", group: "overlay", title: "macvlan: whether this node reaches its own pods",
    run(ctx) {
      if (ctx.agent?.backend !== "macvlan") return ok(`backend ${ctx.agent?.backend ?? "unknown"}: pods hang off the node's bridge, which the node reaches them through`);
      // A pod of this node: an address IPAM reserved in gauze's network.
      let pod: string | undefined;
      try {
        pod = readdirSync(join(ctx.paths.dataDir, ctx.network?.name ?? "gauze")).find((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
      } catch {
        // no reservations yet
      }
      const rule = "the kernel keeps a macvlan's parent and its macvlans apart: traffic between this node's own address and its pods does not pass";
      if (!pod) return ok(`no pod on this node yet (when there is one: ${rule})`);
      const r = runSync(["ping", "-c", "1", "-W", "1", pod]);
      if (r.status === 0) return ok(`this node reaches its pod ${pod} (a host-side macvlan or another path is in place)`);
      return {
        status: "warn",
        evidence: [`this node cannot reach its own pod ${pod}: ${rule}`, "kubelet's HTTP and TCP probes to pods on this node fail, and so does traffic between hostNetwork pods and this node's pods; pods on other nodes are not affected"],
        fix: `give the node a macvlan of its own and route its pods through it: ip link add gauze-mvh link ${ctx.agent.device ?? "eth0"} type macvlan mode bridge; ip link set gauze-mvh up; ip route add ${ctx.agent.subnet ?? "<this node's subnet>"} dev gauze-mvh (or use a backend with a bridge: vxlan, host-gw)`,
      };
    },
  },
];
