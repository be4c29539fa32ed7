// Every number in src/kernel/bpf/uapi.ts against /usr/include/linux/bpf.h, and where that header
// (linux-libc-dev, 6.1 here) is older than the number (tcx), against the running kernel's own BTF
// as bpftool dumps it. Every attr and info field's offset and size against union bpf_attr and
// struct bpf_*_info in that BTF: bpftool, not gauze's BTF reader, is the oracle.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { TC } from "../../src/kernel/bpf/tc.ts";
import { ATTACH_TYPE, ATTR, CMD, INFO, LINK_TYPE, MAP_FLAG, MAP_TYPE, OBJ_NAME_LEN, PROG_TYPE, PSEUDO, SYS_BPF, TCX, UPDATE } from "../../src/kernel/bpf/uapi.ts";

/** NAME -> value from bpf.h's enums and #defines. */
function readHeader(file: string): Map<string, number> {
  const known = new Map<string, number>();
  const evaluate = (expr: string): number | undefined => {
    const e = expr.trim().replace(/^\((.*)\)$/, "$1").trim();
    if (/^-?(0x[0-9a-fA-F]+|\d+)[uUlL]*$/.test(e)) return Number(e.replace(/[uUlL]+$/, ""));
    const shift = /^(\d+)[uU]?\s*<<\s*(\d+)$/.exec(e);
    if (shift) return Number(shift[1]) * 2 ** Number(shift[2]);
    return known.get(e);
  };
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  for (const m of text.matchAll(/^#define\s+([A-Z][A-Z0-9_]*)\s+(.+)$/gm)) {
    const v = evaluate(m[2]!);
    if (v !== undefined && !known.has(m[1]!)) known.set(m[1]!, v);
  }
  for (const m of text.matchAll(/enum\s*\w*\s*\{([\s\S]*?)\}/g)) {
    let next = 0;
    for (const raw of m[1]!.split(",")) {
      const item = raw.replace(/#define.*/g, "").trim();
      if (!/^[A-Za-z_]/.test(item)) continue;
      const [name, expr] = item.split("=").map((x) => x.trim());
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name!)) continue;
      const v = expr !== undefined ? evaluate(expr) : next;
      if (v === undefined) continue;
      known.set(name!, v);
      next = v + 1;
    }
  }
  return known;
}

interface JType { id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number; members?: { name: string; type_id: number; bits_offset: number }[]; values?: { name: string; val: number }[] }

