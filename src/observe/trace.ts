// `gauze trace`: one probe from a pod (a ping, or a TCP connect or UDP datagram from a source
// port of our choosing), and every place any node saw it, in order, with its size there: 84
// bytes on the pod's veth, 134 on the underlay inside VXLAN, 84 again at the far pod. Where it
// stopped, the kernel's reason comes from a tracefs instance of our own that watches drops
// during the probe (the probe's own process first: the kernel drops a pod's packet in that
// process's context as often as not), and the doctor check that explains it.
import type { Sighting, ObservationPoint } from "../agent/flow-types.ts";
import { plausible } from "../agent/drop-attribution.ts";
import { DropWatch, type DropEvent, isEndpointReason } from "../kernel/tracefs.ts";
import { gauzeExecutable } from "../kernel/spawn.ts";
import { parseCIDR, parseIP, prefixContains } from "../net/cidr.ts";
import { tcpFlagNames } from "../packet/flow-key.ts";
import { printableLines } from "../util/text.ts";
import { get, sightings } from "./client.ts";
import type { DatapathHook, Decision } from "../dataplane/ebpf-datapath.ts";
import { type ClusterSource, type DoctorFinding, type SourcePod, doctorFindings, podRef } from "./source.ts";

export interface TraceOptions {
  from: string;
  to: string;
  protocol: "icmp" | "tcp" | "udp";
  port?: number;
  /** ICMP payload bytes (ping -s): 56 makes an 84-byte IPv4 packet. */
  size: number;
  /** Told before the long waits (late drops, doctor on the nodes crossed): seconds of silence read as a hang. */
  progress?: (line: string) => void;
  /** Passive trace (no probe can be sent): how long to wait for the pod's next matching packet, in seconds. */
  waitSeconds?: number;
}

export interface Hop {
  n: number;
  /** Microseconds after the probe left. */
  us: number;
  node: string;
  point: ObservationPoint;
  /** The interface's name once known (its index until then), and its index. */
  interface: string;
  ifindex: number;
  direction: "request" | "reply";
  ipLen: number;
  frameLen: number;
  /** TCP: the segment's flags (a refused connection comes back as RST). */
  tcpFlags?: string[];
  tunnel?: { vni: number; outerSource: string; outerDestination: string; outerIpLen: number; overheadBytes: number };
  /** The eBPF datapath redirected the packet here, past the bridge and netfilter (its next hop is not seen by a tc hook when it is a pod's namespace). */
  redirect?: { helper: "bpf_redirect_peer" | "bpf_redirect_neigh"; to: string; why: string };
}

export interface TraceReport {
  from: { pod: string; ip: string; node: string };
  to: { pod?: string; ip: string; node?: string };
  protocol: string;
  /** `exit`: the probe's exit status (absent in a passive trace, which sends nothing: `passive` says why). */
  probe: { icmpId?: number; sourcePort?: number; port?: number; size: number; exit?: number; passive?: string };
  hops: Hop[];
  reachedDestination: boolean;
  replied: boolean;
  /** TCP: the answer was a reset (nothing listens on the port): reached, and refused. */
  refused?: { by: string };
  /** What the destination is: a pod, a node, an address in the pod network no pod has, or outside the cluster. */
  destination: "pod" | "node" | "no-pod" | "outside";
  stopped?: { node: string; after: ObservationPoint; interface: string; reason?: string; location?: string; check?: string; why: string;
    /** The NetworkPolicy that denied it, as the node's agent judges the connection (after a netfilter drop). */
    policy?: string };
  /** Nodes whose agent did not answer: the probe's hops there are not known. */
  unobserved: { node: string; why: string }[];
  /** Why the kernel's drops could not be watched (tracefs not usable), when they could not. */
  dropsUnknown?: string;
  /** The destination node's times were moved by this much to keep each packet after its sender (clocks disagree). */
  clockShift?: { node: string; us: number };
  /** Failing and warning doctor checks on the nodes the probe crossed. */
  doctor: DoctorFinding[];
  /** The doctor command for the node it stopped on. */
  doctorCommand?: string;
}

export class TraceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TraceError";
  }
}

