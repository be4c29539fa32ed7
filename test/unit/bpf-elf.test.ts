// The ELF reader, the BTF reader and the spec on the objects the build makes (dist/bpf/*.o),
// with llvm-readelf and bpftool as the oracles: every section, symbol and relocation gauze reads
// is what llvm-readelf prints; map definitions decode to what the C says, with key and value
// sizes as bpftool reads them from the BTF. Objects gauze must refuse (calls to functions that
// were not inlined, global variables, no BTF) are compiled here with clang and refused by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ElfError, SHT, parseElf } from "../../src/kernel/bpf/elf.ts";
import { Btf, BtfError, KIND } from "../../src/kernel/bpf/btf.ts";
import { parseBtfExt } from "../../src/kernel/bpf/btf-ext.ts";
import { SpecError, objectSpec, programKind } from "../../src/kernel/bpf/spec.ts";
import { embeddedObject, embeddedObjectNames } from "../../src/kernel/bpf/objects.ts";
import { ATTACH_TYPE, MAP_TYPE, PROG_TYPE } from "../../src/kernel/bpf/uapi.ts";

const DIST = join(import.meta.dirname, "..", "..", "dist", "bpf");
const OBJECTS = ["observe", "drops", "datapath"];
const read = (name: string) => new Uint8Array(readFileSync(join(DIST, `${name}.o`)));

function run(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

test("the build made the objects, and embedded them with their programs and BTF", () => {
  for (const n of OBJECTS) assert.ok(existsSync(join(DIST, `${n}.o`)), `dist/bpf/${n}.o (npm run build)`);
  assert.deepEqual(embeddedObjectNames().sort(), [...OBJECTS].sort());
  for (const n of OBJECTS) {
    const full = objectSpec(read(n)), embedded = objectSpec(embeddedObject(n as "observe"));
    assert.deepEqual(embedded.programs.map((p) => [p.name, p.section, p.insns.length]), full.programs.map((p) => [p.name, p.section, p.insns.length]));
    assert.deepEqual(embedded.maps, full.maps);
    assert.ok(embeddedObject(n as "observe").length < read(n).length, "DWARF stripped from the embedded copy");
  }
});

test("sections, symbols and relocations are what llvm-readelf reads", () => {
  for (const n of OBJECTS) {
    const elf = parseElf(read(n));
    const path = join(DIST, `${n}.o`);
    const secs = [...run("llvm-readelf", "-S", "-W", path).matchAll(/^\s*\[\s*(\d+)\]\s+(\S+)\s+(\S+)\s+[0-9a-f]{16}\s+([0-9a-f]+)\s+([0-9a-f]+)/gm)]
      .filter((m) => m[1] !== "0").map((m) => ({ index: Number(m[1]), name: m[2]!, offset: parseInt(m[4]!, 16), size: parseInt(m[5]!, 16) }));
    assert.ok(secs.length > 10);
    assert.deepEqual(elf.sections.slice(1).map((s) => ({ index: s.index, name: s.name, offset: s.offset, size: s.size })), secs);
    const syms = [...run("llvm-readelf", "-s", "-W", path).matchAll(/^\s*(\d+):\s+([0-9a-f]{16})\s+(\d+)\s+(\w+)\s+(\w+)\s+\w+\s+(\S+)\s*(\S*)$/gm)]
      .map((m) => ({ index: Number(m[1]), value: parseInt(m[2]!, 16), size: Number(m[3]), type: m[4]!, name: m[7]! }));
    assert.equal(elf.symbols.length, syms.length);
    for (const s of syms) {
      const mine = elf.symbols[s.index]!;
      // llvm-readelf shows a section symbol by its section's name; the symbol itself has none.
      if (s.type !== "SECTION") assert.equal(mine.name, s.name, `symbol ${s.index}`);
      assert.deepEqual([mine.value, mine.size], [s.value, s.size], `symbol ${s.index} ${s.name}`);
    }
    const relText = run("llvm-readelf", "-r", "-W", path);
    for (const block of relText.split(/\n(?=Relocation section)/)) {
      const head = /Relocation section '([^']+)'.* contains (\d+) entries/.exec(block);
      if (!head) continue;
      const relSec = elf.section(head[1]!)!;
      assert.equal(relSec.type, SHT.REL);
      const rels = elf.relocations(relSec.info);
      const rows = [...block.matchAll(/^([0-9a-f]{16})\s+[0-9a-f]{16}\s+(\S+)\s+[0-9a-f]{16}\s+(\S+)/gm)];
      // .rel.X applies to X; several REL sections never target one section here.
      assert.equal(rels.length, Number(head[2]), head[1]);
      rows.forEach((r, i) => {
        assert.equal(rels[i]!.offset, parseInt(r[1]!, 16), `${head[1]} #${i}`);
        assert.equal(elf.symbols[rels[i]!.symbol]!.name || elf.sections[elf.symbols[rels[i]!.symbol]!.section]!.name, r[3]);
      });
    }
  }
});

interface JType { id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number; members?: { name: string; type_id: number; bits_offset: number }[] }

