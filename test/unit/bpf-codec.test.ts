// The codecs between TypeScript and the programs' structs: every field the TypeScript side reads
// or writes sits where clang laid it out, with the object's DWARF (llvm-dwarfdump) as the
// oracle: each struct is filled field by field at DWARF's offsets and decoded, or encoded and
// read back at DWARF's offsets. Plus the generic codecs and the CPU list parser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { bytes, decode, encode, parseCpuList, u16, u32, u64, u64n, u8 } from "../../src/kernel/bpf/map.ts";
import { EVENT_SIZE, cacheSlot, configCodec, decodeFlowEvent, flowCacheCodec, flowKeyCodec, flowStateCodec } from "../../src/kernel/bpf/flow-codec.ts";
import { DROP_EVENT_SIZE, decodeDropEvent } from "../../src/kernel/bpf/drops.ts";

const DIST = join(import.meta.dirname, "..", "..", "dist", "bpf");

interface Layout { size: number; at: Record<string, number> }

/** struct name -> size and member offsets, from llvm-dwarfdump. */
function dwarf(object: string): Map<string, Layout> {
  const r = spawnSync("llvm-dwarfdump", ["--debug-info", join(DIST, object)], { encoding: "utf8", maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  const out = new Map<string, Layout>();
  let cur: Layout | undefined;
  let member: string | undefined;
  let lastTag = "";
  for (const line of r.stdout.split("\n")) {
    const tag = /DW_TAG_(\w+)/.exec(line)?.[1];
    if (tag) { lastTag = tag; member = undefined; if (tag !== "member") cur = tag === "structure_type" ? { size: 0, at: {} } : undefined; continue; }
    const name = /DW_AT_name\s+\("([^"]*)"\)/.exec(line)?.[1];
    if (name !== undefined) {
      if (lastTag === "structure_type" && cur && !out.has(name)) out.set(name, cur);
      if (lastTag === "member") member = name;
    }
    const size = /DW_AT_byte_size\s+\((0x[0-9a-f]+)\)/.exec(line)?.[1];
    if (size && lastTag === "structure_type" && cur) cur.size = Number(size);
    const loc = /DW_AT_data_member_location\s+\((0x[0-9a-f]+)\)/.exec(line)?.[1];
    if (loc && lastTag === "member" && member && cur) cur.at[member] = Number(loc);
  }
  return out;
}

const observe = dwarf("observe.o");
const drops = dwarf("drops.o");

test("struct sizes the TypeScript side assumes", () => {
  assert.equal(observe.get("flow_key")!.size, flowKeyCodec.size);
  assert.equal(observe.get("flow_state")!.size, flowStateCodec.size);
  assert.equal(observe.get("flow_cache")!.size, flowCacheCodec.size);
  assert.equal(observe.get("config")!.size, configCodec.size);
  assert.equal(observe.get("flow_event")!.size, EVENT_SIZE);
  assert.equal(drops.get("drop_event")!.size, DROP_EVENT_SIZE);
});

test("flow keys and flow state encode and decode at the C offsets", () => {
  const K = observe.get("flow_key")!.at;
  const src = Uint8Array.from({ length: 16 }, (_, i) => i + 1), dst = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);
  const key = { ifindex: 0x01020304, egress: true, family: 6, proto: 17, tunnel: true, src, dst, sport: 0xabcd, dport: 0x1234 };
  const b = encode(flowKeyCodec, key);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(K.ifindex!, true), 0x01020304);
  assert.deepEqual([v.getUint8(K.egress!), v.getUint8(K.family!), v.getUint8(K.proto!), v.getUint8(K.tunnel!)], [1, 6, 17, 1]);
  assert.deepEqual(b.subarray(K.src!, K.src! + 16), src);
  assert.deepEqual(b.subarray(K.dst!, K.dst! + 16), dst);
  assert.deepEqual([v.getUint16(K.sport!, true), v.getUint16(K.dport!, true)], [0xabcd, 0x1234]);
  assert.deepEqual(decode(flowKeyCodec, b), key);
  const S = observe.get("flow_state")!.at;
  const st = { firstNs: 1, lastNs: 2, lastReportNs: 3, packets: 4, bytes: 5, reportedPackets: 6, reportedBytes: 7, flagsSeen: 0x12 };
  const sb = encode(flowStateCodec, st);
  const sv = new DataView(sb.buffer);
  const names: [keyof typeof st, string][] = [["firstNs", "first_ns"], ["lastNs", "last_ns"], ["lastReportNs", "last_report_ns"], ["packets", "packets"], ["bytes", "bytes"], ["reportedPackets", "reported_packets"], ["reportedBytes", "reported_bytes"]];
  for (const [js, c] of names) assert.equal(Number(sv.getBigUint64(S[c]!, true)), st[js], c);
  assert.equal(sv.getUint8(S.flags_seen!), 0x12);
  assert.deepEqual(decode(flowStateCodec, sb), st);
});

