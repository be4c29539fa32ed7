// The capture reader and the decoders on synthetic frames whose every length is known:
// pcap and pcapng in both byte orders and resolutions, link types, each decoder, the tunnel
// size annotation, malformed and cut packets, and a fuzz loop over random and mutated input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CaptureReader, CaptureFormatError, type Packet } from "../../src/capture/reader.ts";
import { decodeOptions, dissect } from "../../src/packet/dissect.ts";
import { packetJson, packetText } from "../../src/capture/format.ts";
import { DissectRun } from "../../src/capture/run.ts";
import { Summary, summaryText } from "../../src/capture/summary.ts";
import { captureFilterToBpf, compileFilter } from "../../src/capture/filter.ts";
import { concat, csum, eth, icmpEcho, ipv4, pcap, pcapng, tcp, udp, vxlan, vxlanPing } from "../support/packets.ts";

function readAll(bytes: Uint8Array, chunk = bytes.length): Packet[] {
  const r = new CaptureReader();
  const out: Packet[] = [];
  for (let o = 0; o < bytes.length; o += chunk) {
    r.push(bytes.slice(o, o + chunk));
    for (let p = r.next(); p; p = r.next()) out.push({ ...p, data: p.data.slice() });
  }
  r.end();
  for (let p = r.next(); p; p = r.next()) out.push({ ...p, data: p.data.slice() });
  return out;
}

const opts = decodeOptions();

test("a 64-byte ping over VXLAN: outer IP 134, inner IP 84, encapsulation 50", () => {
  const [p] = readAll(pcap([{ data: vxlanPing() }]));
  const d = dissect(p!, opts);
  assert.equal(d.malformed, undefined);
  assert.deepEqual(d.layers.map((l) => `${l.depth}:${l.kind}:${l.headerLen}`), ["0:eth:14", "0:ipv4:20", "0:udp:8", "0:vxlan:8", "1:eth:14", "1:ipv4:20", "1:icmp:8"]);
  assert.deepEqual({ ...d.tunnel }, { kind: "vxlan", vni: 1, outerIp: 1, tunnelLayer: 3, innerIp: 5, outerIpLen: 134, innerIpLen: 84, encapBytes: 50, outerFrameLen: 148, innerFrameLen: 98 });
  const text = packetText(p!, d);
  assert.match(text, /vxlan vni 1: outer frame 148 bytes, inner frame 98 bytes, encapsulation 50 bytes \(IPv4 20 \+ UDP 8 \+ VXLAN 8 \+ inner Ethernet 14\); outer IP 134, inner IP 84/);
  assert.match(text, /^ {4}IPv4 20B {2}10\.244\.0\.2 > 10\.244\.1\.3, icmp, ttl 64/m);
  assert.match(text, /^ {4}ICMP 8B {2}echo request, id 7, seq 1$/m);
  const j = packetJson(p!, d) as { tunnel: Record<string, unknown>; layers: Record<string, unknown>[] };
  assert.equal(j.tunnel.outerIpLen, 134);
  assert.equal(j.tunnel.innerIpLen, 84);
  assert.equal(j.tunnel.overheadBytes, 50);
  assert.equal(j.layers[3]!.vni, 1);
});

test("pcap: microsecond and nanosecond, little and big endian, all read the same", () => {
  const pkts = [{ data: vxlanPing(), ts: 1700000000.5 }, { data: vxlanPing({ vni: 42 }), ts: 1700000001.25 }];
  for (const nano of [false, true]) for (const bigEndian of [false, true]) {
    const got = readAll(pcap(pkts, { nano, bigEndian }), 7);
    assert.equal(got.length, 2);
    assert.equal(got[0]!.tsSec, 1700000000);
    assert.equal(got[0]!.tsNsec, 500_000_000);
    assert.equal(got[1]!.tsNsec, 250_000_000);
    assert.equal(dissect(got[1]!, opts).tunnel?.vni, 42);
  }
});