test("BTF types and sizes are what bpftool reads; .BTF.ext has func, line and CO-RE records", () => {
  for (const n of OBJECTS) {
    const elf = parseElf(read(n));
    const btf = Btf.parse(elf.data(elf.section(".BTF")!));
    const oracle = (JSON.parse(run("bpftool", "-j", "btf", "dump", "file", join(DIST, `${n}.o`))) as { types: JType[] }).types;
    assert.equal(btf.count, oracle.length);
    for (const t of oracle) {
      assert.equal(btf.kindName(t.id).toUpperCase(), t.kind, `type ${t.id}`);
      assert.equal(btf.name(t.id) || "(anon)", t.name, `type ${t.id}`);
      if (t.kind === "STRUCT" || t.kind === "UNION") {
        assert.equal(btf.size(t.id), t.size);
        assert.deepEqual(btf.members(t.id).map((m) => [m.name || "(anon)", m.type, m.bitOffset]), t.members!.map((m) => [m.name, m.type_id, m.bits_offset]));
      }
      if (t.kind === "ARRAY") assert.equal(btf.array(t.id).nelems, t.nr_elems);
    }
    const ext = parseBtfExt(elf.data(elf.section(".BTF.ext")!), btf);
    for (const p of objectSpec(read(n)).programs) {
      assert.ok(ext.funcInfo.get(p.section)?.records.length, `${p.section} func info`);
      assert.ok(ext.lineInfo.get(p.section)?.records.length, `${p.section} line info`);
      assert.equal(p.funcInfo?.count, 1, `${p.name}: one function`);
      assert.equal(new DataView(p.funcInfo!.bytes.buffer).getUint32(0, true), 0, `${p.name}'s function starts at instruction 0`);
    }
    if (n === "drops") assert.ok((ext.coreRelos.get("tp_btf/kfree_skb") ?? []).length >= 10, "the drop tracer's kernel reads are CO-RE relocations");
  }
});

test("maps decode from their BTF definitions as the C declares them", () => {
  const observe = objectSpec(read("observe"));
  const byName = Object.fromEntries(observe.maps.map((m) => [m.name, m]));
  assert.deepEqual(Object.keys(byName).sort(), ["config", "events", "flow_cache", "flows", "lost", "scratch"]);
  assert.deepEqual({ ...byName.flows, btfKeyTypeId: 0, btfValueTypeId: 0 }, { name: "flows", type: MAP_TYPE.LRU_HASH, keySize: 44, valueSize: 64, maxEntries: 65536, flags: 0, pinByName: true, btfKeyTypeId: 0, btfValueTypeId: 0 });
  assert.equal(byName.config!.type, MAP_TYPE.ARRAY);
  assert.equal(byName.config!.pinByName, true);
  assert.deepEqual([byName.events!.type, byName.events!.keySize, byName.events!.valueSize, byName.events!.maxEntries], [MAP_TYPE.RINGBUF, 0, 0, 1 << 20]);
  assert.deepEqual([byName.lost!.type, byName.lost!.keySize, byName.lost!.valueSize], [MAP_TYPE.PERCPU_ARRAY, 4, 8]);
  // Key and value sizes are the BTF types' sizes as bpftool reads them.
  const oracle = (JSON.parse(run("bpftool", "-j", "btf", "dump", "file", join(DIST, "observe.o"))) as { types: JType[] }).types;
  assert.equal(oracle.find((t) => t.id === byName.flows!.btfKeyTypeId)!.name, "flow_key");
  assert.equal(oracle.find((t) => t.id === byName.flows!.btfKeyTypeId)!.size, 44);
  assert.equal(oracle.find((t) => t.id === byName.flows!.btfValueTypeId)!.size, 64);
  const drops = objectSpec(read("drops"));
  assert.deepEqual(drops.maps.map((m) => [m.name, m.type, m.keySize, m.valueSize, m.maxEntries]), [
    ["drop_events", MAP_TYPE.RINGBUF, 0, 0, 1 << 18], ["netns_filter", MAP_TYPE.HASH, 4, 1, 1024], ["skip_reasons", MAP_TYPE.ARRAY, 4, 1, 1024], ["drop_lost", MAP_TYPE.PERCPU_ARRAY, 4, 8, 1],
  ]);
  assert.equal(observe.license, "GPL");
});

test("programs by section name after libbpf's conventions, with their map references", () => {
  const observe = objectSpec(read("observe"));
  assert.deepEqual(observe.programs.map((p) => [p.name, p.section, p.type]), [["observe_ingress", "tc", PROG_TYPE.SCHED_CLS], ["observe_egress", "tc", PROG_TYPE.SCHED_CLS]]);
  for (const p of observe.programs) {
    assert.deepEqual([...new Set(p.mapRelocs.map((r) => r.map))].sort(), ["config", "events", "flow_cache", "flows", "lost", "scratch"]);
    for (const r of p.mapRelocs) assert.equal(p.insns[r.insn * 8], 0x18, "on an ld_imm64");
  }
  const drops = objectSpec(read("drops"));
  assert.deepEqual(drops.programs.map((p) => [p.name, p.type, p.expectedAttachType, p.attachTo]), [
    ["drops_btf", PROG_TYPE.TRACING, ATTACH_TYPE.TRACE_RAW_TP, "kfree_skb"], ["drops_raw", PROG_TYPE.RAW_TRACEPOINT, 0, "kfree_skb"],
  ]);
  assert.deepEqual(programKind("tcx/ingress"), { type: PROG_TYPE.SCHED_CLS, expectedAttachType: ATTACH_TYPE.TCX_INGRESS });
  assert.deepEqual(programKind("tcx/egress"), { type: PROG_TYPE.SCHED_CLS, expectedAttachType: ATTACH_TYPE.TCX_EGRESS });
  assert.deepEqual(programKind("raw_tp/sched_switch"), { type: PROG_TYPE.RAW_TRACEPOINT, expectedAttachType: 0, attachTo: "sched_switch" });
  assert.equal(programKind("kprobe/foo"), undefined);
});