let kernelTypes: JType[] | undefined;
/** The running kernel's BTF as bpftool's JSON (undefined without bpftool or BTF). */
function kernelBtf(): JType[] | undefined {
  if (kernelTypes) return kernelTypes;
  if (!existsSync("/sys/kernel/btf/vmlinux")) return undefined;
  const r = spawnSync("bpftool", ["-j", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], { encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) return undefined;
  kernelTypes = (JSON.parse(r.stdout) as { types: JType[] }).types;
  return kernelTypes;
}

function kernelEnums(types: JType[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of types) if (t.kind === "ENUM" || t.kind === "ENUM64") for (const v of t.values ?? []) out.set(v.name, Number(v.val));
  return out;
}

test("every bpf number matches linux/bpf.h (or, newer than the header, the kernel's BTF)", () => {
  const h = readHeader("/usr/include/linux/bpf.h");
  const types = kernelBtf();
  const k = types ? kernelEnums(types) : new Map<string, number>();
  const wrong: string[] = [], fromKernel: string[] = [];
  let checked = 0;
  const check = (name: string, v: number) => {
    checked++;
    const c = h.get(name);
    if (c !== undefined) {
      if (c !== v) wrong.push(`${name}: gauze ${v}, bpf.h ${c}`);
      return;
    }
    const kv = k.get(name);
    if (kv === undefined) wrong.push(`${name}: neither in bpf.h nor in the kernel's BTF`);
    else if (kv !== v) wrong.push(`${name}: gauze ${v}, kernel BTF ${kv}`);
    else fromKernel.push(name);
  };
  for (const [n, v] of Object.entries(CMD)) check(`BPF_${n}`, v);
  for (const [n, v] of Object.entries(MAP_TYPE)) check(`BPF_MAP_TYPE_${n}`, v);
  for (const [n, v] of Object.entries(PROG_TYPE)) check(`BPF_PROG_TYPE_${n}`, v);
  for (const [n, v] of Object.entries(ATTACH_TYPE)) check(`BPF_${n}`, v);
  for (const [n, v] of Object.entries(LINK_TYPE)) check(`BPF_LINK_TYPE_${n}`, v);
  for (const [n, v] of Object.entries(MAP_FLAG)) check(`BPF_F_${n}`, v);
  for (const [n, v] of Object.entries(UPDATE)) check(`BPF_${n}`, v);
  for (const [n, v] of Object.entries(PSEUDO)) check(`BPF_${n}`, v);
  check("BPF_OBJ_NAME_LEN", OBJ_NAME_LEN);
  check("TCX_NEXT", TCX.NEXT);
  check("TCX_PASS", TCX.PASS);
  check("TCX_DROP", TCX.DROP);
  assert.deepEqual(wrong, []);
  assert.ok(checked >= 40, `checked ${checked}`);
  // Only what 6.1's header lacks may come from the kernel.
  for (const n of fromKernel) assert.match(n, /TCX/, `${n} should be in bpf.h`);
});

test("the tc numbers of the clsact fallback match rtnetlink.h, pkt_sched.h, pkt_cls.h and if_ether.h", () => {
  const h = new Map<string, number>();
  for (const f of ["rtnetlink.h", "pkt_sched.h", "pkt_cls.h", "if_ether.h"]) for (const [k, v] of readHeader(`/usr/include/linux/${f}`)) if (!h.has(k)) h.set(k, v);
  const wrong = Object.entries(TC).filter(([k, v]) => h.get(k) !== v).map(([k, v]) => `${k}: gauze ${v}, headers ${h.get(k)}`);
  assert.deepEqual(wrong, []);
});

test("the syscall number is this architecture's", () => {
  const unistd = process.arch === "arm64" ? "/usr/include/asm-generic/unistd.h" : "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
  if (!existsSync(unistd)) return;
  const m = /#define\s+__NR_bpf\s+(\d+)/.exec(readFileSync(unistd, "utf8"));
  assert.equal(SYS_BPF, Number(m?.[1]));
});

/** Offset (bytes) and size of a dotted field path inside a struct/union, through anonymous members. */
function locate(byId: Map<number, JType>, typeId: number, path: string[]): [number, number] | undefined {
  const resolve = (id: number): JType => {
    let t = byId.get(id)!;
    while (["TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"].includes(t.kind)) t = byId.get(t.type_id!)!;
    return t;
  };
  const sizeOf = (id: number): number => {
    const t = resolve(id);
    if (t.kind === "ARRAY") return sizeOf(t.type_id!) * t.nr_elems!;
    if (t.kind === "PTR") return 8;
    return t.size ?? 0;
  };
  const find = (id: number, name: string): [number, number] | undefined => {
    const t = resolve(id);
    for (const m of t.members ?? []) {
      if (m.name === name) return [m.bits_offset, m.type_id];
      if (m.name === "(anon)" || m.name === "") {
        const inner = find(m.type_id, name);
        if (inner) return [m.bits_offset + inner[0], inner[1]];
      }
    }
    return undefined;
  };
  let bits = 0, id = typeId;
  for (const part of path) {
    const hit = find(id, part);
    if (!hit) return undefined;
    bits += hit[0];
    id = hit[1];
  }
  return [bits / 8, sizeOf(id)];
}

test("every attr and info field sits where the kernel's union bpf_attr and struct bpf_*_info put it", (t) => {
  const types = kernelBtf();
  if (!types) return t.skip("no kernel BTF or bpftool");
  const byId = new Map(types.map((x) => [x.id, x]));
  const named = (kind: string, name: string) => types.find((x) => x.kind === kind && x.name === name)!;
  const attr = named("UNION", "bpf_attr");
  const wrong: string[] = [];
  let checked = 0;
  for (const [cmd, layout] of Object.entries(ATTR)) {
    // The member of the union holding this command's fields: named, or the anonymous one with the anchor.
    const holder = attr.members!.find((m) => m.name === layout.$in)
      ?? attr.members!.find((m) => (m.name === "(anon)" || m.name === "") && locate(byId, m.type_id, [layout.$in]) !== undefined);
    if (!holder) { wrong.push(`${cmd}: no member of bpf_attr holds ${layout.$in}`); continue; }
    for (const [field, spec] of Object.entries(layout)) {
      if (field.startsWith("$")) continue;
      const [off, size] = spec as readonly [number, number];
      const at = locate(byId, holder.type_id, field.split("."));
      checked++;
      if (!at) wrong.push(`${cmd}.${field}: not in the kernel's bpf_attr`);
      else if (at[0] !== off || at[1] !== size) wrong.push(`${cmd}.${field}: gauze [${off}, ${size}], kernel [${at[0]}, ${at[1]}]`);
    }
    assert.ok(layout.$size <= attr.size!, `${cmd}: attr size within bpf_attr`);
  }
  for (const [struct, layout] of Object.entries(INFO)) {
    const s = named("STRUCT", struct);
    for (const [field, spec] of Object.entries(layout)) {
      if (field.startsWith("$")) continue;
      const [off, size] = spec as readonly [number, number];
      const at = locate(byId, s.id, field.split("."));
      checked++;
      if (!at) wrong.push(`${struct}.${field}: not in the kernel's struct`);
      else if (at[0] !== off || at[1] !== size) wrong.push(`${struct}.${field}: gauze [${off}, ${size}], kernel [${at[0]}, ${at[1]}]`);
      assert.ok(off + size <= layout.$size, `${struct}.${field} within the ${layout.$size} bytes gauze asks for`);
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(checked > 80, `checked ${checked}`);
});
