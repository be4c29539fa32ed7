// Real captures: pings through a VXLAN device between two namespaces this test makes, captured
// by tcpdump on the underlay, decoded by `gauze dissect`, and checked against tshark reading
// the same files (counts, addresses, ports, VNI, lengths). Also pcapng, nanosecond pcap,
// Linux cooked v2 (-i any), the CLI's errors, and live `gauze capture`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, World, must, sh } from "./helpers.ts";

const w = new World("x");
const a = w.netns("a");
const b = w.netns("b");
const dir = w.tempDir();

// Underlay 192.168.252.0/30 on a veth, VXLAN VNI 1 on UDP 8472 (flannel's port), overlay 10.202.0.0/24.
must(["ip", "link", "add", `${w.tag}a`, "type", "veth", "peer", "name", `${w.tag}b`]);
must(["ip", "link", "set", `${w.tag}a`, "netns", a, "name", "eth0"]);
must(["ip", "link", "set", `${w.tag}b`, "netns", b, "name", "eth0"]);
// The overlay's neighbours are permanent, as flannel sets them: no ARP ever crosses the tunnel, so
// a capture of N packets holds exactly the pings' N (a stale entry's probe once took two of four).
const vxMac = { a: "02:47:7a:00:00:01", b: "02:47:7a:00:00:02" };
for (const [ns, me, peer, over, mac, peerOver, peerMac] of [[a, "192.168.252.1", "192.168.252.2", "10.202.0.1", vxMac.a, "10.202.0.2", vxMac.b], [b, "192.168.252.2", "192.168.252.1", "10.202.0.2", vxMac.b, "10.202.0.1", vxMac.a]] as const) {
  must(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
  must(["ip", "-n", ns, "-batch", "-"], { input: [
    "link set lo up", `addr add ${me}/30 dev eth0`, "link set eth0 up",
    `link add vx0 address ${mac} type vxlan id 1 dstport 8472 local ${me} remote ${peer} dev eth0 nolearning`, `addr add ${over}/24 dev vx0`,
    `neigh add ${peerOver} lladdr ${peerMac} dev vx0 nud permanent`, "link set vx0 up", "",
  ].join("\n") });
}

/** tcpdump on a's eth0 while `traffic` runs; resolves once tcpdump wrote `count` packets. */
async function captureDuring(file: string, count: number, extra: string[], traffic: () => void, iface = "eth0"): Promise<void> {
  const td = spawn("ip", ["netns", "exec", a, "tcpdump", "-i", iface, "-U", "-c", String(count), "-w", file, ...extra, "udp", "port", "8472"], { stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    td.stderr.on("data", (d: Buffer) => { if (d.toString().includes("listening")) resolve(); });
    td.on("exit", (c) => reject(new Error(`tcpdump exited ${c}`)));
  });
  traffic();
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => { td.kill("SIGINT"); }, 10_000);
    td.on("close", () => { clearTimeout(t); resolve(); });
  });
}

const pcapFile = join(dir, "ping.pcap");