test("a flow's per-CPU slot encodes at the C offsets; the slot of a key spreads keys and is the reply's only by chance", () => {
  const C = observe.get("flow_cache")!.at;
  const key = { ifindex: 7, egress: false, family: 4, proto: 6, tunnel: false, src: Uint8Array.from([10, 0, 0, 1, ...new Array(12).fill(0)]), dst: Uint8Array.from([10, 0, 0, 2, ...new Array(12).fill(0)]), sport: 40000, dport: 80 };
  const slot = { key, valid: true, packets: 11, bytes: 22, lastNs: 33, reportNs: 44, flagsSeen: 0x18 };
  const b = encode(flowCacheCodec, slot);
  const v = new DataView(b.buffer);
  assert.equal(C.key, 0);
  assert.equal(v.getUint32(C.valid!, true), 1);
  for (const [js, c] of [["packets", "packets"], ["bytes", "bytes"], ["lastNs", "last_ns"], ["reportNs", "report_ns"]] as const) assert.equal(Number(v.getBigUint64(C[c]!, true)), slot[js], c);
  assert.equal(v.getUint8(C.flags_seen!), 0x18);
  assert.deepEqual(decode(flowCacheCodec, b), slot);
  // 4096 flows of one host pair by source port fill most of the 1024 slots; none falls outside.
  const used = new Set<number>();
  for (let p = 0; p < 4096; p++) used.add(cacheSlot({ ...key, sport: 30000 + p }));
  assert.ok([...used].every((x) => Number.isInteger(x) && x >= 0 && x < 1024));
  assert.ok(used.size > 900, `${used.size} slots used`);
  assert.notEqual(cacheSlot(key), cacheSlot({ ...key, src: key.dst, dst: key.src, sport: 80, dport: 40000 }), "this reply lands elsewhere");
});

test("config encodes VXLAN ports, interval and the trace match at the C offsets", () => {
  const C = observe.get("config")!.at, T = observe.get("trace_match")!.at;
  const t = C.trace!;
  const b = encode(configCodec, { vxlanPorts: [8472, 4789], reportIntervalNs: 5e9, trace: { src: "10.244.1.2", dst: "10.244.2.3", proto: 6, srcPort: 40000, dstPort: 80 } });
  const v = new DataView(b.buffer);
  assert.equal(Number(v.getBigUint64(C.report_interval_ns!, true)), 5e9);
  assert.deepEqual([v.getUint16(C.vxlan_ports!, true), v.getUint16(C.vxlan_ports! + 2, true), v.getUint16(C.vxlan_ports! + 4, true)], [8472, 4789, 0]);
  assert.deepEqual([v.getUint8(t + T.enabled!), v.getUint8(t + T.family!), v.getUint8(t + T.proto!), v.getUint8(t + T.both_ways!), v.getUint8(t + T.has_src!), v.getUint8(t + T.has_dst!)], [1, 4, 6, 1, 1, 1]);
  assert.deepEqual([v.getUint16(t + T.sport!, true), v.getUint16(t + T.dport!, true)], [40000, 80]);
  assert.deepEqual([...b.subarray(t + T.src!, t + T.src! + 5)], [10, 244, 1, 2, 0]);
  assert.deepEqual([...b.subarray(t + T.dst!, t + T.dst! + 4)], [10, 244, 2, 3]);
  assert.deepEqual(decode(configCodec, b), { vxlanPorts: [8472, 4789], reportIntervalNs: 5e9, trace: { src: "10.244.1.2", dst: "10.244.2.3", proto: 6, srcPort: 40000, dstPort: 80, bothWays: true } });
  // ICMP: the echo id is matched as the source port, as the program keys it.
  const icmp = decode(configCodec, encode(configCodec, { vxlanPorts: [], reportIntervalNs: 1e9, trace: { dst: "fd00::1", proto: 58, icmpId: 7, bothWays: false } }));
  assert.deepEqual(icmp.trace, { dst: "fd00::1", proto: 58, icmpId: 7, bothWays: false });
  assert.throws(() => encode(configCodec, { vxlanPorts: [1, 2, 3, 4, 5], reportIntervalNs: 1 }), /at most 4 VXLAN ports/);
  assert.throws(() => encode(configCodec, { vxlanPorts: [], reportIntervalNs: 1, trace: { src: "nope" } }), /not an address/);
  assert.equal(decode(configCodec, encode(configCodec, { vxlanPorts: [], reportIntervalNs: 1 })).trace, undefined);
});