test("pcapng: several interfaces, link types, tsresol, simple packets, both byte orders", () => {
  const rawIp = ipv4("10.0.0.1", "10.0.0.2", 1, icmpEcho(8, 1, 1));
  for (const bigEndian of [false, true]) {
    const file = pcapng([{ data: vxlanPing(), iface: 0, ts: 1700000000.123456 }, { data: rawIp, iface: 1, ts: 1700000000.0625 }],
      { bigEndian, ifaces: [{ linkType: 1 }, { linkType: 101, tsresol: 9 }] });
    const got = readAll(file, 5);
    assert.equal(got.length, 2);
    assert.equal(got[0]!.tsNsec, 123456000);
    assert.equal(got[1]!.linkType, 101);
    assert.equal(got[1]!.iface, 1);
    assert.equal(got[1]!.tsSec, 1700000000);
    assert.equal(got[1]!.tsNsec, 62_500_000);
    const d = dissect(got[1]!, opts);
    assert.deepEqual(d.layers.map((l) => l.kind), ["ipv4", "icmp"]);
  }
  const simple = readAll(pcapng([{ data: vxlanPing() }], { simple: true }));
  assert.equal(simple.length, 1);
  assert.equal(dissect(simple[0]!, opts).tunnel?.encapBytes, 50);
});

test("Linux cooked captures (SLL, SLL2), 802.1Q, ARP, IPv6 extension headers, TCP options, Geneve with options", () => {
  const ip = ipv4("10.1.0.1", "10.1.0.2", 6, tcp("10.1.0.1", "10.1.0.2", 1234, 80, 0x02, new Uint8Array(0), [2, 4, 5, 0xb4, 1, 1, 4, 2]));
  const sll = concat(new Uint8Array([0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00]), ip);
  const sll2 = concat(new Uint8Array([0x08, 0x00, 0, 0, 0, 0, 0, 7, 0, 1, 4, 6, 1, 2, 3, 4, 5, 6, 0, 0]), ip);
  const [a] = readAll(pcap([{ data: sll }], { linkType: 113 }));
  const [b] = readAll(pcap([{ data: sll2 }], { linkType: 276 }));
  for (const p of [a!, b!]) {
    const d = dissect(p, opts);
    const t = d.layers.find((l) => l.kind === "tcp");
    assert.ok(t && t.kind === "tcp");
    assert.equal(t.checksumState, "ok");
    assert.match(packetText(p, d), /options \[mss 1460,nop,nop,sackOK\]/);
  }
  assert.equal(dissect(b!, opts).layers[0]!.kind, "sll2");

  const tagged = eth("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806, new Uint8Array([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]), 100);
  const [c] = readAll(pcap([{ data: tagged }]));
  const dc = dissect(c!, opts);
  assert.equal(dc.layers[0]!.kind === "eth" && dc.layers[0]!.vlans[0], 100);
  assert.match(packetText(c!, dc), /vlan 100, ARP\n.*who-has 10\.0\.0\.2 tell 10\.0\.0\.1/);

  // IPv6 with a hop-by-hop and a destination options header before UDP.
  const v6udp = new Uint8Array([0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4]);
  const ext = new Uint8Array([60, 0, 1, 4, 0, 0, 0, 0, /* dest opts: */ 17, 0, 1, 4, 0, 0, 0, 0]);
  const v6 = concat(new Uint8Array([0x60, 0, 0, 0, 0, ext.length + v6udp.length, 0, 64, ...new Array(15).fill(0), 1, 0xfd, ...new Array(14).fill(0), 2]), ext, v6udp);
  const [e] = readAll(pcap([{ data: eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x86dd, v6) }]));
  const de = dissect(e!, opts);
  assert.deepEqual(de.layers.map((l) => `${l.kind}:${l.headerLen}`), ["eth:14", "ipv6:56", "udp:8"]);
  assert.match(packetText(e!, de), /::1 > fd00::2, udp, hlim 64, payload 28, ext 0,60/);

  // Geneve (UDP 6081) with one 4-byte option carrying Ethernet.
  const inner = eth("02:00:00:00:00:0b", "02:00:00:00:00:0a", 0x0800, ipv4("10.9.0.1", "10.9.0.2", 1, icmpEcho(8, 1, 1)));
  const gen = concat(new Uint8Array([0x02, 0x00, 0x65, 0x58, 0, 0, 7, 0, 0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef]), inner);
  const frame = eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, ipv4("172.18.0.2", "172.18.0.3", 17, udp("172.18.0.2", "172.18.0.3", 5000, 6081, gen)));
  const [g] = readAll(pcap([{ data: frame }]));
  const dg = dissect(g!, opts);
  assert.equal(dg.tunnel?.kind, "geneve");
  assert.equal(dg.tunnel?.vni, 7);
  assert.equal(dg.tunnel?.encapBytes, 20 + 8 + 16 + 14);
});