/** The doctor check that explains a drop with this reason at this point. */
export function checkFor(reason: string | undefined, point: ObservationPoint | undefined, tunnelled: boolean): string | undefined {
  if (!reason) return undefined;
  if (reason === "NETFILTER_DROP") return point === "from-network" && tunnelled ? "overlay.vxlan-port" : "filtering.forward";
  if (/^(NO_TX_TARGET|VXLAN_NO_REMOTE|NEIGH_FAILED|NEIGH_DEAD|NEIGH_QUEUEFULL|NEIGH_CREATEFAIL)$/.test(reason)) return "overlay.peers";
  if (/^(IP_OUTNOROUTES|IP_INNOROUTES)$/.test(reason)) return "overlay.peers";
  if (/^(PKT_TOO_BIG|FRAG_|HDR_TRUNC)/.test(reason)) return "overlay.mtu";
  if (/^VXLAN_/.test(reason)) return "overlay.device";
  if (/^(IP_INADDRERRORS|IP_INVALID_DEST|OTHERHOST)$/.test(reason)) return "kernel.ip-forward";
  if (reason === "IP_RPFILTER") return "kernel.rp-filter";
  return undefined;
}

/** A pod, running (a probe needs its address). */
function runningPod(source: ClusterSource, name: string): SourcePod {
  const p = source.findPod(name);
  if (p.phase !== "Running" || !p.ip) throw new TraceError(`pod ${p.name} is ${p.phase}${p.reason ? `: ${p.reason}` : ""}`);
  return p;
}

