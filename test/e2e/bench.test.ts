// gauze lab bench runs end to end: fresh labs per backend, iperf3 between pods (or nodes for
// `none`), RTT, and the bytes each path adds read from a real capture: 0 for the underlay and
// host-gw, 50 for VXLAN over IPv4 (gauze's and the hand-made flannel one alike), 70 over IPv6; the labs are
// gone afterwards and the chart is written. (Speed is the bench's business, not this test's.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, World, must } from "./helpers.ts";

const w = new World("bn");

test("lab bench: every backend measured; wire overhead from the capture: 0 bare (none, host-gw, vxlan-direct, macvlan), 50 for VXLAN, 70 for VXLAN over IPv6, 60 for WireGuard; labs removed; an SVG chart", { timeout: 240_000 }, () => {
  const svg = join(w.tempDir(), "bench.svg");
  const r = JSON.parse(must([GAUZE, "lab", "bench", "--rounds", "1", "--seconds", "1", "--streams", "1", "--json", "--plot", svg])) as {
    results: { backend: string; ok: boolean; error?: string; tcp: { streams: number; gbps: number }[]; rtt: { p50Us: number }; rr?: { p50Us: number; p99Us: number }; rrSkipped?: string; ping: { outerIp: number; innerIp: number; overhead: number }; segment: { outerIp: number; innerIp: number; overhead: number } }[];
    targets: { what: string; ok: boolean }[];
  };
  assert.deepEqual(r.results.map((x) => `${x.backend} ${x.ok}`), ["none true", "host-gw true", "vxlan true", "vxlan-direct true", "macvlan true", "wireguard true", "flannel-style true", "none-v6 true", "vxlan-v6 true"], JSON.stringify(r.results.map((x) => x.error)));
  const by = Object.fromEntries(r.results.map((x) => [x.backend, x]));
  for (const x of r.results) {
    assert.ok(x.tcp[0]!.gbps > 0.1, `${x.backend}: traffic flowed (${x.tcp[0]!.gbps} Gbit/s)`);
    assert.ok(x.rtt.p50Us > 0);
    // Request-response over IPv4; over IPv6 the reason it is missing (sockperf 3.7 has no IPv6).
    if (x.backend.endsWith("-v6")) assert.match(x.rrSkipped ?? "", /IPv4 only/, `${x.backend}: ${JSON.stringify(x.rr)}`);
    else assert.ok(x.rr && x.rr.p50Us > 0 && x.rr.p99Us >= x.rr.p50Us, `${x.backend}: request-response ${JSON.stringify(x.rr)}`);
    if (x.backend !== "wireguard") assert.equal(x.ping.innerIp, x.backend.endsWith("-v6") ? 104 : 84, `${x.backend}: a 64-byte ping is an 84-byte IPv4 packet, 104 over IPv6`);
  }
  for (const b of ["none", "host-gw", "macvlan"]) assert.deepEqual([by[b]!.ping.overhead, by[b]!.segment.overhead, by[b]!.segment.outerIp], [0, 0, 1500]);
  // DirectRouting sends bare, but pods keep the tunnel's MTU (as flannel's do): peers elsewhere need it.
  assert.deepEqual([by["vxlan-direct"]!.ping.overhead, by["vxlan-direct"]!.segment.overhead, by["vxlan-direct"]!.segment.outerIp], [0, 0, 1450]);
  // WireGuard: the sealed ping is 84 bytes padded to 96; a full segment (1440) needs no padding: 60 either way.
  assert.deepEqual([by.wireguard!.ping.outerIp, by.wireguard!.ping.innerIp, by.wireguard!.ping.overhead, by.wireguard!.segment.outerIp, by.wireguard!.segment.overhead], [156, 96, 60, 1500, 60]);
  for (const b of ["vxlan", "flannel-style"]) assert.deepEqual([by[b]!.ping.outerIp, by[b]!.ping.overhead, by[b]!.segment.outerIp, by[b]!.segment.innerIp], [134, 50, 1500, 1450]);
  // What IPv6 adds: a 40-byte outer header, so 70 bytes per packet; the pods' MTU is 1500 - 70.
  assert.deepEqual([by["vxlan-v6"]!.ping.outerIp, by["vxlan-v6"]!.ping.overhead, by["vxlan-v6"]!.segment.outerIp, by["vxlan-v6"]!.segment.innerIp, by["vxlan-v6"]!.segment.overhead], [174, 70, 1500, 1430, 70]);
  assert.deepEqual([by["none-v6"]!.ping.overhead, by["none-v6"]!.segment.overhead, by["none-v6"]!.segment.outerIp], [0, 0, 1500]);
  assert.ok(r.targets.filter((t) => /wire overhead/.test(t.what)).every((t) => t.ok));
  assert.ok(!must(["ip", "netns", "list"]).includes("gz-gzb-"), "every bench lab is gone");
  const chart = readFileSync(svg, "utf8");
  assert.ok(existsSync(svg) && chart.startsWith("<svg") && ["none", "host-gw", "vxlan", "flannel-style", "+50 B/packet"].every((s) => chart.includes(s)));
});

test("lab bench across the datapath: host-gw and vxlan with --datapath ebpf, pods on one node over the bridge and redirected, the underlay's A/A twin; wire overhead unchanged by the datapath", { timeout: 240_000 }, () => {
  const r = JSON.parse(must([GAUZE, "lab", "bench", "--backends", "none,none-aa,host-gw,host-gw-ebpf,vxlan-ebpf,same-node,same-node-ebpf", "--rounds", "1", "--seconds", "1", "--streams", "1", "--json", "--name", "gzbd"])) as {
    results: { backend: string; ok: boolean; error?: string; tcp: { streams: number; gbps: number }[]; rr?: { p50Us: number }; ping?: { overhead: number } }[];
    targets: { what: string; value: string; ok: boolean }[];
  };
  assert.deepEqual(r.results.map((x) => `${x.backend} ${x.ok}`), ["none true", "none-aa true", "host-gw true", "host-gw-ebpf true", "vxlan-ebpf true", "same-node true", "same-node-ebpf true"], JSON.stringify(r.results.map((x) => x.error)));
  for (const x of r.results) {
    assert.ok(x.tcp[0]!.gbps > 0.1, `${x.backend}: traffic flowed (${x.tcp[0]!.gbps} Gbit/s)`);
    assert.ok(x.rr && x.rr.p50Us > 0, `${x.backend}: request-response measured`);
  }
  const target = (re: RegExp) => r.targets.find((t) => re.test(t.what));
  assert.ok(target(/^host-gw-ebpf: wire overhead 0 bytes/)?.ok, "the eBPF datapath adds nothing on the wire over host-gw");
  assert.ok(target(/^vxlan-ebpf: wire overhead 50 bytes/)?.ok, "and the same 50 bytes over VXLAN (the kernel still encapsulates)");
  assert.match(target(/^none-aa, 1 stream\(s\).*A\/A/)?.value ?? "", /^\d+(\.\d)? %$/, "the A/A twin's ratio is reported");
  assert.ok(target(/^host-gw-ebpf, 1 stream\(s\): at least 95 % of none/), "the issue's target is judged");
  assert.ok(target(/^same-node-ebpf, 1 stream\(s\): faster than same-node/), "and same-node against the bridge");
  assert.ok(!must(["ip", "netns", "list"]).includes("gz-gzbd-"), "every bench lab is gone");
});