test("VXLAN on a configured port only; the group-policy bit is shown", () => {
  const frame = vxlanPing({ port: 4790 });
  const [p] = readAll(pcap([{ data: frame }]));
  assert.equal(dissect(p!, opts).tunnel, undefined);
  assert.equal(dissect(p!, decodeOptions({ vxlanPorts: [4790] })).tunnel?.encapBytes, 50);
  const gbp = eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, ipv4("172.18.0.2", "172.18.0.3", 17, udp("172.18.0.2", "172.18.0.3", 1, 4789,
    vxlan(5, eth("02:00:00:00:00:04", "02:00:00:00:00:03", 0x0800, ipv4("10.0.0.1", "10.0.0.2", 1, icmpEcho(8, 1, 1))), 0x88))));
  const [q] = readAll(pcap([{ data: gbp }]));
  assert.match(packetText(q!, dissect(q!, opts)), /vni 5, flags \[IG\], group policy 0/);
});

test("checksums: correct, offloaded (partial), and wrong are told apart", () => {
  for (const [mode, word] of [["ok", "correct"], ["partial", "offload"]] as const) {
    const [p] = readAll(pcap([{ data: vxlanPing({ outerChecksum: mode }) }]));
    const d = dissect(p!, opts);
    const u = d.layers[2]!;
    assert.equal(u.kind === "udp" && u.checksumState, mode);
    assert.match(packetText(p!, d), new RegExp(`cksum 0x[0-9a-f]{4} \\(${word}`));
  }
  const broken = vxlanPing({ outerChecksum: "ok" });
  broken[40] = broken[40]! ^ 0xff; // flip a checksum byte of the outer UDP header
  const [b] = readAll(pcap([{ data: broken }]));
  const db = dissect(b!, opts);
  assert.equal(db.layers[2]!.kind === "udp" && db.layers[2]!.checksumState, "bad");
});

test("checksums of nested segments: inner TCP left for offload with the outer UDP computed ahead (LCO), both right, inner UDP without one", () => {
  const innerTcp = (payload: Uint8Array) => eth("0a:58:0a:f4:01:03", "0a:58:0a:f4:00:02", 0x0800,
    ipv4("10.244.0.2", "10.244.1.3", 6, tcp("10.244.0.2", "10.244.1.3", 40001, 5201, 0x18, payload, [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])));
  const overVxlan = (inner: Uint8Array) => eth("02:42:ac:12:00:03", "02:42:ac:12:00:02", 0x0800,
    ipv4("172.18.0.2", "172.18.0.3", 17, udp("172.18.0.2", "172.18.0.3", 40000, 8472, vxlan(1, inner), { checksum: "ok" })));
  const states = (frame: Uint8Array) => {
    const [p] = readAll(pcap([{ data: frame }]));
    return dissect(p!, opts).layers.filter((l) => l.kind === "udp" || l.kind === "tcp").map((l) => (l as { checksumState: string }).checksumState);
  };
  const payload = Uint8Array.from({ length: 1001 }, (_, i) => (i * 31) & 255); // odd length: the byte lanes matter
  const frame = overVxlan(innerTcp(payload));
  assert.deepEqual(states(frame), ["ok", "ok"]);
  // What a veth capture holds: the inner field has only the pseudo-header sum, the outer was
  // computed for the inner's final value.
  const tcpAt = 14 + 20 + 8 + 8 + 14 + 20;
  const pseudoSum = csum([10, 244, 0, 2, 10, 244, 1, 3, 0, 6, ...[(frame.length - tcpAt) >> 8, (frame.length - tcpAt) & 255]]);
  const partial = ~pseudoSum & 0xffff;
  const lco = frame.slice();
  lco[tcpAt + 16] = partial >> 8;
  lco[tcpAt + 17] = partial & 255;
  assert.deepEqual(states(lco), ["lco", "partial"]);
  const wrong = lco.slice();
  wrong[50] = wrong[50]! ^ 1; // an inner MAC byte changed after the outer sum was made
  assert.deepEqual(states(wrong), ["bad", "partial"]);
  // (A changed payload byte would go unseen: with the inner checksum left for offload, nothing
  // in the capture vouches for the payload; the outer sum was made for whatever it holds.)
  // An inner UDP without a checksum still counts in the outer one.
  const innerUdp = eth("0a:58:0a:f4:01:03", "0a:58:0a:f4:00:02", 0x0800, ipv4("10.244.0.2", "10.244.1.3", 17, udp("10.244.0.2", "10.244.1.3", 53, 53, payload)));
  assert.deepEqual(states(overVxlan(innerUdp)), ["ok", "none"]);
});

