// The eBPF datapath (bpf/datapath.c through src/kernel/bpf/datapath.ts) on two namespaces as
// nodes, joined by a veth "underlay", each with a bridge and pods on it as the classic datapath
// builds them (so ARP and the gateway stay classic). BPF_PROG_TEST_RUN on crafted frames checks
// each decision byte by byte (MACs, TTL, checksum, verdict); then real packets: ping and iperf3
// between pods on one node and across nodes, over host-gw and VXLAN, IPv4 and IPv6, with the
// nodes' IP forwarding OFF (the kernel's router could not have carried them) and the bridge port
// of the receiving pod sending nothing (the bridge did not either). The classic flag sends a pod
// back through the node. The same programs through clsact filters, as on a kernel without tcx.
// bpftool (map dump, link list) and tc are the oracles. Everything is in
// gz-hB* namespaces and one private bpffs, removed even when a test fails.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { addNetns, delNetns, inNetns, netnsPath } from "../../src/kernel/netns.ts";
import { BpfDatapath, DNAT_MARK_NFT, EP_CLASSIC } from "../../src/kernel/bpf/datapath.ts";
import { decide, endpointsFor, planMap, remotesFor } from "../../src/dataplane/ebpf-datapath.ts";
import { ensureBpffs, listPins, removePins, unmountBpffs } from "../../src/kernel/bpf/pin.ts";
import { tcxAttached } from "../../src/kernel/bpf/link.ts";
import { DatapathKeeper } from "../../src/agent/datapath.ts";
import { Rtnl } from "../../src/kernel/netlink/index.ts";
import { nodePaths } from "../../src/node/paths.ts";
import type { Logger } from "pino";

const tag = `gz-hB${process.pid % 10000}`;
const ROOT = `/run/gauze-test-bpfdp-${process.pid}`;
const FS = join(ROOT, "bpffs");
const N1 = `${tag}-n1`, N2 = `${tag}-n2`;
const PODS = [
  { ns: `${tag}-a`, node: N1, host: "hba", ip: "10.250.1.2", ip6: "fd77:1::2", gw: "10.250.1.1", gw6: "fd77:1::1" },
  { ns: `${tag}-b`, node: N1, host: "hbb", ip: "10.250.1.3", ip6: "fd77:1::3", gw: "10.250.1.1", gw6: "fd77:1::1" },
  { ns: `${tag}-c`, node: N2, host: "hbc", ip: "10.250.2.2", ip6: "fd77:2::2", gw: "10.250.2.1", gw6: "fd77:2::1" },
] as const;
const NODE: Record<string, { ip: string; ip6: string; subnet: string; subnet6: string; vtep: string }> = {
  [N1]: { ip: "192.168.77.1", ip6: "fd77::1", subnet: "10.250.1.0/24", subnet6: "fd77:1::/64", vtep: "0e:47:c0:a8:4d:01" },
  [N2]: { ip: "192.168.77.2", ip6: "fd77::2", subnet: "10.250.2.0/24", subnet6: "fd77:2::/64", vtep: "0e:47:c0:a8:4d:02" },
};
let mounted = false;
const dps = new Map<string, BpfDatapath>();
const pinOf = (n: string) => join(FS, n, "datapath");
/** How each node's programs are attached: tcx, or clsact as on a kernel before 6.6 (the last test). */
const modes = new Map<string, "tcx" | "clsact">();
const modeOf = (n: string) => modes.get(n) ?? "tcx";

