// CO-RE: clang records each access to a kernel structure declared with preserve_access_index
// as (local type, access path, kind) in .BTF.ext; here each is resolved against the running
// kernel's BTF and the instruction is rewritten with this kernel's offset. A field is matched by
// name (anonymous structs and unions of the kernel's type searched through, as the kernel nests
// them), with compatible kinds, in every kernel type of the same name (a local "sk_buff___old"
// flavour matches "sk_buff"). A field this kernel does not have is an error naming it, unless
// the program guards the access with bpf_core_field_exists(): then the access is made into a
// call to a helper that does not exist, which the verifier accepts only where it proves the
// guard keeps it unreachable.
import { type Btf, KIND } from "./btf.ts";
import { CORE, type CoreRelo } from "./btf-ext.ts";

export class CoreError extends Error {
  constructor(message: string) {
    super(`CO-RE: ${message}`);
    this.name = "CoreError";
  }
}

/** The helper id libbpf also uses for an access the loader had to leave unresolved. */
const POISON_HELPER = 0xbad2310;

interface Step {
  kind: "member" | "array";
  index: number;
  name: string;
}

interface Resolved {
  /** Bits from the root. */
  bits: number;
  /** The field's (or root's) type, and its bitfield width. */
  type: number;
  bitSize: number;
}

const essential = (name: string) => {
  const i = name.indexOf("___");
  return i > 0 ? name.slice(0, i) : name;
};

/** The local side: the access path clang wrote, walked through the object's own BTF. */
function localSpec(btf: Btf, root: number, access: string): { steps: Step[]; first: number; local: Resolved; text: string } {
  const parts = access.split(":").map((p) => Number(p));
  if (!parts.length || parts.some((p) => !Number.isInteger(p) || p < 0)) throw new CoreError(`bad access string "${access}"`);
  const first = parts[0]!;
  let cur = root, bits = first * btf.size(root) * 8, bitSize = 0;
  const steps: Step[] = [];
  let text = btf.describe(btf.resolve(root));
  for (const idx of parts.slice(1)) {
    const t = btf.resolve(cur), k = btf.kind(t);
    if (k === KIND.STRUCT || k === KIND.UNION) {
      const ms = btf.members(t);
      const m = ms[idx];
      if (!m) throw new CoreError(`${text}: member ${idx} of ${ms.length} in access "${access}"`);
      steps.push({ kind: "member", index: idx, name: m.name });
      bits += m.bitOffset;
      bitSize = m.bitSize;
      cur = m.type;
      if (m.name) text += `${steps.length === 1 ? "::" : "."}${m.name}`;
    } else if (k === KIND.ARRAY) {
      const a = btf.array(t);
      steps.push({ kind: "array", index: idx, name: "" });
      bits += idx * btf.size(a.type) * 8;
      bitSize = 0;
      cur = a.type;
      text += `[${idx}]`;
    } else {
      throw new CoreError(`${text}: access "${access}" steps into a ${btf.kindName(t)}`);
    }
  }
  return { steps, first, local: { bits, type: cur, bitSize }, text };
}

/** Whether a kernel field's type can stand in for the local one (same shape, sizes may differ for ints). */
function compatible(local: Btf, lt: number, target: Btf, tt: number, depth = 0): boolean {
  if (depth > 8) return false;
  const l = local.resolve(lt), t = target.resolve(tt);
  const lk = local.kind(l), tk = target.kind(t);
  const intLike = (k: number) => k === KIND.INT || k === KIND.ENUM || k === KIND.ENUM64;
  if (intLike(lk) && intLike(tk)) return true;
  if (lk === KIND.PTR && tk === KIND.PTR) return true;
  if (lk === KIND.FWD || tk === KIND.FWD) return lk === KIND.FWD ? tk === KIND.STRUCT || tk === KIND.UNION || tk === KIND.FWD : lk === KIND.STRUCT || lk === KIND.UNION;
  if (lk !== tk) return false;
  if (lk === KIND.STRUCT || lk === KIND.UNION || lk === KIND.FLOAT) return true;
  if (lk === KIND.ARRAY) return compatible(local, local.array(l).type, target, target.array(t).type, depth + 1);
  return lk === 0;
}

