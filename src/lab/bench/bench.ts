// `gauze lab bench`: the overlay tax, answered with numbers. For each backend, a fresh 2-node
// lab with a pod on each node (for `none`, the two nodes themselves: the physical limit of this
// underlay; for `flannel-style`, a VXLAN path built by hand with flannel's settings: the
// anchor), then, interleaved across the labs round after round so that no backend gets the
// machine's good minutes: pod-to-pod TCP throughput with iperf3 (1 and 4 streams), the CPU the
// whole machine spent per Gbit/s, RTT p50 and p99 over 200 pings, and the bytes on the wire per
// 64-byte ping and per full-size TCP segment, read from a real capture decoded by gauze dissect.
// The datapath is a dimension too: host-gw-ebpf and vxlan-ebpf are the same backends with
// `--datapath ebpf` (pod packets redirected by bpf/datapath.c past the bridge and netfilter),
// same-node and same-node-ebpf two pods on one node; each round also runs a request-response
// test (sockperf ping-pong over TCP: small messages back and forth, p50, p99 and p99.9), the
// AllReduce-shaped question, next to throughput.
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runSync, startDetached } from "../../kernel/spawn.ts";
import { addNetns, delNetns, netnsPath, openNetns } from "../../kernel/netns.ts";
import { closeFd } from "../../kernel/files.ts";
import { setOffload } from "../../kernel/ethtool.ts";
import { addAddr, addBridge, addRoute, addVeth, addVxlan, replaceFdb, replaceNeigh, setHairpin, setLink, withRtnl } from "../../kernel/netlink/index.ts";
import { iptablesRestore } from "../../kernel/iptables.ts";
import { labDown, labUp } from "../lab.ts";
import { podRun } from "../pods.ts";
import { type Progress, labDir, labExists, loadLab } from "../state.ts";
import { captureDuring, sizes } from "../wire.ts";
import { percentile } from "../../util/stats.ts";

export const BENCH_BACKENDS = ["none", "host-gw", "vxlan", "vxlan-direct", "macvlan", "wireguard", "flannel-style", "none-v6", "vxlan-v6", "host-gw-ebpf", "vxlan-ebpf", "same-node", "same-node-ebpf", "none-aa"] as const;
export type BenchBackend = (typeof BENCH_BACKENDS)[number];

export interface Endpoint { netns: string; ip: string; dev: string }
interface Setup { backend: BenchBackend; lab: string; client: Endpoint; server: Endpoint; clientNode: string; tunnelBpf?: string; extraNetns: string[] }

export interface BackendResult {
  backend: BenchBackend;
  ok: boolean;
  error?: string;
  /** Median over the rounds, per stream count. */
  tcp: { streams: number; gbps: number; coresBusy: number; coresPerGbps: number; rounds: number[] }[];
  rtt?: { p50Us: number; p99Us: number; n: number };
  /** sockperf ping-pong over TCP (one-way latency, half the round trip), medians of each round's percentiles. */
  rr?: { p50Us: number; p99Us: number; p999Us: number; rounds: number };
  /** Why there is no request-response figure (an IPv6 pair: Debian 12's sockperf 3.7 speaks IPv4 only). */
  rrSkipped?: string;
  ping?: { outerIp: number; innerIp: number; overhead: number; frame: number };
  segment?: { outerIp: number; innerIp: number; overhead: number; frame: number };
}

export interface BenchReport {
  at: string;
  rounds: number;
  seconds: number;
  results: BackendResult[];
  targets: { what: string; value: string; ok: boolean }[];
}

const median = (xs: number[]) => percentile(xs, 50);

