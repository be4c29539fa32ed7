// The overlay: the VXLAN device as configured, an MTU chain that fits (and a path that carries
// it), every other node's route/neighbour/FDB entry, UDP 8472 getting through, and the
// checksum-offload trap.
import { type FdbEntry, type IpLink, type IpNeigh, type IpRoute, IpError, bridgeBatch, ipBatch } from "../../kernel/ip.ts";
import { runSync } from "../../kernel/spawn.ts";
import { readOffloads, setOffload } from "../../kernel/ethtool.ts";
import { formatIP, parseCIDR } from "../../ipam/cidr.ts";
import { VXLAN_OVERHEAD, VxlanBackend } from "../../backend/vxlan.ts";
import type { Lease } from "../../store/registry.ts";
import type { DoctorContext } from "../context.ts";
import { type Check, ok, skip } from "../check.ts";

function link(dev: string, details = false): IpLink | undefined {
  try {
    return (ipBatch([["addr", "show", "dev", dev]], {}, { details })[0] as IpLink[])[0];
  } catch (e) {
    if (e instanceof IpError && e.isNotFound) return undefined;
    throw e;
  }
}

function vxlanOnly(ctx: DoctorContext): string | undefined {
  if (!ctx.agent?.device) return "no agent report: nothing to compare the overlay with";
  if (ctx.agent.backend !== "vxlan") return `backend ${ctx.agent.backend}: no VXLAN device`;
  return undefined;
}

interface PeerState { node: string; subnet: string; vtep: string; mac: string; ip: string; problems: string[] }

/** Each peer the agent knows of, with what is wrong about its entries in the kernel. */
export function peerStates(ctx: DoctorContext): PeerState[] {
  const dev = ctx.agent!.device!;
  const [routes, neighs] = ipBatch([["route", "show", "dev", dev], ["neigh", "show", "dev", dev]]) as [IpRoute[], IpNeigh[]];
  const [fdb] = bridgeBatch([["fdb", "show", "dev", dev]]) as [FdbEntry[]];
  return (ctx.agent!.peerLeases ?? []).filter((p) => p.vtepMac).map((p) => {
    const vtep = formatIP(parseCIDR(p.subnet)!.prefix.ip);
    const mac = p.vtepMac!.toLowerCase();
    const problems: string[] = [];
    const r = routes.find((x) => x.dst === p.subnet);
    if (!r) problems.push(`route ${p.subnet} via ${vtep} missing`);
    else if (r.gateway !== vtep || !(r.flags ?? []).includes("onlink")) problems.push(`route ${p.subnet} goes via ${r.gateway}, not ${vtep} onlink`);
    const n = neighs.find((x) => x.dst === vtep);
    if (!n) problems.push(`neighbour ${vtep} lladdr ${mac} missing`);
    else if (n.lladdr?.toLowerCase() !== mac) problems.push(`neighbour ${vtep} has ${n.lladdr}, should be ${mac}`);
    const f = fdb.filter((x) => x.mac.toLowerCase() === mac);
    if (f.length === 0) problems.push(`FDB ${mac} dst ${p.publicIp} missing`);
    else if (!f.some((x) => x.dst === p.publicIp)) problems.push(`FDB ${mac} points to ${f.map((x) => x.dst).join(",")}, should be ${p.publicIp} (stale)`);
    return { node: p.node, subnet: p.subnet, vtep, mac, ip: p.publicIp, problems };
  });
}

function ping(argv: string[]): boolean {
  return runSync(["ping", "-n", "-q", "-c", "1", "-W", "1", ...argv]).status === 0;
}