export async function runTrace(source: ClusterSource, o: TraceOptions): Promise<TraceReport> {
  if (!["icmp", "tcp", "udp"].includes(o.protocol)) throw new TraceError(`--protocol ${o.protocol}: use icmp, tcp or udp`);
  if (o.protocol !== "icmp" && !(o.port && Number.isInteger(o.port) && o.port > 0 && o.port < 65536)) throw new TraceError(`--protocol ${o.protocol} needs --port (1-65535)`);
  if (!Number.isInteger(o.size) || o.size < 16 || o.size > 65000) throw new TraceError(`--size ${o.size}: give 16 to 65000 bytes`);
  const from = runningPod(source, o.from);
  const toIp = parseIP(o.to) ? o.to : undefined;
  const toPod = toIp ? source.view().pods.find((p) => p.ip === toIp || p.ip6 === toIp) : runningPod(source, o.to);
  const dst = toIp ?? toPod!.ip!;
  const v6 = dst.includes(":");
  const kind = classify(source, dst, !!toPod);
  const srcIp = v6 ? from.ip6 : from.ip;
  if (!srcIp) throw new TraceError(`pod ${from.name} has no IPv${v6 ? 6 : 4} address`);
  const srcs = source.agents();
  const sport = o.protocol === "icmp" ? undefined : 40000 + Math.floor(Math.random() * 20000);
  const proto = o.protocol === "icmp" ? (v6 ? 58 : 1) : o.protocol === "tcp" ? 6 : 17;

  if (source.probeUnavailable) return passiveTrace(source, o, { from, toPod, dst, srcIp, proto, kind, why: source.probeUnavailable });
  let dropsUnknown: string | undefined;
  const watch = (() => {
    try {
      return DropWatch.open(`gauze-trace-${process.pid}`, { allReasons: true });
    } catch (e) {
      dropsUnknown = (e as Error).message;
      return undefined;
    }
  })();
  const t0 = Date.now();
  let exit = 0;
  let pid = 0;
  try {
    const argv = o.protocol === "icmp"
      ? ["ping", "-n", "-c", "1", "-W", "2", "-s", String(o.size), dst]
      : [gauzeExecutable(), "probe", `--${o.protocol}`, "--to", dst, "--port", String(o.port), "--source-port", String(sport), "--timeout", "2000"];
    const child = source.spawnInPod(from, argv);
    pid = child.pid ?? 0;
    exit = await new Promise<number>((res, rej) => { child.on("close", (c) => res(c ?? 1)); child.on("error", rej); });
  } catch (e) {
    watch?.close();
    throw e;
  }
  // The ring hands blocks over up to 20 ms late; a neighbour that never answers drops its queue after about 3 s.
  await new Promise((r) => setTimeout(r, 150));
  const unobserved = new Map<string, string>();
  const seen = async (): Promise<{ node: string; s: Sighting }[]> => (await Promise.all(srcs.map(async (src) => {
    try {
      return (await sightings(src, { src: srcIp, dst, proto, since: t0 - 5, ...(sport ? { srcPort: sport } : {}) })).map((x) => ({ node: src.node, s: x }));
    } catch (e) {
      unobserved.set(src.node, (e as Error).message.replace(/^node \S+: /, ""));
      return [];
    }
  }))).flat().sort((a, b) => a.s.time - b.s.time);
  let all = await seen();
  // ICMP: the echo's identifier is the kernel's choice; the first request from the pod names it.
  const first = all.find((x) => x.s.key.src === srcIp && (x.s.key.icmpType === 8 || x.s.key.icmpType === 128));
  const icmpId = first?.s.key.icmpId;
  const mine = (xs: typeof all) => (o.protocol === "icmp" ? xs.filter((x) => x.s.key.icmpId === icmpId) : xs);
  let aligned = pathOrder(mine(all), srcIp, from.node, toPod?.node);
  all = aligned.path;
  let replied = all.some((x) => x.s.key.src === dst && x.s.key.dst === srcIp && (x.s.point === "to-pod"));
  const rst = all.find((x) => x.s.key.src === dst && x.s.key.dst === srcIp && x.s.key.tcpFlags !== undefined && (x.s.key.tcpFlags & 0x04) !== 0);
  let drops: DropEvent[] = watch?.read() ?? [];
  if (!replied && exit !== 0 && !drops.some((d) => d.pid === pid)) {
    o.progress?.("no reply: waiting 3.5 s for late drops (a neighbour that never answers frees its queue after about 3 s)");
    await new Promise((r) => setTimeout(r, 3500));
    drops = [...drops, ...(watch?.read() ?? [])];
    aligned = pathOrder(mine(await seen()), srcIp, from.node, toPod?.node);
    all = aligned.path;
  }
  watch?.close();

  const hops = await hopsOf(all, all[0]?.s.time ?? t0, source, srcs, srcIp, dst);
  replied ||= redirectedInto(hops, from.node, "reply");
  const reachedDestination = all.some((x) => x.s.key.src === srcIp && (toPod ? x.s.point === "to-pod" && x.node === toPod.node : x.s.point === "to-network" || x.s.point === "host"))
    || (!!toPod && redirectedInto(hops, toPod.node, "request"));
  const report: TraceReport = {
    from: { pod: podRef(from), ip: srcIp, node: from.node }, to: { ...(toPod ? { pod: podRef(toPod), node: toPod.node } : {}), ip: dst },
    protocol: o.protocol, probe: { ...(icmpId !== undefined ? { icmpId } : {}), ...(sport ? { sourcePort: sport } : {}), ...(o.port ? { port: o.port } : {}), size: o.size, exit }, hops, reachedDestination, replied,
    ...(rst && replied ? { refused: { by: toPod ? podRef(toPod) : dst } } : {}), destination: kind.kind, doctor: [],
    unobserved: [...unobserved].map(([node, why]) => ({ node, why })), ...(dropsUnknown ? { dropsUnknown } : {}), ...clockShiftOf(aligned.shiftMs, toPod),
  };
  if (!replied) {
    const last = all[all.length - 1];
    const lastTime = last?.s.time ?? t0;
    const tdrop = (d: DropEvent) => Number(d.tsNs / 1000n) / 1000;
    // The probe's own process first (the kernel often drops a pod's packet in its sender's
    // context); then a drop of the network's kind close after the last hop and plausible there
    // (a neighbour that never answers frees its queue seconds later, and only a packet that went
    // to the overlay and never reached the wire waits on one).
    const byPid = drops.filter((d) => d.pid === pid && tdrop(d) >= lastTime - 1 && (d.reason === "NOT_SPECIFIED" || !isEndpointReason(d.reason)));
    const near = drops.filter((d) => !isEndpointReason(d.reason) && tdrop(d) >= lastTime - 1 && (!last || plausible(d, last.s)) &&
      (/^NEIGH_/.test(d.reason) ? !last || last.s.point === "to-overlay" : tdrop(d) <= lastTime + 50));
    const d = byPid.find((x) => x.reason !== "NOT_SPECIFIED") ?? near[0] ?? byPid[0];
    const node = last?.node ?? from.node;
    const check = checkFor(d?.reason, last?.s.point, !!last?.s.key.tunnel);
    report.stopped = {
      node, after: last?.s.point ?? "from-pod", interface: last ? hops[hops.length - 1]!.interface : "-", ...(d ? { reason: d.reason, location: d.location.replace(/\+0x.*$/, "") } : {}), ...(check ? { check } : {}),
      why: d ? `the kernel dropped it: ${d.reason === "NOT_SPECIFIED" ? "no reason given" : d.reason} in ${d.location.replace(/\+0x.*$/, "")}` : last ? "no node saw it after this, and the kernel reported no drop: lost between the nodes (the underlay) or not answered" : "no node saw it leave the pod",
    };
    // A netfilter drop where a NetworkPolicy isolates the pod: the policy is the conclusion, named
    // by the agent that enforces it (the rules it programmed came from the same evaluator).
    if (d?.reason === "NETFILTER_DROP") {
      const agent = srcs.find((x) => x.node === node);
      try {
        const j = agent ? JSON.parse(await get(agent, `/v1/policy/judge?src=${encodeURIComponent(srcIp)}&dst=${encodeURIComponent(dst)}&proto=${proto}&port=${o.port ?? 0}`)) as { verdict?: string; policy?: string; reason?: string } : undefined;
        if (j?.verdict === "denied" && typeof j.reason === "string") {
          report.stopped = { ...report.stopped, why: j.reason, check: "agent.network-policy", ...(typeof j.policy === "string" ? { policy: j.policy } : {}) };
        }
      } catch {
        // no policy enforcement on that node (or it did not answer): the drop stands as the kernel said
      }
    }
    // Where the address itself explains it, that is the conclusion, not a drop on the way.
    if (kind.kind === "outside" && kind.why) {
      report.stopped = { node, after: last?.s.point ?? "from-pod", interface: last ? hops[hops.length - 1]!.interface : "-", why: kind.why };
    } else if (kind.kind === "no-pod") {
      report.stopped = { ...report.stopped, why: `${kind.why}${d ? ` (the kernel dropped it: ${d.reason} in ${d.location.replace(/\+0x.*$/, "")})` : ""}` };
      delete report.stopped.check;
    }
  }
  const crossed = [...new Set([from.node, ...(report.stopped ? [report.stopped.node] : []), ...(toPod ? [toPod.node] : [])])];
  if (report.stopped) o.progress?.(`running doctor on ${crossed.join(", ")}`);
  for (const f of await Promise.all(crossed.map((n) => doctorFindings(source, n)))) report.doctor.push(...f);
  // No reason from the kernel (lost on the underlay, or dropped without one): the overlay check
  // doctor fails on the nodes crossed names the cause, if one does.
  if (report.stopped && !report.stopped.check && kind.kind !== "outside" && kind.kind !== "no-pod") {
    const f = report.doctor.find((x) => x.status === "fail" && x.id.startsWith("overlay.")) ?? report.doctor.find((x) => x.status === "fail" && x.id.startsWith("kernel."));
    if (f) report.stopped.check = f.id;
  }
  if (report.stopped) report.doctorCommand = source.doctorCommand(report.stopped.node);
  return report;
}