test("damaged files are ElfErrors naming the offset; BTF damage is a BtfError", () => {
  const good = read("drops");
  assert.throws(() => parseElf(new Uint8Array(10)), (e: unknown) => e instanceof ElfError && /ELF header: needs 64 bytes at offset 0/.test(e.message));
  const notElf = good.slice(); notElf[1] = 0;
  assert.throws(() => parseElf(notElf), /not an ELF file/);
  const x86 = good.slice(); new DataView(x86.buffer).setUint16(18, 62, true);
  assert.throws(() => parseElf(x86), /e_machine 62: not a BPF object/);
  const cut = good.slice(0, good.length - 100);
  assert.throws(() => parseElf(cut), (e: unknown) => e instanceof ElfError && /section header table: needs \d+ bytes at offset \d+/.test(e.message));
  const elf = parseElf(good);
  const b = elf.data(elf.section(".BTF")!).slice();
  new DataView(b.buffer).setUint32(12, 1 << 30, true); // type_len
  assert.throws(() => Btf.parse(b), (e: unknown) => e instanceof BtfError && /type section .* beyond/.test(e.message));
  const b2 = elf.data(elf.section(".BTF")!).slice();
  const v2 = new DataView(b2.buffer);
  const typeOff = v2.getUint32(4, true) + v2.getUint32(8, true);
  v2.setUint32(typeOff + 4, 31 << 24, true); // the first type's kind: 31
  assert.throws(() => Btf.parse(b2), /type 1 has unknown kind 31/);
  assert.equal(KIND.STRUCT, 4);
});

test("what gauze does not load is refused by name, before the kernel sees it", (t) => {
  if (spawnSync("clang", ["--version"]).status !== 0) return t.skip("no clang");
  const dir = mkdtempSync(join(tmpdir(), "gz-bpf-elf-"));
  const multiarch = spawnSync("gcc", ["-print-multiarch"], { encoding: "utf8" }).stdout.trim() || "x86_64-linux-gnu";
  const compile = (name: string, src: string, g = true): Uint8Array => {
    writeFileSync(join(dir, `${name}.c`), `#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n${src}\nchar LICENSE[] SEC("license") = "GPL";\n`);
    run("clang", "-O2", ...(g ? ["-g"] : []), "-target", "bpf", `-I/usr/include/${multiarch}`, "-c", join(dir, `${name}.c`), "-o", join(dir, `${name}.o`));
    return new Uint8Array(readFileSync(join(dir, `${name}.o`)));
  };
  try {
    const call = compile("call", `__attribute__((noinline)) static int f(int x) { return x * 3; }\nSEC("tc") int p(struct __sk_buff *s) { return f(s->len); }`);
    assert.throws(() => objectSpec(call), (e: unknown) => e instanceof SpecError && /__always_inline/.test(e.message));
    const global = compile("global", `volatile int counter;\nSEC("tc") int p(struct __sk_buff *s) { counter++; return -1; }`);
    assert.throws(() => objectSpec(global), (e: unknown) => e instanceof SpecError && /counter in \.bss.*no global variables/.test(e.message));
    const kprobe = compile("kprobe", `SEC("kprobe/foo") int p(void *ctx) { return 0; }`);
    assert.throws(() => objectSpec(kprobe), /section kprobe\/foo: not a program type gauze loads/);
    const noBtf = compile("nobtf", `struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int); __type(value, int); } m SEC(".maps");\nSEC("tc") int p(struct __sk_buff *s) { int k = 0; return bpf_map_lookup_elem(&m, &k) ? 0 : -1; }`, false);
    assert.throws(() => objectSpec(noBtf), /\.maps without \.BTF/);
    const flags = compile("flags", `struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __uint(map_flags, BPF_F_NO_PREALLOC); __uint(key_size, 4); __uint(value_size, 16); } m SEC(".maps");\nSEC("tc") int p(struct __sk_buff *s) { int k = 0; return bpf_map_lookup_elem(&m, &k) ? 0 : -1; }`);
    assert.deepEqual(objectSpec(flags).maps.map((m) => [m.type, m.keySize, m.valueSize, m.maxEntries, m.flags, m.btfKeyTypeId]), [[MAP_TYPE.HASH, 4, 16, 8, 1, 0]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