/** Busy and total jiffies of the whole machine (/proc/stat's cpu line). */
function cpuTimes(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

const NCPU = readFileSync("/proc/cpuinfo", "utf8").split("\n").filter((l) => l.startsWith("processor")).length || 1;

/**
 * flannel's dataplane, made by hand with flannel's defaults: flannel.1 (VNI 1, 8472, nolearning,
 * MTU 1450, checksum offload left on), cni0 with the pods' veths in hairpin mode (flannel's
 * delegate sets hairpinMode), onlink routes, permanent ARP and FDB entries, and flannel's
 * iptables rules (masquerade with --random-fully, FORWARD accept for the pod network), which
 * also put conntrack on the path as on a flannel node.
 */
function buildFlannelStyle(lab: string): { pods: Endpoint[]; netns: string[] } {
  const s = loadLab(lab);
  const nodes = s.nodes.slice(0, 2).map((n, i) => ({ n, i, mac: `0e:fa:00:00:00:0${i + 1}`, subnet: `10.244.${i}.0/24`, gw: `10.244.${i}.1`, vtep: `10.244.${i}.0`, pod: `10.244.${i}.2`, podNs: `gz-${lab}-fpod-${i}` }));
  for (const x of nodes) {
    addNetns(x.podNs);
    withRtnl({ netns: netnsPath(x.n.netns) }, (nl) => {
      const eth0 = nl.link("eth0")!;
      nl.run([addVxlan({ name: "flannel.1", vni: 1, port: 8472, local: x.n.ip, dev: { index: eth0.index, name: "eth0" }, learning: false, mtu: 1450, mac: x.mac, up: true }), addBridge({ name: "cni0", mtu: 1450, up: true })]);
      const fl = nl.link("flannel.1")!;
      const br = nl.link("cni0")!;
      nl.run([addAddr(fl, `${x.vtep}/32`), addAddr(br, `${x.gw}/24`)]);
      const fd = openNetns(netnsPath(x.podNs));
      try {
        nl.run([addVeth({ name: `vethf${x.i}`, master: br, mtu: 1450, up: true }, { name: "eth0", mtu: 1450, netnsFd: fd, netnsLabel: x.podNs })]);
      } finally {
        closeFd(fd);
      }
      nl.run([setHairpin(nl.link(`vethf${x.i}`)!, true)]);
      for (const y of nodes.filter((y) => y !== x)) {
        nl.run([addRoute({ dst: y.subnet, via: y.vtep, dev: fl, onlink: true }), replaceNeigh(fl, y.vtep, y.mac), replaceFdb(fl, y.mac, y.n.ip)]);
      }
    });
    const net = "10.244.0.0/16";
    iptablesRestore([
      "*nat", ":FLANNEL-POSTRTG - [0:0]", `-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG`,
      `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -j RETURN`, `-A FLANNEL-POSTRTG -s ${x.subnet} -d ${net} -j RETURN`,
      `-A FLANNEL-POSTRTG -s ${net} -d ${x.subnet} -j RETURN`, `-A FLANNEL-POSTRTG ! -s ${net} -d ${x.subnet} -j RETURN`,
      `-A FLANNEL-POSTRTG -s ${net} ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`, `-A FLANNEL-POSTRTG ! -s ${net} -d ${net} -j MASQUERADE --random-fully`, "COMMIT",
      "*filter", ":FLANNEL-FWD - [0:0]", `-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD`,
      `-A FLANNEL-FWD -s ${net} -j ACCEPT`, `-A FLANNEL-FWD -d ${net} -j ACCEPT`, "COMMIT", "",
    ].join("\n"), { netns: netnsPath(x.n.netns) });
    withRtnl({ netns: netnsPath(x.podNs) }, (nl) => {
      const e = nl.link("eth0")!;
      nl.run([setLink({ index: 1, name: "lo" }, { up: true }), addAddr(e, `${x.pod}/24`), setLink(e, { up: true })]);
      nl.run([addRoute({ dst: "default", via: x.gw, dev: nl.link("eth0")! })]);
    });
  }
  return { pods: nodes.map((x) => ({ netns: x.podNs, ip: x.pod, dev: "eth0" })), netns: nodes.map((x) => x.podNs) };
}

const labName = (backend: BenchBackend, prefix: string) => `${prefix}-${({ "flannel-style": "fl", "host-gw": "hg", none: "no", vxlan: "vx", "vxlan-direct": "vd", macvlan: "mv", wireguard: "wg", "none-v6": "n6", "vxlan-v6": "v6", "host-gw-ebpf": "he", "vxlan-ebpf": "ve", "same-node": "sn", "same-node-ebpf": "se", "none-aa": "na" } as const)[backend]}`;

async function setUp(backend: BenchBackend, prefix: string, progress: Progress): Promise<Setup> {
  const lab = labName(backend, prefix);
  if (labExists(lab)) await labDown(lab, () => undefined);
  const quiet = () => undefined;
  const cp = `${lab}-control-plane`;
  const wk = `${lab}-worker`;
  // none-aa: the underlay again, on a lab of its own: an A/A twin whose ratio to none is the run's noise band.
  if (backend === "none" || backend === "none-aa" || backend === "flannel-style") {
    const s = await labUp({ name: lab, nodes: 2, podCidr: "10.244.0.0/16", backend: "vxlan", cni: false, progress: quiet });
    const [a, b] = s.nodes;
    if (backend !== "flannel-style") {
      progress(`${backend}: node ${a!.ip} to node ${b!.ip} on the underlay`);
      return { backend, lab, client: { netns: a!.netns, ip: a!.ip, dev: "eth0" }, server: { netns: b!.netns, ip: b!.ip, dev: "eth0" }, clientNode: a!.netns, extraNetns: [] };
    }
    const f = buildFlannelStyle(lab);
    progress(`${backend}: flannel.1 and cni0 made by hand, pods ${f.pods[0]!.ip} and ${f.pods[1]!.ip}`);
    return { backend, lab, client: f.pods[0]!, server: f.pods[1]!, clientNode: a!.netns, tunnelBpf: "udp port 8472", extraNetns: f.netns };
  }
  // What IPv6 adds: a dual-stack lab, its pods talking IPv6 through gauze6.1 (VXLAN over the
  // nodes' IPv6 addresses); and its underlay node to node over IPv6, the limit for that path.
  if (backend === "none-v6" || backend === "vxlan-v6") {
    const s = await labUp({ name: lab, nodes: 2, podCidr: "10.244.0.0/16", backend: "vxlan", ipv6: true, cni: backend === "vxlan-v6", noObserve: true, progress: quiet });
    const [na, nb] = s.nodes;
    if (backend === "none-v6") {
      progress(`${backend}: node ${na!.ip6} to node ${nb!.ip6} on the underlay`);
      return { backend, lab, client: { netns: na!.netns, ip: na!.ip6!, dev: "eth0" }, server: { netns: nb!.netns, ip: nb!.ip6!, dev: "eth0" }, clientNode: na!.netns, extraNetns: [] };
    }
    const a = await podRun(lab, "a", cp, "netshoot");
    const b = await podRun(lab, "b", wk, "netshoot");
    if (!a.ip6 || !b.ip6) throw new Error(`pods have no IPv6 address: ${a.reason ?? b.reason ?? ""}`);
    progress(`${backend}: gauze pods ${a.ip6} and ${b.ip6} (IPv6 through gauze6.1)`);
    return { backend, lab, client: { netns: a.netns, ip: a.ip6, dev: "eth0" }, server: { netns: b.netns, ip: b.ip6, dev: "eth0" }, clientNode: `gz-${cp}`, tunnelBpf: "ip6 and udp port 8472", extraNetns: [] };
  }
  // The eBPF datapath, and two pods on one node (over the bridge, or redirected straight into each other).
  if (backend === "host-gw-ebpf" || backend === "vxlan-ebpf" || backend === "same-node" || backend === "same-node-ebpf") {
    const base = backend === "vxlan-ebpf" ? "vxlan" : "host-gw";
    const ebpf = backend.endsWith("-ebpf");
    await labUp({ name: lab, nodes: 2, podCidr: "10.244.0.0/16", backend: base, cni: true, noObserve: true, ...(ebpf ? { datapath: "ebpf" as const } : {}), progress: quiet });
    const a = await podRun(lab, "a", cp, "netshoot");
    const b = await podRun(lab, "b", backend.startsWith("same-node") ? cp : wk, "netshoot");
    if (a.phase !== "Running" || b.phase !== "Running") throw new Error(`pods did not start: ${a.reason ?? b.reason}`);
    progress(`${backend}: gauze pods ${a.ip} and ${b.ip}${ebpf ? " (eBPF datapath)" : ""}`);
    return { backend, lab, client: { netns: a.netns, ip: a.ip!, dev: "eth0" }, server: { netns: b.netns, ip: b.ip!, dev: "eth0" }, clientNode: `gz-${cp}`, ...(base === "vxlan" ? { tunnelBpf: "udp port 8472" } : {}), extraNetns: [] };
  }
  // vxlan-direct: both nodes on one underlay subnet, so DirectRouting routes every peer bare.
  // Agents without the flow observer: this bench weighs the dataplane against flannel's, which
  // records nothing; what observing costs is bench/observe's to say.
  await labUp({ name: lab, nodes: 2, podCidr: "10.244.0.0/16", backend, cni: true, noObserve: true, progress: quiet });
  const a = await podRun(lab, "a", cp, "netshoot");
  const b = await podRun(lab, "b", wk, "netshoot");
  if (a.phase !== "Running" || b.phase !== "Running") throw new Error(`pods did not start: ${a.reason ?? b.reason}`);
  progress(`${backend}: gauze pods ${a.ip} and ${b.ip}`);
  const tunnelBpf = backend === "vxlan" ? "udp port 8472" : backend === "wireguard" ? "udp port 51820" : undefined;
  return { backend, lab, client: { netns: a.netns, ip: a.ip!, dev: "eth0" }, server: { netns: b.netns, ip: b.ip!, dev: "eth0" }, clientNode: `gz-${cp}`, ...(tunnelBpf ? { tunnelBpf } : {}), extraNetns: [] };
}

function iperf(x: Setup, streams: number, seconds: number): { gbps: number; coresBusy: number } {
  const before = cpuTimes();
  const r = runSync(["iperf3", "-c", x.server.ip, "-t", String(seconds), "-P", String(streams), "-J"], { netns: netnsPath(x.client.netns) });
  const after = cpuTimes();
  let bps = NaN;
  try {
    bps = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
  } catch {
    throw new Error(`iperf3 to ${x.server.ip} (${x.backend}): ${r.stderr.trim() || r.stdout.slice(0, 300)}`);
  }
  return { gbps: bps / 1e9, coresBusy: ((after.busy - before.busy) / Math.max(1, after.total - before.total)) * NCPU };
}

const SOCKPERF_PORT = 11111;
/** sockperf learnt IPv6 in 3.8; Debian 12 ships 3.7, which prints its usage for an IPv6 address. */
const RR_SKIPPED_V6 = "not measured over IPv6: Debian 12's sockperf 3.7 speaks IPv4 only";
const rrMeasurable = (x: Setup) => !x.server.ip.includes(":");

/** One sockperf ping-pong run over TCP: one-way latency percentiles in microseconds. */
function requestResponse(x: Setup, seconds: number): { p50: number; p99: number; p999: number } {
  const r = runSync(["sockperf", "ping-pong", "--tcp", "-i", x.server.ip, "-p", String(SOCKPERF_PORT), "-t", String(seconds)], { netns: netnsPath(x.client.netns) });
  const pct = (p: string) => Number(new RegExp(`percentile ${p.replace(".", "\\.")} =\\s*([\\d.]+)`).exec(r.stdout + r.stderr)?.[1]);
  const out = { p50: pct("50.000"), p99: pct("99.000"), p999: pct("99.900") };
  if (!Number.isFinite(out.p50)) throw new Error(`sockperf to ${x.server.ip} (${x.backend}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
  return out;
}

function rtt(x: Setup): { p50Us: number; p99Us: number; n: number } {
  const r = runSync(["ping", "-n", "-c", "200", "-i", "0.005", "-W", "1", x.server.ip], { netns: netnsPath(x.client.netns) });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  if (!times.length) throw new Error(`ping ${x.server.ip} (${x.backend}): no replies`);
  return { p50Us: Math.round(percentile(times, 50)), p99Us: Math.round(percentile(times, 99)), n: times.length };
}

async function wireSizes(x: Setup): Promise<Pick<BackendResult, "ping" | "segment">> {
  const bare = x.tunnelBpf === undefined;
  const echo = x.server.ip.includes(":") ? "icmp6 and ip6[40] == 128" : "icmp[icmptype] == icmp-echo";
  const ping = await captureDuring({ netns: x.clientNode, iface: "eth0", bpf: bare ? echo : x.tunnelBpf!, count: 1 }, () => {
    runSync(["ping", "-n", "-c", "1", "-s", "56", "-W", "1", x.server.ip], { netns: netnsPath(x.client.netns) });
  });
  // Segments as the wire carries them: without segmentation offload on the sender, each TCP
  // segment is a packet of its own (with it, tcpdump would see 64 KB super-packets).
  // (A macvlan takes its features from its parent: for it the node's eth0 decides.)
  for (const f of ["tcp-segmentation-offload", "generic-segmentation-offload"]) {
    setOffload(x.client.dev, f, false, netnsPath(x.client.netns));
    setOffload("eth0", f, false, netnsPath(x.clientNode));
  }
  const seg = await captureDuring({ netns: x.clientNode, iface: "eth0", bpf: `${bare ? "tcp" : x.tunnelBpf!} and greater 1000`, count: 20 }, () => {
    runSync(["iperf3", "-c", x.server.ip, "-t", "1"], { netns: netnsPath(x.client.netns) });
  });
  const biggest = seg.packets.map(sizes).sort((a, b) => b.outerIp - a.outerIp)[0];
  return { ...(ping.packets[0] ? { ping: sizes(ping.packets[0]) } : {}), ...(biggest ? { segment: biggest } : {}) };
}

/**
 * `prefix` names the labs the run makes (<prefix>-vx, <prefix>-hg, ...): two people benchmarking
 * on one host give different ones (a run removes a lab of its own names left from before).
 */
export async function runBench(o: { backends: BenchBackend[]; streams: number[]; seconds: number; rounds: number; progress: Progress; prefix?: string }): Promise<BenchReport> {
  const setups: Setup[] = [];
  const servers: number[] = [];
  const results = new Map<BenchBackend, BackendResult>(o.backends.map((b) => [b, { backend: b, ok: true, tcp: [] }]));
  const tcp = new Map<string, { gbps: number[]; cores: number[] }>();
  const rr = new Map<BenchBackend, { p50: number; p99: number; p999: number }[]>();
  try {
    for (const b of o.backends) {
      try {
        const x = await setUp(b, o.prefix ?? "gzb", o.progress);
        setups.push(x);
        const log = openSync(join(labDir(x.lab), "iperf3.log"), "a");
        try {
          servers.push(startDetached(["iperf3", "-s"], log, { netns: netnsPath(x.server.netns) }));
          if (rrMeasurable(x)) servers.push(startDetached(["sockperf", "server", "--tcp", "-i", x.server.ip, "-p", String(SOCKPERF_PORT)], log, { netns: netnsPath(x.server.netns) }));
        } finally {
          closeSync(log);
        }
      } catch (e) {
        // A lab that failed half way up is not left behind.
        const lab = labName(b, o.prefix ?? "gzb");
        if (labExists(lab) && !setups.some((x) => x.lab === lab)) await labDown(lab, () => undefined).catch(() => undefined);
        results.set(b, { backend: b, ok: false, error: (e as Error).message, tcp: [] });
        o.progress(`${b}: ${(e as Error).message}`);
      }
    }
    await new Promise((r) => setTimeout(r, 300)); // the iperf3 servers listen
    for (let round = 1; round <= o.rounds; round++) {
      for (const x of setups) {
        for (const n of o.streams) {
          const m = iperf(x, n, o.seconds);
          const k = `${x.backend}/${n}`;
          const acc = tcp.get(k) ?? { gbps: [], cores: [] };
          acc.gbps.push(m.gbps);
          acc.cores.push(m.coresBusy);
          tcp.set(k, acc);
          o.progress(`round ${round}/${o.rounds} ${x.backend.padEnd(13)} ${n} stream(s): ${m.gbps.toFixed(2)} Gbit/s, ${m.coresBusy.toFixed(2)} cores busy`);
        }
        if (!rrMeasurable(x)) continue;
        const l = requestResponse(x, Math.min(2, o.seconds));
        rr.set(x.backend, [...(rr.get(x.backend) ?? []), l]);
        o.progress(`round ${round}/${o.rounds} ${x.backend.padEnd(13)} request-response: p50 ${l.p50.toFixed(1)} us, p99 ${l.p99.toFixed(1)} us, p99.9 ${l.p999.toFixed(1)} us`);
      }
    }
    for (const x of setups) {
      const r = results.get(x.backend)!;
      r.tcp = o.streams.map((n) => {
        const acc = tcp.get(`${x.backend}/${n}`)!;
        const gbps = median(acc.gbps);
        const cores = median(acc.cores);
        return { streams: n, gbps: +gbps.toFixed(3), coresBusy: +cores.toFixed(2), coresPerGbps: +(cores / gbps).toFixed(3), rounds: acc.gbps.map((g) => +g.toFixed(3)) };
      });
      const l = rr.get(x.backend) ?? [];
      if (!rrMeasurable(x)) r.rrSkipped = RR_SKIPPED_V6;
      if (l.length) r.rr = { p50Us: +median(l.map((v) => v.p50)).toFixed(1), p99Us: +median(l.map((v) => v.p99)).toFixed(1), p999Us: +median(l.map((v) => v.p999)).toFixed(1), rounds: l.length };
      r.rtt = rtt(x);
      // Two pods on one node never touch eth0: nothing to capture there.
      if (!x.backend.startsWith("same-node")) Object.assign(r, await wireSizes(x));
    }
  } finally {
    for (const pid of servers) { try { process.kill(pid, "SIGTERM"); } catch { /* gone */ } }
    for (const x of setups) {
      for (const ns of x.extraNetns) { try { delNetns(ns); } catch { /* gone */ } }
      await labDown(x.lab, () => undefined);
    }
  }
  const list = o.backends.map((b) => results.get(b)!);
  return { at: new Date().toISOString(), rounds: o.rounds, seconds: o.seconds, results: list, targets: targets(list) };
}

/** The issue's targets, judged on this run's numbers. */
function targets(rs: BackendResult[]): BenchReport["targets"] {
  const by = (b: BenchBackend) => rs.find((r) => r.backend === b && r.ok);
  const out: BenchReport["targets"] = [];
  const g = (r: BackendResult | undefined, n: number) => r?.tcp.find((t) => t.streams === n)?.gbps;
  const none = by("none");
  const twin = by("none-aa");
  for (const n of twin?.tcp.map((t) => t.streams) ?? []) {
    const v = g(twin, n), base = g(none, n);
    if (v !== undefined && base !== undefined) out.push({ what: `none-aa, ${n} stream(s): the underlay again on a lab of its own, against none (A/A: the run's noise band)`, value: `${((v / base) * 100).toFixed(1)} %`, ok: true });
  }
  const v6 = by("vxlan-v6");
  const none6 = by("none-v6");
  for (const n of v6?.tcp.map((t) => t.streams) ?? []) {
    const v = g(v6, n);
    const v4 = g(by("vxlan"), n);
    if (v !== undefined && v4 !== undefined) out.push({ what: `vxlan-v6, ${n} stream(s): against vxlan over IPv4 (informational)`, value: `${((v / v4) * 100).toFixed(1)} %${none6 ? `; ${((v / g(none6, n)!) * 100).toFixed(1)} % of none-v6` : ""}`, ok: true });
  }
  for (const b of ["host-gw", "vxlan-direct", "macvlan"] as const) {
    for (const n of none?.tcp.map((t) => t.streams) ?? []) {
      const v = g(by(b), n);
      if (v !== undefined) out.push({ what: `${b}, ${n} stream(s): at least 95 % of none`, value: `${((v / g(none, n)!) * 100).toFixed(1)} %`, ok: v >= 0.95 * g(none, n)! });
    }
  }
  // The eBPF datapath against the classic one, the underlay and flannel (the issue's targets).
  for (const n of none?.tcp.map((t) => t.streams) ?? []) {
    const v = g(by("host-gw-ebpf"), n);
    if (v !== undefined) out.push({ what: `host-gw-ebpf, ${n} stream(s): at least 95 % of none`, value: `${((v / g(none, n)!) * 100).toFixed(1)} %`, ok: v >= 0.95 * g(none, n)! });
  }
  const rrNone = none?.rr?.p50Us;
  const rrE = by("host-gw-ebpf")?.rr?.p50Us;
  if (rrNone !== undefined && rrE !== undefined) out.push({ what: "host-gw-ebpf: request-response p50 within 10 % of none", value: `${rrE} against ${rrNone} us (${((rrE / rrNone) * 100).toFixed(0)} %)`, ok: rrE <= 1.1 * rrNone });
  for (const [e, c] of [["host-gw-ebpf", "host-gw"], ["vxlan-ebpf", "vxlan"], ["same-node-ebpf", "same-node"], ["vxlan-ebpf", "flannel-style"]] as const) {
    const re = by(e), rc = by(c);
    if (!re || !rc) continue;
    for (const t of re.tcp) {
      const tc = rc.tcp.find((x) => x.streams === t.streams);
      if (!tc) continue;
      out.push({ what: `${e}, ${t.streams} stream(s): faster than ${c}`, value: `${((t.gbps / tc.gbps) * 100).toFixed(1)} % of its throughput`, ok: t.gbps > tc.gbps });
      if (c !== "flannel-style") out.push({ what: `${e}, ${t.streams} stream(s): less CPU per Gbit/s than ${c}`, value: `${t.coresPerGbps} against ${tc.coresPerGbps}`, ok: t.coresPerGbps < tc.coresPerGbps });
    }
    if (re.rr && rc.rr) out.push({ what: `${e}: request-response p50 against ${c} (informational)`, value: `${re.rr.p50Us} against ${rc.rr.p50Us} us, p99 ${re.rr.p99Us} against ${rc.rr.p99Us}`, ok: true });
  }
  const fl = by("flannel-style");
  for (const n of fl?.tcp.map((t) => t.streams) ?? []) {
    const vx = g(by("vxlan"), n);
    if (vx !== undefined) out.push({ what: `vxlan, ${n} stream(s): within 5 % of flannel-style`, value: `${((vx / g(fl, n)!) * 100).toFixed(1)} %`, ok: vx >= 0.95 * g(fl, n)! });
  }
  // What IPv6 adds: VXLAN over an IPv6 underlay carries a 40-byte outer header instead of 20.
  const want: Partial<Record<BenchBackend, number>> = { vxlan: 50, "flannel-style": 50, "host-gw": 0, "vxlan-direct": 0, macvlan: 0, wireguard: 60, none: 0, "none-aa": 0, "none-v6": 0, "vxlan-v6": 70, "host-gw-ebpf": 0, "vxlan-ebpf": 50 };
  for (const r of rs.filter((x) => x.ok && x.ping)) {
    const w = want[r.backend];
    if (w !== undefined) out.push({ what: `${r.backend}: wire overhead ${w} bytes per packet (from the capture)`, value: `${r.ping!.overhead} per ping, ${r.segment?.overhead ?? "?"} per segment`, ok: r.ping!.overhead === w && r.segment?.overhead === w });
  }
  return out;
}

export function formatBench(r: BenchReport): string {
  const streams = r.results.find((x) => x.ok)?.tcp.map((t) => t.streams) ?? [];
  const head = ["backend".padEnd(14), ...streams.map((n) => `Gbit/s x${n}`.padStart(12)), ...streams.map((n) => `cores/Gbps x${n}`.padStart(16)), "RTT p50/p99 us".padStart(16), "RR p50/p99/p99.9 us".padStart(22), "ping IP out/in (+)".padStart(20), "segment IP out/in (+)".padStart(23)].join("");
  const rows = r.results.map((x) => {
    if (!x.ok) return `${x.backend.padEnd(14)}failed: ${x.error}`;
    const sz = (s?: { outerIp: number; innerIp: number; overhead: number }) => (s ? `${s.outerIp}/${s.innerIp} (+${s.overhead})` : "-");
    return [x.backend.padEnd(14), ...x.tcp.map((t) => t.gbps.toFixed(2).padStart(12)), ...x.tcp.map((t) => t.coresPerGbps.toFixed(3).padStart(16)),
      `${x.rtt?.p50Us}/${x.rtt?.p99Us}`.padStart(16), (x.rr ? `${x.rr.p50Us}/${x.rr.p99Us}/${x.rr.p999Us}` : "-").padStart(22), sz(x.ping).padStart(20), sz(x.segment).padStart(23)].join("");
  });
  const t = r.targets.map((x) => `${x.ok ? "ok  " : "MISS"} ${x.what}: ${x.value}`);
  return [`gauze lab bench: ${r.rounds} round(s) of ${r.seconds} s per measurement, medians`, "", head, ...rows, "", ...t].join("\n");
}
