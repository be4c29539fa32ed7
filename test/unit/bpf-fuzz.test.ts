// The ELF and BTF readers on damaged copies of the real objects: random truncations, byte
// flips, runs of random bytes and zeroed headers, thousands of them (seeded, so a failure
// repeats). The readers may only ever throw ElfError or BtfError: never a RangeError from a
// read past the end, a TypeError, a hang or a crash. The whole spec (maps, programs,
// relocations) may also refuse with a SpecError, for damage that reads as something gauze does
// not support; nothing else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ElfError, parseElf } from "../../src/kernel/bpf/elf.ts";
import { Btf, BtfError, KIND } from "../../src/kernel/bpf/btf.ts";
import { parseBtfExt } from "../../src/kernel/bpf/btf-ext.ts";
import { SpecError, objectSpec } from "../../src/kernel/bpf/spec.ts";
import { embeddedObject } from "../../src/kernel/bpf/objects.ts";

const DIST = join(import.meta.dirname, "..", "..", "dist", "bpf");

/** xorshift32: the same damage on every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

function damage(src: Uint8Array, r: () => number, elf: ReturnType<typeof parseElf>): Uint8Array {
  const pick = Math.floor(r() * 6);
  const b = src.slice();
  const at = (n = b.length) => Math.floor(r() * n);
  // Aim a third of the damage at the parts the readers walk hardest: headers, .BTF, .BTF.ext, .symtab.
  const hot = elf.sections.filter((s) => [".BTF", ".BTF.ext", ".symtab", ".maps", ".strtab"].includes(s.name) || s.name === "tc" || s.name.startsWith("tp_btf"));
  const target = r() < 0.34 && hot.length ? hot[at(hot.length)]! : undefined;
  const where = () => (target ? target.offset + at(Math.max(1, target.size)) : at());
  switch (pick) {
    case 0: return b.subarray(0, at());
    case 1: { for (let i = 0, n = 1 + at(8); i < n; i++) { const p = where(); if (p < b.length) b[p] = b[p]! ^ (1 << at(8)); } return b; }
    case 2: { const p = where(); for (let i = 0; i < 1 + at(64) && p + i < b.length; i++) b[p + i] = at(256); return b; }
    case 3: { const p = 64 + at(Math.max(1, b.length - 64)); b.fill(0, Math.min(p, b.length), Math.min(p + 64, b.length)); return b; }
    case 4: { const p = where() & ~3; if (p + 4 <= b.length) new DataView(b.buffer).setUint32(p, [0, 0xffffffff, 0x7fffffff, at(1 << 20)][at(4)]!, true); return b; }
    default: { const p = at(40) + 24; if (p + 8 <= 64) new DataView(b.buffer).setUint32(p, at(1 << 24), true); return b; }
  }
}

/** Everything a reader can be asked of a BTF blob. */
function walkBtf(btf: Btf): void {
  for (let id = 1; id <= btf.count; id++) {
    const k = btf.kind(id);
    btf.name(id);
    try { btf.size(id); } catch (e) { if (!(e instanceof BtfError)) throw e; }
    if (k === KIND.STRUCT || k === KIND.UNION) btf.members(id);
    if (k === KIND.ARRAY) btf.array(id);
    if (k === KIND.ENUM || k === KIND.ENUM64) btf.enumValues(id);
    if (k === KIND.DATASEC) btf.datasecVars(id);
    if (k === KIND.PTR || k === KIND.TYPEDEF || k === KIND.CONST || k === KIND.VAR) { btf.target(id); btf.resolve(id); }
  }
  btf.find("flows");
}

function readAll(bytes: Uint8Array): void {
  const elf = parseElf(bytes);
  for (const s of elf.sections) { elf.data(s); elf.relocations(s.index); elf.symbolsIn(s.index); }
  const bs = elf.section(".BTF");
  if (!bs) return;
  const btf = Btf.parse(elf.data(bs));
  walkBtf(btf);
  const ext = elf.section(".BTF.ext");
  if (ext) parseBtfExt(elf.data(ext), btf);
}

const sources: [string, Uint8Array][] = [
  ["observe.o", new Uint8Array(readFileSync(join(DIST, "observe.o")))],
  ["drops.o", new Uint8Array(readFileSync(join(DIST, "drops.o")))],
  ["observe (embedded)", embeddedObject("observe")],
  ["drops (embedded)", embeddedObject("drops")],
];

const ITERATIONS = 2500;

for (const [name, src] of sources) {
  test(`${name}: ${ITERATIONS} damaged copies, only ElfError/BtfError from the readers (SpecError too from the spec)`, () => {
    const r = rng(0x9e3779b9 ^ src.length);
    const elf = parseElf(src);
    const seen: Record<string, number> = { ok: 0, ElfError: 0, BtfError: 0, SpecError: 0 };
    const start = performance.now();
    for (let i = 0; i < ITERATIONS; i++) {
      const bad = damage(src, r, elf);
      try {
        readAll(bad);
      } catch (e) {
        if (!(e instanceof ElfError || e instanceof BtfError)) assert.fail(`iteration ${i}: readers threw ${(e as Error).name}: ${(e as Error).stack}`);
        seen[(e as Error).name]!++;
        continue;
      }
      try {
        objectSpec(bad);
        seen.ok!++;
      } catch (e) {
        if (!(e instanceof ElfError || e instanceof BtfError || e instanceof SpecError)) assert.fail(`iteration ${i}: spec threw ${(e as Error).name}: ${(e as Error).stack}`);
        seen[(e as Error).name]!++;
      }
    }
    const ms = performance.now() - start;
    // Each kind of outcome happens: the damage reaches every layer.
    assert.ok(seen.ElfError! > 0 && seen.BtfError! > 0, JSON.stringify(seen));
    assert.ok(ms < 100_000, `${ms} ms`);
  });
}

test("errors carry the offset of the damage", () => {
  const src = sources[1]![1];
  const cut = src.subarray(0, 63);
  try { parseElf(cut); assert.fail("parsed"); } catch (e) { assert.ok(e instanceof ElfError); assert.equal(e.offset, 0); }
});