export const overlayChecks: Check[] = [
  {
    id: "overlay.device", group: "overlay", title: "the VXLAN device is there as configured",
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      const a = ctx.agent!;
      const l = link(a.device!, true);
      if (!l) return { status: "fail", evidence: [`${a.device} does not exist`], fix: "restart the agent: it creates the device" };
      const d = l.linkinfo?.info_data as { id?: number; port?: number; local?: string; learning?: boolean } | undefined;
      const want = { id: a.vni ?? 1, port: a.port ?? 8472, local: a.nodeIp };
      const problems: string[] = [];
      if (l.linkinfo?.info_kind !== "vxlan") problems.push(`${a.device} is a ${l.linkinfo?.info_kind}, not vxlan`);
      if (d?.id !== want.id) problems.push(`VNI ${d?.id}, configured ${want.id}`);
      if (d?.port !== want.port) problems.push(`UDP port ${d?.port}, configured ${want.port}`);
      if (d?.local !== want.local) problems.push(`local ${d?.local}, the node's IP is ${want.local}`);
      if (d?.learning !== false) problems.push("learning is on (gauze programs the FDB itself)");
      if (!(l.flags ?? []).includes("UP")) problems.push(`${a.device} is down`);
      if (problems.length) return { status: "fail", evidence: problems, fix: `delete ${a.device} and restart the agent: it re-creates it as configured` };
      return ok(`${a.device}: VNI ${d?.id}, UDP ${d?.port}, local ${d?.local}, nolearning, MAC ${l.address}`);
    },
  },
  {
    id: "overlay.mtu", group: "overlay", title: "MTUs fit: underlay >= VXLAN + 50 >= bridge >= pods, and the underlay carries it",
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      const a = ctx.agent!;
      const under = link(a.iface ?? "eth0");
      const dev = link(a.device!);
      const br = link("cni0");
      const problems: string[] = [];
      const facts: string[] = [];
      if (under && dev) {
        facts.push(`${under.ifname} ${under.mtu}, ${dev.ifname} ${dev.mtu}${br ? `, cni0 ${br.mtu}` : ""}`);
        if (under.mtu < dev.mtu + VXLAN_OVERHEAD) problems.push(`${under.ifname} MTU ${under.mtu} < ${dev.ifname} MTU ${dev.mtu} + ${VXLAN_OVERHEAD}: full-size pod packets are fragmented or dropped`);
        if (br && br.mtu > dev.mtu) problems.push(`cni0 MTU ${br.mtu} > ${dev.ifname} MTU ${dev.mtu}`);
      }
      if (br) {
        const ports = (ipBatch([["link", "show", "master", "cni0"]])[0] as IpLink[]).filter((p) => p.mtu > br.mtu);
        for (const p of ports) problems.push(`pod veth ${p.ifname} MTU ${p.mtu} > cni0 MTU ${br.mtu}`);
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
      const states = peerStates(ctx);
      const bad = states.filter((s) => s.problems.length);
      if (bad.length === 0) return ok(`${states.length} peer(s) programmed: ${states.map((s) => `${s.node} ${s.subnet}`).join(", ") || "none"}`);
      const a = ctx.agent!;
      return {
        status: "fail", evidence: bad.flatMap((s) => s.problems.map((p) => `${s.node}: ${p}`)),
        fix: "gauze doctor --fix re-applies them from the agent's view; restarting the agent does the same",
        repair: () => {
          const link0 = { iface: a.iface ?? "eth0", ip: a.nodeIp ?? "", mtu: 1500 };
          const backend = new VxlanBackend({ link: link0, network: a.network ?? "", vni: a.vni ?? 1, port: a.port ?? 8472 });
          const peers: Lease[] = (a.peerLeases ?? []).map((p) => ({ node: p.node, subnet: p.subnet, publicIp: p.publicIp, backendType: "vxlan", backendData: { ...(p.vtepMac ? { vtepMac: p.vtepMac } : {}) }, expiresAt: 0 }));
          const s = backend.reconcile(peers);
          return `re-programmed ${s.peers} peer(s): ${s.added} entries added, ${s.removed} removed`;
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
      const states = peerStates(ctx).filter((s) => s.problems.length === 0); // broken entries: overlay.peers
      const dead = states.filter((s) => !ping(["-I", ctx.agent!.device!, s.vtep]));
      const port = ctx.agent!.port ?? 8472;
      if (dead.length === 0) return ok(`${states.length} peer VTEP(s) answered through UDP ${port}`);
      return {
        status: "fail", evidence: dead.map((s) => `${s.node} (${s.ip}): no answer from its VTEP ${s.vtep} over UDP ${port}, while its entries are right`),
        fix: `allow UDP ${port} between all nodes, both ways (cloud security groups, iptables INPUT on the nodes: iptables -I INPUT -p udp --dport ${port} -j ACCEPT)`,
      };
    },
  },
  {
    id: "overlay.checksum-offload", group: "overlay", title: "no checksum offload on the VXLAN device with --random-fully masquerade",
    run(ctx) {
      const why = vxlanOnly(ctx);
      if (why) return skip(why);
      const dev = ctx.agent!.device!;
      const off = readOffloads(dev);
      if (!off) return skip("ethtool not available");
      const randomFully = runSync(["iptables-save", "-t", "nat"]).stdout.includes("--random-fully");
      if (!(off["tx-checksum-ip-generic"] && randomFully)) return ok(`${dev} tx-checksum-ip-generic ${off["tx-checksum-ip-generic"] ? "on" : "off"}; --random-fully ${randomFully ? "in use" : "not in use"}`);
      return {
        status: "warn", evidence: [`${dev} has tx-checksum-ip-generic on and nat rules use MASQUERADE --random-fully`, "known kernel problem: bad outer checksums, connections through the overlay stall for about 63 s"],
        fix: `ethtool -K ${dev} tx-checksum-ip-generic off`,
        repair: () => (setOffload(dev, "tx-checksum-ip-generic", false) ? `ethtool -K ${dev} tx-checksum-ip-generic off` : "ethtool refused"),
      };
    },
  },
];