test("a 64-byte ping over VXLAN, captured by tcpdump: gauze reads outer IP 134, inner IP 84, encapsulation 50", async () => {
  await captureDuring(pcapFile, 6, [], () => must(["ip", "netns", "exec", a, "ping", "-c", "3", "-i", "0.2", "10.202.0.2"]));
  const out = must([GAUZE, "dissect", pcapFile]);
  const blocks = out.split(/^#/m).filter(Boolean);
  assert.equal(blocks.length, 6);
  for (const blk of blocks) {
    assert.match(blk, /vxlan vni 1: outer frame 148 bytes, inner frame 98 bytes, encapsulation 50 bytes \(IPv4 20 \+ UDP 8 \+ VXLAN 8 \+ inner Ethernet 14\); outer IP 134, inner IP 84/);
    assert.match(blk, /UDP 8B {2}\d+ > 8472/);
    assert.match(blk, /ICMP 8B {2}echo (request|reply)/);
  }
  const summary = JSON.parse(must([GAUZE, "dissect", pcapFile, "--summary", "--json"])) as { flows: { packets: number; overheadBytes: number; outerBytes: number; vni: number }[]; totals: { tunnelPackets: number; overheadBytes: number } };
  assert.equal(summary.totals.tunnelPackets, 6);
  assert.equal(summary.totals.overheadBytes, 300);
  assert.deepEqual(summary.flows.map((f) => [f.vni, f.packets, f.outerBytes]).sort(), [[1, 3, 402], [1, 3, 402]]);
});

test("tshark as the oracle: same packets, addresses, ports, VNI and lengths", () => {
  const fields = must(["tshark", "-r", pcapFile, "-d", "udp.port==8472,vxlan", "-T", "fields", "-E", "separator=|",
    "-e", "ip.src", "-e", "ip.dst", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "vxlan.vni", "-e", "frame.len", "-e", "ip.len"]);
  const lines = must([GAUZE, "dissect", pcapFile, "--json"]).trim().split("\n").map((l) => JSON.parse(l) as { wireLen: number; layers: Record<string, unknown>[] });
  const rows = fields.trim().split("\n");
  assert.equal(lines.length, rows.length);
  rows.forEach((row, i) => {
    const [src, dst, sport, dport, vni, flen, iplen] = row.split("|");
    const g = lines[i]!;
    const ips = g.layers.filter((l) => l.layer === "ipv4");
    const udps = g.layers.filter((l) => l.layer === "udp");
    assert.equal(ips.map((l) => l.source).join(","), src);
    assert.equal(ips.map((l) => l.destination).join(","), dst);
    assert.equal(String(udps[0]!.sourcePort), sport);
    assert.equal(String(udps[0]!.destinationPort), dport);
    assert.equal(String(g.layers.find((l) => l.layer === "vxlan")!.vni), vni);
    assert.equal(String(g.wireLen), flen);
    assert.equal(ips.map((l) => l.totalLen).join(","), iplen);
  });
});

test("pcapng (written by tshark) and nanosecond pcap (tcpdump) decode the same", async () => {
  const ng = join(dir, "ping.pcapng");
  must(["tshark", "-r", pcapFile, "-F", "pcapng", "-w", ng]);
  const nano = join(dir, "nano.pcap");
  await captureDuring(nano, 2, ["--time-stamp-precision", "nano"], () => must(["ip", "netns", "exec", a, "ping", "-c", "1", "10.202.0.2"]));
  const strip = (s: string) => s.replace(/^#\d+ \S+ /gm, "#");
  assert.equal(strip(must([GAUZE, "dissect", ng])), strip(must([GAUZE, "dissect", pcapFile])));
  const j = JSON.parse(must([GAUZE, "dissect", nano, "--json", "--limit", "1"]).trim()) as { time: string; tunnel: { overheadBytes: number } };
  assert.equal(j.tunnel.overheadBytes, 50);
  assert.match(j.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/, "RFC 3339 with nanoseconds");
});

test("Linux cooked v2 capture on 'any' decodes through to the inner ICMP", async () => {
  const any = join(dir, "any.pcap");
  await captureDuring(any, 2, [], () => must(["ip", "netns", "exec", a, "ping", "-c", "1", "10.202.0.2"]), "any");
  const out = must([GAUZE, "dissect", any, "--filter", "inner icmp"]);
  assert.match(out, /Linux cooked v2 20B/);
  assert.match(out, /encapsulation 50 bytes/);
});

test("dissect: bad files exit non-zero naming offset and packet; bad options exit 2", () => {
  const trunc = join(dir, "trunc.pcap");
  writeFileSync(trunc, readFileSync(pcapFile).subarray(0, 24 + 16 + 148 + 20));
  const r = sh([GAUZE, "dissect", trunc]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /truncated packet #2: needs 164 bytes, the file has 20 left \(at byte offset 188, packet #2\)/);
  assert.match(r.stdout, /^#1 /, "the packet before the damage is still printed");
  const junk = join(dir, "junk.pcap");
  writeFileSync(junk, "this is not a capture");
  assert.match(sh([GAUZE, "dissect", junk]).stderr, /not a capture file: magic 0x74686973/);
  assert.equal(sh([GAUZE, "dissect", join(dir, "missing.pcap")]).status, 1);
  const badFilter = sh([GAUZE, "dissect", pcapFile, "--filter", "frob"]);
  assert.equal(badFilter.status, 2);
  assert.match(badFilter.stderr, /unknown word "frob"/);
  assert.equal(sh([GAUZE, "dissect", pcapFile, "--vxlan-port", "99999"]).status, 2);
  assert.equal(sh([GAUZE, "dissect", pcapFile, "--limit", "0"]).status, 2);
  // From stdin, limited.
  const piped = sh(["sh", "-c", `cat ${pcapFile} | ${GAUZE} dissect - --limit 2 --json`]);
  assert.equal(piped.stdout.trim().split("\n").length, 2);
});

test("gauze capture: live from tcpdump in a namespace, stops on --count, writes the file too", async () => {
  const out = join(dir, "live.pcap");
  const child = spawn(GAUZE, ["capture", "--netns", a, "--iface", "eth0", "--filter", "udp port 8472", "--count", "4", "-w", out, "--summary", "--json"]);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
  await new Promise<void>((resolve) => child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); if (stderr.includes("listening")) resolve(); }));
  must(["ip", "netns", "exec", a, "ping", "-c", "2", "-i", "0.2", "10.202.0.2"]);
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
  assert.equal(code, 0, stderr);
  const r = JSON.parse(stdout) as { totals: { tunnelPackets: number; overheadBytes: number } };
  assert.equal(r.totals.tunnelPackets, 4);
  assert.equal(r.totals.overheadBytes, 200);
  assert.match(stderr, /4 packets, stopped by count/);
  assert.equal(must([GAUZE, "dissect", out, "--summary", "--json"]).includes('"tunnelPackets": 4'), true);
});

test("gauze capture: --duration stops an idle capture; a missing interface is a clear error", async () => {
  const t0 = Date.now();
  const r = sh([GAUZE, "capture", "--netns", a, "--iface", "eth0", "--duration", "1", "--filter", "udp port 9"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /0 packets, stopped by duration/);
  assert.ok(Date.now() - t0 < 5000);
  const bad = sh([GAUZE, "capture", "--netns", a, "--iface", "nope0", "--count", "1"]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /tcpdump failed: .*nope0/);
});

test("gauze capture: a filter word can never become a tcpdump option", () => {
  const planted = join(w.tempDir(), "planted.pcap");
  const r = sh([GAUZE, "capture", "--netns", a, "--iface", "eth0", "--duration", "1", "--filter", `-w ${planted} udp`]);
  assert.notEqual(r.status, 0, "tcpdump reads it as a (bad) filter expression");
  assert.match(r.stderr, /tcpdump failed: .*(syntax|expression|parse)/i);
  assert.equal(existsSync(planted), false, "nothing written where the filter pointed");
});