test("a flow event decodes from the C offsets", () => {
  const E = observe.get("flow_event")!.at;
  const rec = new Uint8Array(EVENT_SIZE);
  const v = new DataView(rec.buffer);
  v.setBigUint64(E.time_ns!, 1000n, true); v.setBigUint64(E.first_ns!, 400n, true);
  v.setBigUint64(E.packets!, 3n, true); v.setBigUint64(E.bytes!, 300n, true);
  v.setUint32(E.ifindex!, 7, true); v.setUint32(E.len!, 98, true);
  v.setUint8(E.egress!, 1); v.setUint8(E.family!, 4); v.setUint8(E.proto!, 1); v.setUint8(E.reason!, 4);
  v.setUint8(E.tcp_flags!, 0); v.setUint8(E.flags_seen!, 0); v.setUint8(E.icmp_type!, 8); v.setUint8(E.icmp_code!, 0);
  v.setUint16(E.sport!, 7, true); v.setUint16(E.dport!, 0, true); v.setUint16(E.icmp_id!, 7, true); v.setUint16(E.icmp_seq!, 9, true);
  rec.set([10, 244, 0, 2], E.src!); rec.set([10, 244, 1, 3], E.dst!);
  v.setUint8(E.traced!, 1); v.setUint8(E.tunnel!, 1); v.setUint8(E.outer_family!, 4); v.setUint32(E.vni!, 0x123456, true);
  v.setUint16(E.outer_sport!, 40000, true); v.setUint16(E.outer_dport!, 8472, true); v.setUint32(E.outer_len!, 148, true);
  rec.set([172, 18, 0, 2], E.outer_src!); rec.set([172, 18, 0, 3], E.outer_dst!);
  v.setUint16(E.ethertype!, 0x0800, true); v.setUint16(E.frame_len!, 3, true); rec.set([0xaa, 0xbb, 0xcc, 0xdd], E.frame!);
  const e = decodeFlowEvent(rec, 5n);
  assert.deepEqual(e, {
    timeNs: 1005n, firstNs: 405n, packets: 3, bytes: 300, ifindex: 7, len: 98, egress: true, family: 4, proto: 1, reason: "periodic",
    tcpFlags: 0, flagsSeen: 0, srcPort: 7, dstPort: 0, src: "10.244.0.2", dst: "10.244.1.3", traced: true, ethertype: 0x0800,
    frame: new Uint8Array([0xaa, 0xbb, 0xcc]), icmp: { type: 8, code: 0, id: 7, seq: 9 },
    tunnel: { vni: 0x123456, outerSrcPort: 40000, outerDstPort: 8472, outerLen: 148, outerSrc: "172.18.0.2", outerDst: "172.18.0.3" },
  });
  assert.throws(() => decodeFlowEvent(rec.subarray(0, 100), 0n), /100 bytes/);
  // IPv6 addresses use all 16 bytes.
  v.setUint8(E.family!, 6); v.setUint8(E.tunnel!, 0); v.setUint8(E.proto!, 17);
  rec.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], E.src!);
  const six = decodeFlowEvent(rec, 0n);
  assert.equal(six.src, "fd00::1");
  assert.equal(six.icmp, undefined);
  assert.equal(six.tunnel, undefined);
});

test("a drop event decodes from the C offsets", () => {
  const D = drops.get("drop_event")!.at;
  const rec = new Uint8Array(DROP_EVENT_SIZE);
  const v = new DataView(rec.buffer);
  v.setBigUint64(D.time_ns!, 10n, true); v.setBigUint64(D.location!, 0xffffffff81234567n, true);
  v.setUint32(D.reason!, 3, true); v.setUint32(D.ifindex!, 1, true); v.setUint32(D.netns!, 4026531840, true); v.setUint32(D.skb_len!, 29, true);
  v.setUint16(D.protocol!, 0x0800, true); v.setUint16(D.frame_len!, 2, true); v.setUint16(D.mac_len!, 14, true); v.setUint8(D.has_dev!, 1);
  rec.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0], D.mac!); rec.set([0x45, 0x00], D.frame!);
  const e = decodeDropEvent(rec, 1n, new Map([[3, "NO_SOCKET"]]));
  assert.deepEqual(e, {
    timeNs: 11n, location: 0xffffffff81234567n, reason: 3, reasonName: "NO_SOCKET", ifindex: 1, netnsInode: 4026531840, skbLen: 29, protocol: 0x0800,
    frame: new Uint8Array([0x45, 0]), mac: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0]),
  });
  assert.equal(decodeDropEvent(rec, 0n, new Map()).reasonName, "reason 3");
});

test("generic codecs round-trip; a CPU list counts its CPUs", () => {
  assert.equal(decode(u8, encode(u8, 255)), 255);
  assert.equal(decode(u16, encode(u16, 0xbeef)), 0xbeef);
  assert.equal(decode(u32, encode(u32, 0xfeedface)), 0xfeedface);
  assert.equal(decode(u64, encode(u64, 2 ** 53 - 1)), 2 ** 53 - 1);
  assert.equal(decode(u64n, encode(u64n, 0xffffffffffffffffn)), 0xffffffffffffffffn);
  const b4 = bytes(4);
  const out = decode(b4, encode(b4, new Uint8Array([1, 2, 3, 4])));
  assert.deepEqual(out, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual([parseCpuList("0"), parseCpuList("0-1\n"), parseCpuList("0-3,5,7-8"), parseCpuList("0,2")], [1, 2, 7, 2]);
  assert.throws(() => parseCpuList("0-x"), /cannot read/);
  assert.throws(() => parseCpuList("3-1"), /backwards/);
});