test("cut by the snaplen is not malformed; headers that lie are", () => {
  const full = vxlanPing();
  const [cut] = readAll(pcap([{ data: full.slice(0, 60), wireLen: full.length }]));
  const dc = dissect(cut!, opts);
  assert.equal(dc.malformed, undefined);
  assert.deepEqual(dc.cut, { layer: "eth", offset: 50 }, "the VXLAN header fits in 60 bytes, the inner Ethernet does not");
  assert.match(packetText(cut!, dc), /\(60 of 148 captured\)[\s\S]*cut by the capture's snapshot length inside eth at offset 50/);

  const liar = ipv4("10.0.0.1", "10.0.0.2", 1, icmpEcho(8, 1, 1), { totalLen: 1500 });
  const [l] = readAll(pcap([{ data: eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, liar) }]));
  const dl = dissect(l!, opts);
  assert.match(dl.malformed?.reason ?? "", /total length 1500 is more than the 84 bytes present/);
  const badIhl = ipv4("10.0.0.1", "10.0.0.2", 1, icmpEcho(8, 1, 1));
  badIhl[0] = 0x43;
  const [h] = readAll(pcap([{ data: eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, badIhl) }]));
  assert.match(dissect(h!, opts).malformed?.reason ?? "", /header length 12 is below 20/);
  const noIbit = vxlanPing();
  noIbit[42] = 0;
  const [v] = readAll(pcap([{ data: noIbit }]));
  assert.match(dissect(v!, opts).malformed?.reason ?? "", /lack the I bit/);
  const [z] = readAll(pcap([{ data: new Uint8Array(0) }]));
  assert.equal(dissect(z!, opts).malformed?.layer, "eth");
  const [u] = readAll(pcap([{ data: new Uint8Array(20) }], { linkType: 147 }));
  assert.match(dissect(u!, opts).malformed?.reason ?? "", /link type 147 is not one gauze decodes/);
});