/**
 * Where no probe can be sent (a cluster whose DaemonSet may not enter pod namespaces), the next
 * flow the pod itself opens to the destination is followed instead: its first packet is an
 * event at every point it passes on every node (a new flow always is, on both observers), so
 * each point's first sighting of that flow, request and reply, is the path. Nothing is sent;
 * drops are not watched (the kernel's drops are the nodes', not this machine's).
 */
async function passiveTrace(source: ClusterSource, o: TraceOptions, t: { from: SourcePod; toPod: SourcePod | undefined; dst: string; srcIp: string; proto: number; kind: ReturnType<typeof classify>; why: string }): Promise<TraceReport> {
  const { from, toPod, dst, srcIp, proto, kind } = t;
  const wait = o.waitSeconds ?? 10;
  const srcs = source.agents();
  const what = o.protocol === "icmp" ? "ping" : `${o.protocol} connection to :${o.port}`;
  o.progress?.(`${t.why}: following ${podRef(from)}'s next ${what} to ${dst} instead (up to ${wait} s: start it now)`);
  const t0 = Date.now();
  const unobserved = new Map<string, string>();
  const seen = async (): Promise<{ node: string; s: Sighting }[]> => (await Promise.all(srcs.map(async (src) => {
    try {
      return (await sightings(src, { src: srcIp, dst, proto, since: t0 - 5 })).map((x) => ({ node: src.node, s: x }));
    } catch (e) {
      unobserved.set(src.node, (e as Error).message.replace(/^node \S+: /, ""));
      return [];
    }
  }))).flat().filter((x) => o.protocol === "icmp" || (x.s.key.src === srcIp ? x.s.key.dstPort === o.port : x.s.key.srcPort === o.port)).sort((a, b) => a.s.time - b.s.time);
  // (Time order finds the first packet; the path's order is made once it is chosen.)
  const isFirst = (x: { node: string; s: Sighting }) => x.node === from.node && x.s.point === "from-pod" && x.s.key.src === srcIp
    && (o.protocol !== "icmp" || x.s.key.icmpType === 8 || x.s.key.icmpType === 128);
  let all: { node: string; s: Sighting }[] = [];
  let first: { node: string; s: Sighting } | undefined;
  while (!first && Date.now() - t0 < wait * 1000) {
    await new Promise((r) => setTimeout(r, 300));
    all = await seen();
    first = all.find(isFirst);
  }
  if (!first) throw new TraceError(`no ${what} from ${podRef(from)} to ${dst} in ${wait} s: nothing to follow (start one from the pod, e.g. kubectl exec ${podRef(from).replace("/", " ").replace(/^(\S+) /, "-n $1 ")} -- ping -c 3 ${dst}; or wait longer: --wait <seconds>)`);
  // Its reply and the far hops come within a moment.
  await new Promise((r) => setTimeout(r, 1000));
  all = await seen();
  const same = (x: { s: Sighting }) => (o.protocol === "icmp" ? x.s.key.icmpId === first!.s.key.icmpId : x.s.key.src === srcIp ? x.s.key.srcPort === first!.s.key.srcPort : x.s.key.dstPort === first!.s.key.srcPort);
  const once = new Set<string>();
  // Another node's clock may be behind this one's: only the source node's sightings are compared with the first's time.
  const aligned = pathOrder(all.filter((x) => (x.node !== first!.node || x.s.time >= first!.s.time) && same(x)), srcIp, from.node, toPod?.node);
  const path = aligned.path.filter((x) => {
    const k = `${x.node} ${x.s.point} ${x.s.ifindex} ${x.s.key.src === srcIp ? "request" : "reply"}`;
    if (once.has(k)) return false;
    once.add(k);
    return true;
  });
  const hops = await hopsOf(path, first.s.time, source, srcs, srcIp, dst);
  const replied = hops.some((h) => h.direction === "reply" && h.point === "to-pod" && h.node === from.node) || redirectedInto(hops, from.node, "reply");
  const reachedDestination = hops.some((h) => h.direction === "request" && (toPod ? h.point === "to-pod" && h.node === toPod.node : h.point === "to-network" || h.point === "host"))
    || (!!toPod && redirectedInto(hops, toPod.node, "request"));
  const last = hops.at(-1)!;
  const rst = path.find((x) => x.s.key.src === dst && x.s.key.tcpFlags !== undefined && (x.s.key.tcpFlags & 0x04) !== 0);
  const report: TraceReport = {
    from: { pod: podRef(from), ip: srcIp, node: from.node }, to: { ...(toPod ? { pod: podRef(toPod), node: toPod.node } : {}), ip: dst }, protocol: o.protocol,
    probe: { ...(first.s.key.icmpId !== undefined && o.protocol === "icmp" ? { icmpId: first.s.key.icmpId } : {}), ...(o.protocol !== "icmp" ? { sourcePort: first.s.key.srcPort } : {}), ...(o.port ? { port: o.port } : {}), size: Math.max(0, first.s.key.ipLen - (dst.includes(":") ? 48 : 28)), passive: t.why },
    hops, reachedDestination, replied, ...(rst && replied ? { refused: { by: toPod ? podRef(toPod) : dst } } : {}), destination: kind.kind, doctor: [],
    unobserved: [...unobserved].map(([node, why]) => ({ node, why })), dropsUnknown: "a passive trace does not watch the kernel's drops (nothing was sent from here)", ...clockShiftOf(aligned.shiftMs, toPod),
    ...(!replied ? { stopped: { node: last.node, after: last.point, interface: last.interface, why: kind.why ?? "no node saw it after this (a passive trace does not watch drops: gauze observe --kubeconfig <file> --verdict dropped shows them)" } } : {}),
  };
  const crossed = [...new Set([from.node, ...(report.stopped ? [report.stopped.node] : []), ...(toPod ? [toPod.node] : [])])];
  for (const f of await Promise.all(crossed.map((n) => doctorFindings(source, n)))) report.doctor.push(...f);
  if (report.stopped) report.doctorCommand = source.doctorCommand(report.stopped.node);
  return report;
}