/** A member by name in a kernel struct, searched through its anonymous members. */
function findMember(btf: Btf, id: number, name: string, depth = 0): { bits: number; type: number; bitSize: number } | undefined {
  if (depth > 8) return undefined;
  const t = btf.resolve(id), k = btf.kind(t);
  if (k !== KIND.STRUCT && k !== KIND.UNION) return undefined;
  for (const m of btf.members(t)) {
    if (m.name === name) return { bits: m.bitOffset, type: m.type, bitSize: m.bitSize };
    if (!m.name) {
      const inner = findMember(btf, m.type, name, depth + 1);
      if (inner) return { ...inner, bits: inner.bits + m.bitOffset };
    }
  }
  return undefined;
}

/** The same access in one kernel candidate type, or undefined when it has no such field. */
function targetSpec(local: Btf, lroot: number, steps: Step[], first: number, target: Btf, troot: number): Resolved | undefined {
  let lcur = lroot, cur = troot, bits = first * target.size(troot) * 8, bitSize = 0;
  for (const s of steps) {
    const lt = local.resolve(lcur);
    if (s.kind === "member") {
      const lm = local.members(lt)[s.index]!;
      lcur = lm.type;
      if (!s.name) continue; // an anonymous local member: the next named one is searched for through the kernel's nesting
      const m = findMember(target, cur, s.name);
      if (!m || !compatible(local, lm.type, target, m.type)) return undefined;
      bits += m.bits;
      bitSize = m.bitSize;
      cur = m.type;
    } else {
      const t = target.resolve(cur);
      if (target.kind(t) !== KIND.ARRAY) return undefined;
      const a = target.array(t);
      if (a.nelems && s.index >= a.nelems) return undefined;
      bits += s.index * target.size(a.type) * 8;
      bitSize = 0;
      cur = a.type;
      lcur = local.array(lt).type;
    }
  }
  return { bits, type: cur, bitSize };
}

export interface CoreResult {
  /** What the instruction holds now (computed from the object's BTF) and what it gets. */
  local: number;
  target: number;
  /** The field could not be found in the kernel (only for kinds where that is an answer, or a poisoned access). */
  missing: boolean;
  /** Field sizes, for loads whose width must follow the kernel's. */
  localSize?: number;
  targetSize?: number;
  what: string;
}

/** One relocation's local and kernel values. */
export function resolveRelo(local: Btf, target: Btf, r: CoreRelo): CoreResult {
  const root = local.resolve(r.typeId);
  const rootKind = local.kind(root);
  const rootName = essential(local.name(root));
  const spec = localSpec(local, r.typeId, r.access);
  const what = `${spec.text} (access ${r.access})`;
  if (!rootName) throw new CoreError(`${what}: an anonymous root type cannot be matched in the kernel`);
  const candidates = target.find(rootName).filter((id) => {
    const k = target.kind(id);
    return k === rootKind || (rootKind === KIND.ENUM && k === KIND.ENUM64);
  });
  const results: Resolved[] = [];
  for (const c of candidates) {
    const t = targetSpec(local, r.typeId, spec.steps, spec.first, target, c);
    if (t) results.push(t);
  }
  const distinct = [...new Map(results.map((x) => [`${x.bits}/${x.bitSize}/${target.size(x.type)}`, x])).values()];
  if (distinct.length > 1) throw new CoreError(`${what}: the kernel has ${distinct.length} ${local.describe(root)} types that disagree on it`);
  const hit = distinct[0];
  switch (r.kind) {
    case CORE.FIELD_EXISTS:
      return { local: 1, target: hit ? 1 : 0, missing: !hit, what };
    case CORE.TYPE_EXISTS:
      return { local: 1, target: candidates.length ? 1 : 0, missing: !candidates.length, what };
    case CORE.TYPE_SIZE: {
      if (!candidates.length) return { local: local.size(root), target: 0, missing: true, what };
      return { local: local.size(root), target: target.size(candidates[0]!), missing: false, what };
    }
    case CORE.FIELD_BYTE_OFFSET:
    case CORE.FIELD_BYTE_SIZE: {
      if (spec.local.bitSize || spec.local.bits % 8) throw new CoreError(`${what}: a bitfield (read it with BPF_CORE_READ_BITFIELD; not supported)`);
      const localSize = local.size(spec.local.type);
      const localValue = r.kind === CORE.FIELD_BYTE_OFFSET ? spec.local.bits / 8 : localSize;
      if (!hit) return { local: localValue, target: 0, missing: true, what };
      if (hit.bitSize || hit.bits % 8) throw new CoreError(`${what}: a bitfield in this kernel`);
      const targetSize = target.size(hit.type);
      return { local: localValue, target: r.kind === CORE.FIELD_BYTE_OFFSET ? hit.bits / 8 : targetSize, missing: false, localSize, targetSize, what };
    }
    default:
      throw new CoreError(`${what}: relocation kind ${r.kind} is not supported (field offset, size, existence; type size, existence)`);
  }
}