test("file-level problems name the byte offset and packet number", () => {
  const good = pcap([{ data: vxlanPing() }, { data: vxlanPing() }]);
  const expectErr = (bytes: Uint8Array, re: RegExp) => assert.throws(() => readAll(bytes), (e: unknown) => e instanceof CaptureFormatError && re.test(e.message));
  expectErr(good.slice(0, good.length - 10), /truncated packet #2: needs 164 bytes, the file has 154 left \(at byte offset 188, packet #2\)/);
  expectErr(good.slice(0, 30), /truncated packet record header.*packet #1/);
  expectErr(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), /not a capture file: magic 0x01020304/);
  expectErr(new Uint8Array(0), /empty file/);
  const huge = good.slice();
  new DataView(huge.buffer).setUint32(24 + 8, 0xffffffff, true);
  expectErr(huge, /claims 4294967295 captured bytes, more than any capture holds \(16777216\) \(at byte offset 24, packet #1\)/);
  const ng = pcapng([{ data: vxlanPing() }]);
  const odd = ng.slice();
  new DataView(odd.buffer).setUint32(28 + 20 + 4, 101, true); // EPB length not a multiple of 4
  expectErr(odd, /length 101, not a multiple of 4/);
  const orphan = pcapng([{ data: vxlanPing(), iface: 3 }]);
  expectErr(orphan, /refers to interface 3, but only 1 are described/);
});

test("the display filter", () => {
  const ping = dissect(readAll(pcap([{ data: vxlanPing({ vni: 9 }) }]))[0]!, opts);
  const yes = ["vxlan", "inner icmp", "vni 9", "outer udp port 8472", "host 10.244.1.3", "src 172.18.0.2", "inner host 10.244.0.2 and not tcp", "(tcp or icmp) && tunnel", "udp dst port 8472"];
  const no = ["outer icmp", "vni 1", "inner udp", "tcp", "dst 172.18.0.2", "malformed", "port 53"];
  for (const f of yes) assert.equal(compileFilter(f)(ping), true, f);
  for (const f of no) assert.equal(compileFilter(f)(ping), false, f);
  for (const bad of ["", "vni", "host nope", "frob", "(icmp", "icmp)"]) assert.throws(() => compileFilter(bad), /filter/);
});

test("filters: Wireshark's and tcpdump's spellings read as they mean (tcp.port == 80 was \"unknown word\"); an unknown word lists the words", () => {
  const ping = dissect(readAll(pcap([{ data: vxlanPing({ vni: 9 }) }]))[0]!, opts);
  const yes = ["udp.port == 8472", "udp.dstport==8472", "ip.addr == 10.244.1.3", "ip.src eq 172.18.0.2", "vxlan.vni == 9", "ip.dst != 1.2.3.4 && inner icmp", "ip host 10.244.0.2", "ether", "outer ip.src == 172.18.0.2"];
  const no = ["tcp.port == 8472", "udp.srcport == 8472", "ip.addr != 10.244.1.3", "vxlan.vni == 1", "ip6 host fd00::1"];
  for (const f of yes) assert.equal(compileFilter(f)(ping), true, f);
  for (const f of no) assert.equal(compileFilter(f)(ping), false, f);
  assert.throws(() => compileFilter("frob"), (e: Error) => /unknown word "frob"; the words are: .*\bhost\b.*\bport\b.*tcp\.port ==/.test(e.message));
  // A live capture's filter is tcpdump's: the same spellings become its words.
  assert.equal(captureFilterToBpf("tcp.port == 80 && ip.addr == 10.244.1.2"), "tcp port 80 && host 10.244.1.2");
  assert.equal(captureFilterToBpf("udp.dstport==8472 or ip.src != 10.0.0.1"), "udp dst port 8472 or not src host 10.0.0.1");
  assert.equal(captureFilterToBpf("udp port 8472"), "udp port 8472");
  assert.throws(() => captureFilterToBpf("vxlan.vni == 1"), /cannot see into the tunnel/);
  assert.throws(() => compileFilter("tcp.port 80"), /tcp\.port needs == or != and a value, e\.g\. "tcp\.port == 80"/);
});

test("summary rows per tunnel flow with overhead; streaming in tiny chunks gives the same", () => {
  const file = pcap([{ data: vxlanPing() }, { data: vxlanPing() }, { data: vxlanPing({ vni: 2 }) }]);
  const collect = (chunk: number) => {
    const run = new DissectRun({ mode: "summary", decode: decodeOptions({ detail: false }) }, () => undefined);
    for (let o = 0; o < file.length; o += chunk) run.feed(file.slice(o, o + chunk));
    return run.finish()!;
  };
  const r = collect(file.length);
  assert.deepEqual(collect(3), r);
  assert.equal(r.flows.length, 2);
  const f = r.flows.find((x) => x.vni === 1)!;
  assert.deepEqual({ p: f.packets, o: f.outerBytes, i: f.innerBytes, ov: f.overheadBytes, pct: f.overheadPercent, proto: f.innerProtocol },
    { p: 2, o: 268, i: 168, ov: 100, pct: 37.31, proto: "icmp" });
  assert.equal(r.totals.overheadSharePercent, Math.round((150 / (3 * 148)) * 10000) / 100);
});

test("summary lists the flows that are not tunnelled too (they were left out), and counts in words that agree (not \"1 packets\")", () => {
  const bare = eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, ipv4("10.244.0.2", "10.244.0.3", 1, icmpEcho(8, 7, 1)));
  const arp = eth("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806, new Uint8Array([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 244, 0, 2, 0, 0, 0, 0, 0, 0, 10, 244, 0, 3]));
  const run = new DissectRun({ mode: "summary", decode: decodeOptions({ detail: false }) }, () => undefined);
  run.feed(pcap([{ data: vxlanPing() }, { data: bare }, { data: bare }, { data: arp }]));
  const r = run.finish()!;
  assert.equal(r.totals.packets, 4);
  assert.equal(r.totals.tunnelPackets, 1);
  assert.equal(r.totals.barePackets, 3);
  const icmp = r.flows.find((f) => f.tunnelProtocol === "none" && f.innerProtocol === "icmp")!;
  assert.deepEqual([icmp.outerSource, icmp.outerDestination, icmp.packets, icmp.outerBytes, icmp.overheadBytes], ["10.244.0.2", "10.244.0.3", 2, 168, 0]);
  assert.ok(r.flows.some((f) => f.tunnelProtocol === "none" && f.innerProtocol === "arp" && f.packets === 1));
  assert.equal(r.totals.overheadBytes, 50, "encapsulation counts the tunnel only");
  const text = summaryText(r);
  assert.match(text, /^10\.244\.0\.2\s+10\.244\.0\.3\s+none\s+-\s+-\s+-\s+icmp\s+2\s+168\s+168\s+0\s+0\.00$/m);
  assert.match(text, /totals: 4 packets, \d+ bytes on the wire; 1 tunnelled: .*; 3 not tunnelled/);
  const one = new Summary();
  one.add(dissect(readAll(pcap([{ data: vxlanPing() }]))[0]!, opts));
  assert.match(summaryText(one.report()), /totals: 1 packet, 148 bytes on the wire/);
  assert.doesNotMatch(summaryText(one.report()), /\b1 packets\b/);
});

test("summary memory is bounded: past the limit the smaller flows are folded into one counted row, totals stay exact", () => {
  const s = new Summary(1000);
  let outerTotal = 0;
  for (let i = 0; i < 20_000; i++) {
    // 20 000 distinct inner flows (one packet each), and one big flow of 500 packets throughout.
    const big = i % 40 === 0;
    const frame = vxlanPing({ vni: big ? 7 : 1 + (i % 1000), innerSrc: big ? "10.244.9.9" : `10.244.${(i >> 8) & 255}.${i & 255}` });
    const [p] = readAll(pcap([{ data: frame }]));
    const d = dissect(p!, decodeOptions({ detail: false }));
    outerTotal += d.tunnel!.outerIpLen;
    s.add(d);
    assert.ok((s as unknown as { flows: Map<string, unknown> }).flows.size <= 1000);
  }
  const r = s.report();
  assert.ok(r.flows.length <= 1000);
  assert.equal(r.flows[0]!.vni, 7, "the largest flow is kept");
  assert.equal(r.flows[0]!.packets, 500);
  assert.ok(r.totals.otherFlows.flows > 18_000);
  assert.equal(r.totals.tunnelPackets, 20_000);
  assert.equal(r.totals.outerBytes, outerTotal);
  assert.match(summaryText(r), /\.\.\. and \d+ smaller flows, not listed: \d+ packets/);
});

test("fuzz: random and mutated captures never throw anything but a file error, and always finish", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const base = [pcap([{ data: vxlanPing() }, { data: vxlanPing({ outerChecksum: "ok" }) }]), pcapng([{ data: vxlanPing() }], { ifaces: [{ linkType: 1, tsresol: 9 }] })];
  const decodeAll = (bytes: Uint8Array) => {
    const run = new DissectRun({ mode: "text", decode: opts }, () => undefined);
    try {
      run.feed(bytes);
      run.finish();
    } catch (e) {
      if (!(e instanceof CaptureFormatError)) {
        throw new Error(`input ${Buffer.from(bytes).toString("hex")} threw ${(e as Error).stack}`);
      }
    }
  };
  const started = Date.now();
  for (let i = 0; i < 3000; i++) {
    const src = base[i % base.length]!;
    let bytes: Uint8Array;
    if (i % 10 === 0) {
      bytes = Uint8Array.from({ length: Math.floor(rand() * 400) }, () => Math.floor(rand() * 256));
      if (i % 20 === 0 && bytes.length >= 24) bytes.set(src.slice(0, 24)); // a valid header, garbage after
    } else {
      bytes = src.slice();
      const flips = 1 + Math.floor(rand() * 6);
      for (let k = 0; k < flips; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      if (rand() < 0.2) bytes = bytes.slice(0, Math.floor(rand() * bytes.length));
    }
    decodeAll(bytes);
  }
  assert.ok(Date.now() - started < 20_000, "3000 inputs in well under 20 s");
});

test("a record longer than the snapshot length is read as libpcap reads it: cut to the snapshot length, marked cut, said once (before: the whole file refused)", () => {
  const ping = vxlanPing();
  // Snapshot length 37, but each record claims (and holds) 64 bytes: what some writers produce.
  const file = pcap([{ data: ping.slice(0, 64), wireLen: ping.length }, { data: ping.slice(0, 64), wireLen: ping.length }], { snaplen: 37 });
  const got = readAll(file);
  assert.equal(got.length, 2);
  assert.deepEqual(got.map((p) => [p.data.length, p.clampedFrom, p.wireLen]), [[37, 64, ping.length], [37, 64, ping.length]]);
  const d = dissect(got[0]!, opts);
  assert.equal(d.malformed, undefined);
  assert.ok(d.cut, "marked cut, not malformed");
  const out: string[] = [];
  const run = new DissectRun({ mode: "text", decode: opts }, (b) => { out.push(Buffer.from(b).toString()); });
  run.feed(file);
  run.finish();
  assert.match(run.note ?? "", /^2 packets claim more captured bytes than the file's snapshot length 37 \(the first, #1, 64\): decoded up to the snapshot length and marked cut/);
});

test("BIG TCP: an IPv4 total length of 0 and an IPv6 jumbogram are presumed from the capture, as tcpdump does (before: malformed)", () => {
  const seg = tcp("10.1.0.2", "10.1.0.3", 40000, 5201, 0x10, new Uint8Array(80000 - 40));
  const v4 = ipv4("10.1.0.2", "10.1.0.3", 6, seg, { totalLen: 0 });
  const frame = eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, v4);
  // Captured with a snaplen of 200: only the headers are in the file, the wire length says the rest.
  const [p] = readAll(pcap([{ data: frame.slice(0, 200), wireLen: frame.length }]));
  const d = dissect(p!, opts);
  assert.equal(d.malformed, undefined);
  const ip = d.layers.find((l) => l.kind === "ipv4") as { totalLen: number; presumedLength?: boolean };
  assert.deepEqual([ip.totalLen, ip.presumedLength], [80000, true]);
  assert.match(packetText(p!, d), /len 80000 \[was 0, presumed BIG TCP\]/);
  // IPv6: payload length 0 and a hop-by-hop jumbo option carrying the length.
  const payload = tcp("fd00::2", "fd00::3", 40000, 5201, 0x10, new Uint8Array(70000));
  const hbh = new Uint8Array([6, 0, 0xc2, 4, 0, 0, 0, 0]);
  new DataView(hbh.buffer).setUint32(4, 8 + payload.length);
  const v6h = new Uint8Array(40);
  const hv = new DataView(v6h.buffer);
  hv.setUint32(0, 0x60000000); hv.setUint16(4, 0); v6h[6] = 0; v6h[7] = 64;
  v6h.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 8); v6h.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], 24);
  const f6 = eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x86dd, concat(v6h, hbh, payload));
  const [q] = readAll(pcap([{ data: f6.slice(0, 200), wireLen: f6.length }]));
  const d6 = dissect(q!, opts);
  assert.equal(d6.malformed, undefined);
  const ip6 = d6.layers.find((l) => l.kind === "ipv6") as { payloadLen: number; presumedLength?: boolean };
  assert.deepEqual([ip6.payloadLen, ip6.presumedLength], [8 + payload.length, true]);
  assert.ok(d6.layers.some((l) => l.kind === "tcp"), "decoded through to TCP");
});