function sh(args: string[], ns?: string): string {
  const cmd = ns ? ["nsenter", `--net=${netnsPath(ns)}`, ...args] : args;
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", maxBuffer: 1 << 26, timeout: 60000 });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}
const ip = (ns: string, ...a: string[]) => sh(["ip", ...a], ns);
const link = (ns: string, dev: string) => JSON.parse(ip(ns, "-j", "-s", "link", "show", "dev", dev))[0] as { ifindex: number; address: string; stats64: { tx: { packets: number } } };
const sysctl = (ns: string, k: string, v: string) => sh(["sysctl", "-qw", `${k}=${v}`], ns);

before(() => {
  const r = ensureBpffs(FS);
  assert.ok(r.ok, r.ok ? "" : r.why);
  mounted = r.ok && r.mounted;
  for (const n of [N1, N2, ...PODS.map((p) => p.ns)]) addNetns(n);
  // The underlay: one veth between the nodes.
  ip(N1, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", netnsPath(N2));
  for (const n of [N1, N2] as const) {
    const me = NODE[n]!;
    ip(n, "link", "set", "lo", "up");
    ip(n, "addr", "add", `${me.ip}/24`, "dev", "eth0");
    ip(n, "addr", "add", `${me.ip6}/64`, "dev", "eth0", "nodad");
    ip(n, "link", "set", "eth0", "up");
    ip(n, "link", "add", "cni0", "type", "bridge");
    ip(n, "addr", "add", `${me.subnet.replace(".0/24", ".1/24")}`, "dev", "cni0");
    ip(n, "addr", "add", `${me.subnet6.replace("::/64", "::1/64")}`, "dev", "cni0", "nodad");
    ip(n, "link", "set", "cni0", "up");
    // VXLAN as flannel builds it (the agent's backend does this on a real node).
    ip(n, "link", "add", "gauze.1", "address", me.vtep, "type", "vxlan", "id", "1", "dstport", "8472", "local", me.ip, "dev", "eth0", "nolearning");
    ip(n, "addr", "add", `${me.subnet.replace("/24", "/32")}`, "dev", "gauze.1");
    ip(n, "link", "set", "gauze.1", "up");
    const peer = NODE[n === N1 ? N2 : N1]!;
    ip(n, "neigh", "add", peer.subnet.replace("/24", ""), "lladdr", peer.vtep, "dev", "gauze.1", "nud", "permanent");
    sh(["bridge", "fdb", "append", peer.vtep, "dev", "gauze.1", "dst", peer.ip], n);
    // Classic routes via host-gw (used by the classic-flag test and by anything the programs pass).
    ip(n, "route", "add", peer.subnet, "via", peer.ip);
    ip(n, "-6", "route", "add", peer.subnet6, "via", peer.ip6);
  }
  for (const p of PODS) {
    ip(p.node, "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", netnsPath(p.ns));
    ip(p.node, "link", "set", p.host, "master", "cni0", "up");
    ip(p.ns, "link", "set", "lo", "up");
    ip(p.ns, "addr", "add", `${p.ip}/24`, "dev", "eth0");
    ip(p.ns, "addr", "add", `${p.ip6}/64`, "dev", "eth0", "nodad");
    ip(p.ns, "link", "set", "eth0", "up");
    ip(p.ns, "route", "add", "default", "via", p.gw);
    ip(p.ns, "-6", "route", "add", "default", "via", p.gw6);
  }
  for (const n of [N1, N2]) {
    const dp = inNetns(netnsPath(n), () => BpfDatapath.open({ pinDir: pinOf(n), netns: netnsPath(n), mode: "tcx" }));
    dps.set(n, dp);
  }
});

after(() => {
  for (const dp of dps.values()) { try { dp.close(); } catch { /* closed */ } }
  for (const n of [N1, N2]) { try { BpfDatapath.remove(pinOf(n), netnsPath(n)); } catch { /* gone */ } }
  for (const n of [...PODS.map((p) => p.ns), N1, N2]) { try { delNetns(n); } catch { /* gone */ } }
  try { removePins(FS); } catch { /* not there */ }
  if (mounted) unmountBpffs(FS);
  rmSync(ROOT, { recursive: true, force: true });
});

/** The node's map contents for a backend: endpoints from its pods, remotes from two leases. */
function program(backend: "host-gw" | "vxlan", classic: ReadonlySet<string> = new Set()): void {
  const leases = [N1, N2].map((n) => ({ node: n, subnet: NODE[n]!.subnet, ipv6Subnet: NODE[n]!.subnet6, publicIp: NODE[n]!.ip, publicIpv6: NODE[n]!.ip6, backendType: backend, backendData: { vtepMac: NODE[n]!.vtep }, expiresAt: 0 }));
  for (const n of [N1, N2] as const) {
    const dp = dps.get(n)!;
    const gwMac = link(n, "cni0").address;
    const eps = endpointsFor(PODS.filter((p) => p.node === n).map((p) => ({ ips: [p.ip, p.ip6], ifindex: link(n, p.host).ifindex, mac: link(p.ns, "eth0").address, gwMac, classic: classic.has(p.ns) })));
    const rem = remotesFor(leases, n, { backend, underlay: { ifindex: link(n, "eth0").ifindex, subnet: "192.168.77.0/24", subnet6: "fd77::/64" }, tunnel: link(n, "gauze.1").ifindex });
    for (const [m, want] of [[dp.endpoints(), eps], [dp.remotes(), rem]] as const) {
      const typed = m as { entries(): Iterable<[string, object]>; update(k: string, v: object): void; delete(k: string): boolean };
      const plan = planMap(new Map(typed.entries()), want as Map<string, object>);
      for (const [k, v] of plan.put) typed.update(k, v);
      for (const k of plan.del) typed.delete(k);
    }
    for (const p of PODS.filter((x) => x.node === n)) inNetns(netnsPath(n), () => BpfDatapath.attachPod({ pinDir: pinOf(n), netns: netnsPath(n), mode: modeOf(n) }, p.host, link(n, p.host).ifindex));
    dp.attachNet("eth0", link(n, "eth0").ifindex);
    dp.attachNet("gauze.1", link(n, "gauze.1").ifindex);
  }
}

function ping(from: (typeof PODS)[number], to: string, count = 5): string {
  return sh(["ping", "-c", String(count), "-i", "0.05", "-W", "2", to], from.ns);
}

// ---- crafted frames through BPF_PROG_TEST_RUN ----------------------------------------------

/** The Internet checksum of a header: what to write with the field at 0, and 0 over a correct header. */
function checksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const mac = (s: string) => s.split(":").map((x) => parseInt(x, 16));
function frame4(o: { srcMac: string; dstMac: string; src: string; dst: string; ttl: number }): Uint8Array {
  const f = new Uint8Array(14 + 20 + 8 + 16);
  f.set(mac(o.dstMac), 0);
  f.set(mac(o.srcMac), 6);
  f[12] = 0x08; f[13] = 0x00;
  const ipH = f.subarray(14, 34);
  ipH[0] = 0x45; ipH[3] = f.length - 14; ipH[8] = o.ttl; ipH[9] = 1;
  ipH.set(o.src.split(".").map(Number), 12);
  ipH.set(o.dst.split(".").map(Number), 16);
  const c = checksum(ipH);
  ipH[10] = c >> 8; ipH[11] = c & 0xff;
  f[34] = 8; // ICMP echo request; the program does not read it
  return f;
}

/** struct __sk_buff with only ifindex set (offset 40): the device the frame arrived on. */
function skbCtx(ifindex: number): Uint8Array {
  const c = new Uint8Array(192);
  new DataView(c.buffer).setUint32(40, ifindex, true);
  return c;
}

const TC_ACT_REDIRECT = 7, NEXT = -1;

test("test run: each decision of from_pod and from_net, byte by byte", () => {
  program("host-gw");
  const dp = dps.get(N1)!;
  const [a, b] = [PODS[0], PODS[1]];
  const ha = link(N1, a.host).ifindex;
  const gw = link(N1, "cni0").address, macA = link(a.ns, "eth0").address, macB = link(b.ns, "eth0").address;
  const run = (prog: "from_pod" | "from_net", f: Uint8Array, ifindex: number) => inNetns(netnsPath(N1), () => dp.obj.program(prog).testRun({ data: f, ctx: skbCtx(ifindex) }));
  const before = dp.stats();
  // Same node: redirected into b, MACs b's and a's, TTL kept (switched on the classic path too).
  let r = run("from_pod", frame4({ srcMac: macA, dstMac: macB, src: a.ip, dst: b.ip, ttl: 64 }), ha);
  assert.equal(r.retval, TC_ACT_REDIRECT);
  assert.deepEqual([...r.dataOut.subarray(0, 12)], [...mac(macB), ...mac(macA)]);
  assert.equal(r.dataOut[22], 64);
  // Another node: routed, so TTL 63 and a checksum that still verifies.
  r = run("from_pod", frame4({ srcMac: macA, dstMac: gw, src: a.ip, dst: PODS[2].ip, ttl: 64 }), ha);
  assert.equal(r.retval, TC_ACT_REDIRECT);
  assert.equal(r.dataOut[22], 63);
  assert.equal(checksum(r.dataOut.subarray(14, 34)), 0, "the IPv4 header checksum is right after the TTL change");
  // Not ours: to the node, to the world, a Service address; TTL 1; a spoofed source.
  for (const [dst, src, ttl] of [[NODE[N1]!.ip, a.ip, 64], ["8.8.8.8", a.ip, 64], ["10.96.0.10", a.ip, 64], [PODS[2].ip, a.ip, 1], [PODS[2].ip, "10.250.1.99", 64], [PODS[2].ip, b.ip, 64]] as const) {
    const f = frame4({ srcMac: macA, dstMac: gw, src, dst, ttl });
    r = run("from_pod", f, ha);
    assert.equal(r.retval, NEXT, `${src} -> ${dst} ttl ${ttl} goes the classic way`);
    assert.deepEqual(r.dataOut, f, "untouched");
  }
  // Arriving for a pod of this node: into it, from the gateway's MAC, TTL - 1.
  r = run("from_net", frame4({ srcMac: "02:00:00:00:00:09", dstMac: "02:00:00:00:00:01", src: PODS[2].ip, dst: a.ip, ttl: 63 }), link(N1, "eth0").ifindex);
  assert.equal(r.retval, TC_ACT_REDIRECT);
  assert.deepEqual([...r.dataOut.subarray(0, 12)], [...mac(macA), ...mac(gw)]);
  assert.equal(r.dataOut[22], 62);
  assert.equal(checksum(r.dataOut.subarray(14, 34)), 0);
  r = run("from_net", frame4({ srcMac: "02:00:00:00:00:09", dstMac: "02:00:00:00:00:01", src: PODS[2].ip, dst: NODE[N1]!.ip, ttl: 64 }), link(N1, "eth0").ifindex);
  assert.equal(r.retval, NEXT, "to the node itself: classic");
  const after = dp.stats();
  assert.deepEqual([after.local - before.local, after.direct - before.direct, after.inbound - before.inbound, after.ttl - before.ttl, after.spoof - before.spoof], [1, 1, 1, 1, 1],
    "one each (the unknown source 10.250.1.99 is not a pod's: passed, not counted as b's spoof)");
  // The classic flag: neither from nor to the pod.
  const ep = dp.endpoints().lookup(a.ip)!;
  dp.endpoints().update(a.ip, { ...ep, flags: EP_CLASSIC });
  assert.equal(run("from_pod", frame4({ srcMac: macA, dstMac: gw, src: a.ip, dst: PODS[2].ip, ttl: 64 }), ha).retval, NEXT);
  assert.equal(run("from_net", frame4({ srcMac: "02:00:00:00:00:09", dstMac: "02:00:00:00:00:01", src: PODS[2].ip, dst: a.ip, ttl: 63 }), link(N1, "eth0").ifindex).retval, NEXT);
  dp.endpoints().update(a.ip, ep);
});

test("decide(), the model trace names redirects by, agrees with the programs on every case (same maps, BPF_PROG_TEST_RUN as the truth)", () => {
  program("host-gw");
  const dp = dps.get(N1)!;
  const [a, b] = [PODS[0], PODS[1]];
  const ha = link(N1, a.host).ifindex, eth0 = link(N1, "eth0").ifindex;
  const eps = new Map(dp.endpoints().entries()), rem = new Map(dp.remotes().entries());
  const cases: ["from_pod" | "from_net", string, string, number][] = [
    ["from_pod", a.ip, b.ip, ha], ["from_pod", a.ip, PODS[2].ip, ha], ["from_pod", a.ip, NODE[N1]!.ip, ha], ["from_pod", a.ip, "10.96.0.10", ha],
    ["from_pod", b.ip, PODS[2].ip, ha], ["from_pod", "10.250.1.99", PODS[2].ip, ha], ["from_pod", a.ip, a.ip, ha],
    ["from_net", PODS[2].ip, a.ip, eth0], ["from_net", PODS[2].ip, NODE[N1]!.ip, eth0], ["from_net", NODE[N1]!.ip, a.ip, eth0], ["from_net", "8.8.8.8", b.ip, eth0],
  ];
  for (const [prog, src, dst, ifindex] of cases) {
    const before = dp.stats();
    const r = inNetns(netnsPath(N1), () => dp.obj.program(prog).testRun({ data: frame4({ srcMac: "02:00:00:00:00:09", dstMac: "02:00:00:00:00:01", src, dst, ttl: 64 }), ctx: skbCtx(ifindex) }));
    const after = dp.stats();
    const d = decide(prog === "from_pod" ? "from-pod" : "from-net", src, dst, eps, rem, ifindex);
    // (a stray packet of the namespace's own, an IPv6 router solicitation, may add a "pass")
    const moved = (Object.keys(after) as (keyof typeof after)[]).filter((k) => after[k] !== before[k] && (k !== "pass" || d.stat === "pass"));
    assert.equal(r.retval === TC_ACT_REDIRECT, d.action !== "classic", `${prog} ${src} -> ${dst}: the program ${r.retval === TC_ACT_REDIRECT ? "redirects" : "passes"}, the model says ${d.action} (${d.why})`);
    assert.deepEqual(moved, [d.stat], `${prog} ${src} -> ${dst}: counted as ${moved.join(",")}, the model says ${d.stat}`);
  }
});

test("maps: what the codecs write is what bpftool reads; the pins and links are where the plugin looks", () => {
  program("vxlan");
  const dp = dps.get(N1)!;
  type Entry = { key: string[]; value: string[] };
  const hex = (a: string[]) => a.map((x) => parseInt(x, 16));
  const dump = (m: string) => JSON.parse(sh(["bpftool", "-j", "map", "dump", "pinned", join(pinOf(N1), m)])) as Entry[];
  const eps = dump("endpoints");
  const a = eps.find((e) => hex(e.key).slice(4, 8).join(".") === PODS[0].ip)!;
  assert.ok(a, JSON.stringify(eps));
  const v = hex(a.value);
  assert.equal(v[0]! | (v[1]! << 8), link(N1, PODS[0].host).ifindex);
  assert.equal(v.slice(8, 14).map((x) => x.toString(16).padStart(2, "0")).join(":"), link(PODS[0].ns, "eth0").address);
  assert.equal(eps.length, 4, "two pods, two families");
  const rem = dump("remotes");
  assert.deepEqual(rem.map((e) => [hex(e.key)[0]! - 32, hex(e.key).slice(8, 12).join("."), hex(e.value).slice(0, 4).join("."), hex(e.value)[21]]).filter((x) => x[0] === 24),
    [[24, "10.250.2.0", "10.250.2.0", 2]], "N2's subnet via its VTEP address into the tunnel");
  assert.deepEqual([...dp.remotes().entries()].map(([k, r]) => [k, r.nexthop, r.mode]).sort(), [["10.250.2.0/24", "10.250.2.0", "tunnel"]],
    "IPv6 over VXLAN needs gauze6.1, which this node does not have: left to the classic path");
  assert.deepEqual(listPins(pinOf(N1)), ["endpoints", "links/net-eth0", "links/net-gauze_1", "links/pod-hba", "links/pod-hbb", "nat_flows", "prog/from_net", "prog/from_pod", "prog/watch_nat", "remotes", "stats"]);
  const ids = new Set((JSON.parse(sh(["bpftool", "-j", "link", "list"])) as { id: number }[]).map((l) => l.id));
  const q = tcxAttached(link(N1, PODS[0].host).ifindex, "ingress", netnsPath(N1));
  assert.ok(q.linkIds.length === 1 && ids.has(q.linkIds[0]!), "bpftool lists the pod's link");
  assert.ok(BpfDatapath.podAttached({ pinDir: pinOf(N1), netns: netnsPath(N1), mode: "tcx" }, link(N1, PODS[0].host).ifindex));
});

/** Real packets with the nodes' forwarding off: only the programs can carry them between namespaces. */
function noForwarding(on: boolean): void {
  for (const n of [N1, N2]) {
    sysctl(n, "net.ipv4.ip_forward", on ? "1" : "0");
    sysctl(n, "net.ipv6.conf.all.forwarding", on ? "1" : "0");
  }
}

test("host-gw: same node and across nodes, IPv4 and IPv6, with forwarding off and the bridge idle", () => {
  program("host-gw");
  noForwarding(false);
  const s1 = dps.get(N1)!.stats(), s2 = dps.get(N2)!.stats();
  // Neighbours first (ARP and ND are classic and go through the bridge), then count.
  ping(PODS[0], PODS[1].ip, 1);
  ping(PODS[0], PODS[1].ip6, 1);
  // tcpdump on b's bridge port: a packet the bridge forwarded to b would leave through it.
  const seen = sh(["sh", "-c", `timeout 5 nsenter --net=${netnsPath(N1)} tcpdump -lni ${PODS[1].host} "icmp or icmp6" 2>/dev/null & sleep 0.5; `
    + `nsenter --net=${netnsPath(PODS[0].ns)} ping -c 10 -i 0.05 ${PODS[1].ip} >/dev/null && nsenter --net=${netnsPath(PODS[0].ns)} ping -c 10 -i 0.05 ${PODS[1].ip6} >/dev/null && echo PINGS-OK; sleep 0.3; kill %1; wait`]);
  assert.match(seen, /PINGS-OK/);
  assert.doesNotMatch(seen, /echo request/, "no echo request crossed b's bridge port: the bridge was skipped");
  ping(PODS[0], PODS[2].ip, 10);
  ping(PODS[1], PODS[2].ip6, 10);
  const t1 = dps.get(N1)!.stats(), t2 = dps.get(N2)!.stats();
  assert.ok(t1.local - s1.local >= 40, `same node: ${t1.local - s1.local} redirected to the peer`);
  assert.ok(t1.direct - s1.direct >= 20 && t2.inbound - s2.inbound >= 20, `across: ${t1.direct - s1.direct} out of the underlay, ${t2.inbound - s2.inbound} into the pod`);
  assert.match(ping(PODS[0], PODS[2].ip, 1), /ttl=62/, "two routed hops, as on the classic path");
  const out = sh(["timeout", "20", "sh", "-c", `iperf3 -s -1 -D -B ${PODS[2].ip} >/dev/null; sleep 0.3; nsenter --net=${netnsPath(PODS[0].ns)} iperf3 -c ${PODS[2].ip} -t 2 -J`], PODS[2].ns);
  const gbps = (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  assert.ok(gbps > 0.5, `iperf3 across nodes: ${gbps.toFixed(2)} Gbit/s`);
  noForwarding(true);
});

test("vxlan: into the tunnel device (the kernel encapsulates), out of it into the pod", () => {
  program("vxlan");
  noForwarding(false);
  const s1 = dps.get(N1)!.stats(), s2 = dps.get(N2)!.stats();
  const cap = spawnSync("sh", ["-c", `timeout 3 nsenter --net=${netnsPath(N1)} tcpdump -ni eth0 -c 5 udp port 8472 2>/dev/null & sleep 0.5; nsenter --net=${netnsPath(PODS[0].ns)} ping -c 5 -i 0.05 ${PODS[2].ip}; wait`], { encoding: "utf8" });
  assert.match(cap.stdout, /5 packets transmitted, 5 received/, cap.stdout + cap.stderr);
  assert.match(cap.stdout, /192\.168\.77\.1\.\d+ > 192\.168\.77\.2\.8472: (OTV|VXLAN)/, "encapsulated on the underlay");
  const t1 = dps.get(N1)!.stats(), t2 = dps.get(N2)!.stats();
  assert.ok(t1.tunnel - s1.tunnel >= 5 && t2.inbound - s2.inbound >= 5, `tunnel ${t1.tunnel - s1.tunnel}, inbound ${t2.inbound - s2.inbound}`);
  noForwarding(true);
});

test("the classic flag: the pod's packets go through the node (and stop when the node does not forward)", () => {
  program("host-gw", new Set([PODS[0].ns]));
  const s = dps.get(N1)!.stats();
  ping(PODS[0], PODS[2].ip, 3);
  assert.ok(dps.get(N1)!.stats().classic - s.classic >= 3);
  noForwarding(false);
  const r = spawnSync("nsenter", [`--net=${netnsPath(PODS[0].ns)}`, "ping", "-c", "2", "-W", "1", PODS[2].ip], { encoding: "utf8" });
  assert.notEqual(r.status, 0, "classic and no forwarding: nothing gets through, so nothing was redirected");
  noForwarding(true);
  program("host-gw");
});

test("a Service's DNAT (kube-proxy's rule shape): its replies go back through conntrack, not around it", () => {
  program("host-gw");
  const a = PODS[0], c = PODS[2];
  const dp = dps.get(N1)!;
  // kube-proxy's ClusterIP rule shape on a's node, to c on the other node; the agent's mark table.
  sh(["iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-d", "10.96.0.10/32", "-p", "tcp", "--dport", "5201", "-j", "DNAT", "--to-destination", `${c.ip}:5201`], N1);
  const r0 = spawnSync("nsenter", [`--net=${netnsPath(N1)}`, "nft", "-f", "-"], { input: DNAT_MARK_NFT, encoding: "utf8" });
  assert.equal(r0.status, 0, r0.stderr);
  const tcp = () => spawnSync("sh", ["-c", `nsenter --net=${netnsPath(c.ns)} timeout 10 iperf3 -s -1 -p 5201 -B ${c.ip} >/dev/null 2>&1 & sleep 0.4; nsenter --net=${netnsPath(a.ns)} timeout 8 iperf3 -c 10.96.0.10 -p 5201 -t 1 -J; wait`], { encoding: "utf8" });
  // Without watch_nat the reply (from c's address) is redirected straight into a, which never
  // sent to c's address: the connection cannot open.
  const bad = tcp();
  assert.match(bad.stdout, /"error"/, "without the NAT watch the Service connection fails");
  for (const dev of ["eth0", "cni0"]) dp.attachWatch(dev, link(N1, dev).ifindex);
  const s = dp.stats();
  const good = tcp();
  const gbps = (JSON.parse(good.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  assert.ok(gbps > 0.1, `through the Service address: ${gbps.toFixed(2)} Gbit/s`);
  const t = dp.stats();
  assert.ok(t.natSeen - s.natSeen > 10 && t.nat - s.nat > 10, `watch_nat saw ${t.natSeen - s.natSeen} DNATed packets leave, ${t.nat - s.nat} replies went to conntrack`);
  sh(["iptables", "-w", "-t", "nat", "-F", "PREROUTING"], N1);
  sh(["nft", "delete", "table", "inet", "gauze_datapath"], N1);
});

test("a node where the datapath cannot load stays classic, said once, with the fix", () => {
  const said: string[] = [];
  const log = { info: () => undefined, warn: () => undefined, error: (o: { err: string }, m: string) => { said.push(`${m}: ${o.err}`); } } as unknown as Logger;
  const k = new DatapathKeeper({ node: "n", nodePinDir: join(ROOT, "not-bpffs"), paths: nodePaths(join(ROOT, "root")), bridge: "cni0", log, classic: () => new Set() });
  const nl = Rtnl.open({ netns: netnsPath(N1) });
  try {
    assert.equal(k.start(nl, { backend: "host-gw", directRouting: false, underlay: { iface: "eth0", index: link(N1, "eth0").ifindex, ip: "192.168.77.1" }, tunnels: [] }), false);
  } finally {
    nl.close();
  }
  assert.equal(k.feature.on, false);
  assert.match(k.feature.why ?? "", /bpffs is not mounted/);
  assert.match(k.feature.fix ?? "", /Datapath.*classic/);
  assert.equal(k.pluginConfig(), undefined, "the conflist gets no datapath block: pods attach the classic way");
  assert.equal(said.length, 1, said.join("\n"));
});

test("detach and remove: nothing attached, nothing pinned", () => {
  const o = { pinDir: pinOf(N2), netns: netnsPath(N2), mode: "tcx" as const };
  assert.ok(BpfDatapath.detachPod(o, PODS[2].host, link(N2, PODS[2].host).ifindex));
  assert.deepEqual(tcxAttached(link(N2, PODS[2].host).ifindex, "ingress", netnsPath(N2)).progIds, []);
  assert.equal(BpfDatapath.podAttached(o, link(N2, PODS[2].host).ifindex), false, "CHECK would name it");
  dps.get(N2)!.close();
  dps.delete(N2);
  const removed = BpfDatapath.remove(pinOf(N2), netnsPath(N2));
  assert.ok(removed.some((x) => x.endsWith("links/net-eth0")), removed.join("\n"));
  assert.deepEqual(tcxAttached(link(N2, "eth0").ifindex, "ingress", netnsPath(N2)).progIds, []);
  assert.deepEqual(listPins(pinOf(N2)), []);
});

test("clsact (a kernel before 6.6, without tcx): the same programs as named tc filters, tc lists them, packets redirected both ways; removed to nothing", () => {
  // N2 again (the test before removed its tcx datapath), attached through clsact; N1 stays on tcx.
  const o = { pinDir: pinOf(N2), netns: netnsPath(N2), mode: "clsact" as const };
  modes.set(N2, "clsact");
  dps.set(N2, inNetns(netnsPath(N2), () => BpfDatapath.open(o)));
  program("host-gw");
  noForwarding(false);
  const filters = (dev: string) => sh(["tc", "filter", "show", "dev", dev, "ingress"], N2);
  for (const dev of ["eth0", "gauze.1", PODS[2].host]) assert.match(filters(dev), /gauze-datapath-/, `tc: a named bpf filter at ${dev}'s ingress`);
  assert.deepEqual(tcxAttached(link(N2, "eth0").ifindex, "ingress", netnsPath(N2)).progIds, [], "and no tcx link");
  assert.ok(BpfDatapath.podAttached(o, link(N2, PODS[2].host).ifindex), "CHECK finds the pod's filter");
  const s2 = dps.get(N2)!.stats();
  ping(PODS[0], PODS[2].ip, 10);
  const t2 = dps.get(N2)!.stats();
  assert.ok(t2.inbound - s2.inbound >= 10, `into the pod through the filter: ${t2.inbound - s2.inbound}`);
  assert.ok(t2.direct - s2.direct >= 10, `the replies out of the underlay through the pod's filter: ${t2.direct - s2.direct}`);
  dps.get(N2)!.close();
  dps.delete(N2);
  BpfDatapath.remove(pinOf(N2), netnsPath(N2));
  for (const dev of ["eth0", "gauze.1", PODS[2].host]) assert.doesNotMatch(filters(dev), /gauze-datapath-/, `tc: nothing left at ${dev}`);
  assert.deepEqual(listPins(pinOf(N2)), []);
  noForwarding(true);
});