/** What a destination address is to this cluster, and for those where the address itself is the answer, the words. */
function classify(source: ClusterSource, ip: string, isPod: boolean): { kind: TraceReport["destination"]; why?: string } {
  if (isPod) return { kind: "pod" };
  const v = source.view();
  const addr = parseIP(ip)!;
  if (v.nodes.some((n) => n.ip === ip)) return { kind: "node" };
  const nets = [v.podCidr, ...(v.podCidr6 ? [v.podCidr6] : [])].map((c) => parseCIDR(c)?.prefix).filter((p): p is NonNullable<typeof p> => !!p);
  if (nets.some((p) => prefixContains(p, addr))) {
    const owner = v.nodes.find((n) => n.subnet && parseCIDR(n.subnet) && prefixContains(parseCIDR(n.subnet)!.prefix, addr));
    return { kind: "no-pod", why: `no pod has ${ip}: it is in the pod network${owner ? ` (${owner.name}'s subnet ${owner.subnet})` : ", in no node's subnet"}, and nothing there answers (pods: ${v.pods.map((p) => `${podRef(p)} ${p.ip ?? "-"}`).join(", ") || "none"})` };
  }
  return { kind: "outside", ...(source.outside ? { why: `${ip} is outside the cluster: ${source.outside}` } : {}) };
}

/** The sightings as hops (times from `start`), their interfaces named and the eBPF datapath's redirects on them. */
function clockShiftOf(ms: number, toPod: SourcePod | undefined): Pick<TraceReport, "clockShift"> {
  return ms && toPod ? { clockShift: { node: toPod.node, us: Math.round(ms * 1000) } } : {};
}

/**
 * Sightings on one time line, in the order the packets met them. Each node stamps what it saw
 * with its own wall clock, and clocks disagree (by milliseconds between machines; an agent
 * preempted while converting its kernel's clock is late by as much): sorted as stamped, the far
 * node's hops once came before the source node's and the stop was put on the wrong node. So the
 * destination node's clock is moved, as little as it takes, until each packet (direction, TCP
 * flags, echo sequence) first arrives on a node after it first left the other (the request wins
 * where both directions cannot hold); clocks that already agree are left as they are.
 */
export function pathOrder<T extends { node: string; s: Sighting }>(list: T[], srcIp: string, fromNode: string, toNode: string | undefined): { path: T[]; shiftMs: number } {
  const isRequest = (x: T) => x.s.key.src === srcIp;
  let shift = 0;
  if (toNode && toNode !== fromNode) {
    // Per packet and node: when it first left (to-network; the node's first sighting without one) and first arrived.
    const seen = new Map<string, { left: number; first: number }>();
    for (const x of list) {
      if (x.node !== fromNode && x.node !== toNode) continue;
      const k = `${isRequest(x) ? "request" : "reply"} ${x.s.key.tcpFlags ?? ""} ${x.s.key.icmpSeq ?? ""} ${x.node === fromNode ? "from" : "to"}`;
      const e = seen.get(k) ?? { left: Infinity, first: Infinity };
      e.first = Math.min(e.first, x.s.time);
      if (x.s.point === "to-network") e.left = Math.min(e.left, x.s.time);
      seen.set(k, e);
    }
    const departure = (e: { left: number; first: number }) => (Number.isFinite(e.left) ? e.left : e.first);
    let lower = -Infinity, upper = Infinity;
    for (const [k, e] of seen) {
      if (!k.endsWith(" from")) continue;
      const other = seen.get(k.replace(/ from$/, " to"));
      if (!other) continue;
      if (k.startsWith("request")) lower = Math.max(lower, departure(e) - other.first);
      else upper = Math.min(upper, e.first - departure(other));
    }
    shift = lower > 0 ? lower : upper < 0 ? Math.max(upper, lower) : 0;
  }
  const aligned = shift ? list.map((x) => (x.node === toNode ? { ...x, s: { ...x.s, time: x.s.time + shift } } : x)) : list;
  // Equal times (one skb keeps its stamp across a node's hooks) keep the order each node saw,
  // the sender's node first.
  const rank = (x: T) => (x.node === (isRequest(x) ? fromNode : toNode) ? 0 : 1);
  return { path: aligned.map((x, i) => ({ x, i })).sort((a, b) => a.x.s.time - b.x.s.time || rank(a.x) - rank(b.x) || a.i - b.i).map((e) => e.x), shiftMs: shift };
}

async function hopsOf(list: { node: string; s: Sighting }[], start: number, source: ClusterSource, agents: ReturnType<ClusterSource["agents"]>, srcIp: string, dst: string): Promise<Hop[]> {
  const hops: Hop[] = list.map((x, i) => ({
    n: i + 1, us: Math.round((x.s.time - start) * 1000), node: x.node, point: x.s.point, interface: String(x.s.ifindex), ifindex: x.s.ifindex,
    direction: x.s.key.src === srcIp ? "request" : "reply", ipLen: x.s.key.ipLen, frameLen: x.s.len, ...(x.s.key.tcpFlags !== undefined ? { tcpFlags: tcpFlagNames(x.s.key.tcpFlags) } : {}),
    ...(x.s.key.tunnel ? { tunnel: { vni: x.s.key.tunnel.vni, outerSource: x.s.key.tunnel.outerSrc, outerDestination: x.s.key.tunnel.outerDst, outerIpLen: x.s.key.tunnel.outerIpLen, overheadBytes: x.s.key.tunnel.overhead } } : {}),
  }));
  nameInterfaces(hops, source);
  await nameRedirects(hops, source, agents, srcIp, dst);
  return hops;
}

/**
 * Whether a packet of that direction was put into a pod's namespace on `node` by bpf_redirect_peer:
 * it meets no tc hook of the node on its way in, so the redirect into the pod is its arrival.
 */
function redirectedInto(hops: Hop[], node: string | undefined, direction: Hop["direction"]): boolean {
  return hops.some((h) => h.node === node && h.direction === direction && h.redirect?.helper === "bpf_redirect_peer");
}

/**
 * Where a node runs the eBPF datapath, the hops its programs act at (a pod veth's ingress; the
 * underlay's or the tunnel's ingress for a packet already decapsulated) ask that node's agent
 * what the program does with such a packet, from the maps in its kernel; a redirect is named on
 * the hop. A node on the classic datapath answers 404 and its hops stay as observed.
 */
async function nameRedirects(hops: Hop[], source: ClusterSource, agents: ReturnType<ClusterSource["agents"]>, srcIp: string, dst: string): Promise<void> {
  const asked = new Map<string, Promise<Decision | undefined>>();
  const ask = (node: string, hook: DatapathHook, src: string, to: string): Promise<Decision | undefined> => {
    const k = `${node} ${hook} ${src} ${to}`;
    if (!asked.has(k)) {
      const agent = agents.find((a) => a.node === node);
      asked.set(k, !agent ? Promise.resolve(undefined) : get(agent, `/v1/datapath/decide?hook=${hook}&src=${encodeURIComponent(src)}&dst=${encodeURIComponent(to)}`)
        .then((t) => JSON.parse(t) as Decision).catch(() => undefined));
    }
    return asked.get(k)!;
  };
  const pods = source.view().pods;
  for (const h of hops) {
    const hook: DatapathHook | undefined = h.point === "from-pod" ? "from-pod" : h.point === "from-overlay" || (h.point === "from-network" && !h.tunnel) ? "from-net" : undefined;
    if (!hook) continue;
    const [src, to] = h.direction === "request" ? [srcIp, dst] : [dst, srcIp];
    const d = await ask(h.node, hook, src, to);
    if (!d || d.action === "classic" || typeof d.why !== "string") continue;
    const pod = pods.find((p) => p.node === h.node && (p.ip === to || p.ip6 === to));
    const dev = d.ifindex !== undefined ? source.interfaceNames(h.node).get(d.ifindex) : undefined;
    h.redirect = d.action === "redirect-peer"
      ? { helper: "bpf_redirect_peer", to: pod ? podRef(pod) : dev ?? String(d.ifindex), why: d.why }
      : { helper: "bpf_redirect_neigh", to: dev ?? String(d.ifindex), why: d.why };
  }
}

/** Interface names for the hops, from each node's link list (one netlink dump per node crossed). */
function nameInterfaces(hops: Hop[], source: ClusterSource): void {
  for (const node of new Set(hops.map((h) => h.node))) {
    const names = source.interfaceNames(node);
    for (const h of hops) if (h.node === node) h.interface = names.get(Number(h.interface)) ?? h.interface;
  }
}

/**
 * The report as `trace --json` writes it (docs/json.md): the names observe's JSON uses for the
 * same things (observationPoint, interface as {index, name}, the tunnel as {protocol, vni,
 * outer: {source, destination}, outerIpLen, overheadBytes}).
 */
export function traceJson(r: TraceReport): Record<string, unknown> {
  const { hops, stopped, ...rest } = r;
  const iface = (name: string, index?: number) => ({ ...(index !== undefined && index > 0 ? { index } : {}), name });
  return {
    ...rest,
    hops: hops.map(({ point, interface: name, ifindex, tunnel, ...h }) => ({
      ...h, observationPoint: point, interface: iface(name, ifindex),
      ...(tunnel ? { tunnel: { protocol: "vxlan", vni: tunnel.vni, outer: { source: tunnel.outerSource, destination: tunnel.outerDestination }, outerIpLen: tunnel.outerIpLen, overheadBytes: tunnel.overheadBytes } } : {}),
    })),
    ...(stopped ? { stopped: (({ after, interface: name, ...s }) => ({ ...s, observationPoint: after, interface: iface(name, hops.at(-1)?.ifindex) }))(stopped) } : {}),
  };
}

export function formatTrace(r: TraceReport): string {
  const what = r.protocol === "icmp" ? `icmp${r.probe.icmpId !== undefined ? ` echo id ${r.probe.icmpId}` : ""}, ${r.probe.size}-byte payload`
    : r.protocol === "tcp" ? `tcp SYN to :${r.probe.port} from port ${r.probe.sourcePort}` : `udp datagram to :${r.probe.port} from port ${r.probe.sourcePort}`;
  const out = [`trace ${r.from.pod} (${r.from.ip}, ${r.from.node}) -> ${r.to.pod ?? r.to.ip} (${r.to.ip}${r.to.node ? `, ${r.to.node}` : ""}), ${what}`,
    ...(r.probe.passive ? [`(passive: the pod's own ${r.protocol === "icmp" ? "ping" : "connection"} followed, nothing sent; ${r.probe.passive})`] : []), ""];
  for (const h of r.hops) {
    const t = h.tunnel ? `  vxlan vni ${h.tunnel.vni} ${h.tunnel.outerSource} -> ${h.tunnel.outerDestination}: outer IP ${h.tunnel.outerIpLen} B (+${h.tunnel.overheadBytes})` : "";
    out.push(`${String(h.n).padStart(3)}  ${`+${h.us} us`.padStart(10)}  ${h.direction.padEnd(8)} ${h.node.padEnd(26)} ${h.point.padEnd(13)} ${h.interface.padEnd(16)} IP ${h.ipLen} B, frame ${h.frameLen} B${h.tcpFlags ? ` [${h.tcpFlags.join(",")}]` : ""}${t}`);
    if (h.redirect) out.push(`${" ".repeat(17)}└ eBPF ${h.redirect.helper} -> ${h.redirect.to}: ${h.redirect.why.replace(/^bpf_redirect_\w+ /, "")}`);
  }
  if (!r.hops.length) out.push("  (no node saw the probe)");
  out.push("");
  if (r.refused) out.push(`refused: RST from ${r.refused.by} (nothing listens on :${r.probe.port}); the network path works: ${r.hops.length} hops`);
  else if (r.replied) out.push(`reached ${r.to.pod ?? r.to.ip} and back: ${r.hops.length} hops`);
  else if (r.stopped) {
    out.push(`✖ stopped on ${r.stopped.node} after ${r.stopped.after} ${r.stopped.interface}: ${r.stopped.why}`);
    if (r.stopped.check) out.push(`  doctor: ${r.stopped.check} (${r.doctorCommand ?? `gauze doctor --node ${r.stopped.node}`})`);
  }
  for (const u of r.unobserved) out.push(`  (${u.node}: ${u.why}; its hops are not shown)`);
  if (r.dropsUnknown) out.push(`  (the kernel's drops are not known: ${r.dropsUnknown})`);
  if (r.clockShift) out.push(`  (${r.clockShift.node}'s times are moved by ${r.clockShift.us > 0 ? "+" : ""}${r.clockShift.us} us: the nodes' clocks disagree, and no packet can arrive before it left)`);
  const findings = r.doctor.filter((d) => d.status === "fail");
  if (findings.length) {
    out.push("", "doctor on the nodes crossed:");
    for (const d of findings) out.push(`  ✖ ${d.node} ${d.id}: ${d.evidence}`);
  }
  return printableLines(out.join("\n"));
}