const SIZE_BITS: Record<number, number> = { 1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18 };

/**
 * Applies a program's CO-RE relocations to its instructions, in place. A missing field whose
 * access is guarded by a FIELD_EXISTS relocation of the same path is poisoned; any other miss
 * is a CoreError naming the field.
 */
export function applyCoreRelos(insns: Uint8Array, relos: (CoreRelo & { insn: number })[], local: Btf, target: Btf, program: string): void {
  const v = new DataView(insns.buffer, insns.byteOffset, insns.byteLength);
  const guarded = new Set(relos.filter((r) => r.kind === CORE.FIELD_EXISTS).map((r) => `${r.typeId}:${r.access}`));
  for (const r of relos) {
    const at = r.insn * 8;
    if (at < 0 || at + 8 > insns.length) throw new CoreError(`program ${program}: relocation at instruction ${r.insn} is outside it`);
    const res = resolveRelo(local, target, r);
    const op = insns[at]!, cls = op & 7;
    if (res.missing && r.kind !== CORE.FIELD_EXISTS && r.kind !== CORE.TYPE_EXISTS) {
      if (!guarded.has(`${r.typeId}:${r.access}`)) throw new CoreError(`program ${program}: ${res.what}: this kernel's BTF has no such field`);
      // Unreachable once the guard reads 0; if the verifier can reach it, it says "invalid func".
      v.setUint8(at, 0x85); v.setUint8(at + 1, 0); v.setInt16(at + 2, 0, true); v.setInt32(at + 4, POISON_HELPER, true);
      if (op === 0x18 && at + 16 <= insns.length) { v.setUint8(at + 8, 0x05); v.setUint8(at + 9, 0); v.setInt16(at + 10, 0, true); v.setInt32(at + 12, 0, true); }
      continue;
    }
    const where = `program ${program}, instruction ${r.insn}, ${res.what}`;
    if (op === 0x18) {
      if (at + 16 > insns.length) throw new CoreError(`${where}: ld_imm64 cut short`);
      if (v.getUint32(at + 4, true) !== res.local >>> 0) throw new CoreError(`${where}: the instruction holds ${v.getUint32(at + 4, true)}, expected ${res.local}`);
      v.setUint32(at + 4, res.target >>> 0, true);
      v.setUint32(at + 12, 0, true);
    } else if (cls === 4 || cls === 7) { // ALU, ALU64 with an immediate
      if (op & 0x08) throw new CoreError(`${where}: an ALU instruction with a register operand`);
      if (v.getInt32(at + 4, true) !== res.local) throw new CoreError(`${where}: the instruction holds ${v.getInt32(at + 4, true)}, expected ${res.local}`);
      if (res.localSize !== undefined && res.targetSize !== undefined && r.kind === CORE.FIELD_BYTE_OFFSET && res.localSize !== res.targetSize && res.targetSize <= 8) {
        // A probe read of the local size from the kernel's offset would read the wrong bytes.
        throw new CoreError(`${where}: the field is ${res.targetSize} bytes in this kernel, ${res.localSize} in the program's declaration`);
      }
      v.setInt32(at + 4, res.target, true);
    } else if (cls === 1 || cls === 2 || cls === 3) { // LDX, ST, STX: the offset field
      if (v.getInt16(at + 2, true) !== res.local) throw new CoreError(`${where}: the instruction's offset is ${v.getInt16(at + 2, true)}, expected ${res.local}`);
      if (r.kind !== CORE.FIELD_BYTE_OFFSET) throw new CoreError(`${where}: relocation kind ${r.kind} on a memory access`);
      if (res.target > 0x7fff) throw new CoreError(`${where}: offset ${res.target} does not fit the instruction`);
      v.setInt16(at + 2, res.target, true);
      if (res.localSize !== res.targetSize && res.targetSize !== undefined) {
        const bits = SIZE_BITS[res.targetSize];
        if (cls !== 1 || bits === undefined) throw new CoreError(`${where}: the field is ${res.targetSize} bytes in this kernel, ${res.localSize} in the program`);
        v.setUint8(at, (op & ~0x18) | bits);
      }
    } else {
      throw new CoreError(`${where}: cannot relocate instruction opcode 0x${op.toString(16)}`);
    }
  }
}
