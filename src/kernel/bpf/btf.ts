// BTF, the kernel's type format: a reader for an object's .BTF section and for the running
// kernel's /sys/kernel/btf/vmlinux (types and strings, every offset checked: a garbled blob is a
// BtfError with the offset, never a bad read), the fix-ups clang leaves to the loader before the
// kernel takes an object's BTF (DATASEC sizes and variable offsets come from the ELF), and
// BTF_LOAD itself. Types are read where they lie: parsing records only where each type starts, so
// the kernel's ~150k types cost one walk, and names are decoded when asked for.
import { readFileSync } from "node:fs";
import { BpfError, btfLoadRaw } from "./sys.ts";

export class BtfError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`BTF: ${message}`);
    this.name = "BtfError";
  }
}

export const KIND = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11,
  FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const;
const KIND_NAMES = Object.fromEntries(Object.entries(KIND).map(([k, v]) => [v, k.toLowerCase()])) as Record<number, string>;

export const BTF_MAGIC = 0xeb9f;
const HEADER_MIN = 24;
const MAX_CHAIN = 32;

export interface BtfMember {
  name: string;
  type: number;
  /** Offset from the start of the struct, in bits. */
  bitOffset: number;
  /** Bitfield width (0: not a bitfield). */
  bitSize: number;
}

export interface BtfVarSecinfo {
  type: number;
  offset: number;
  size: number;
  /** Where this record sits in the type section (for the loader's fix-ups). */
  at: number;
}

const decoder = new TextDecoder();

export class Btf {
  /** Byte offset (into `bytes`) of each type's record; index = type id (0 is void). */
  private readonly at: Int32Array;
  private byName?: Map<string, number[]>;
  readonly v: DataView;

  private constructor(readonly bytes: Uint8Array, private readonly strOff: number, private readonly strLen: number, readonly typeOff: number, readonly typeLen: number, at: Int32Array, readonly count: number) {
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = at;
  }

  static parse(input: Uint8Array, what = "BTF"): Btf {
    const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength); // not a Buffer: slice() copies
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < HEADER_MIN) throw new BtfError(`${what}: ${bytes.length} bytes, shorter than the header`, 0);
    if (v.getUint16(0, true) !== BTF_MAGIC) throw new BtfError(`${what}: bad magic 0x${v.getUint16(0, true).toString(16)} (big-endian BTF is not read)`, 0);
    if (v.getUint8(2) !== 1) throw new BtfError(`${what}: version ${v.getUint8(2)}`, 2);
    const hdrLen = v.getUint32(4, true);
    if (hdrLen < HEADER_MIN || hdrLen > bytes.length) throw new BtfError(`${what}: header length ${hdrLen}`, 4);
    const typeOff = hdrLen + v.getUint32(8, true), typeLen = v.getUint32(12, true);
    const strOff = hdrLen + v.getUint32(16, true), strLen = v.getUint32(20, true);
    if (typeOff + typeLen > bytes.length) throw new BtfError(`${what}: type section [${typeOff}, +${typeLen}) beyond ${bytes.length} bytes`, 8);
    if (strOff + strLen > bytes.length) throw new BtfError(`${what}: string section [${strOff}, +${strLen}) beyond ${bytes.length} bytes`, 16);
    if (strLen === 0 || bytes[strOff] !== 0) throw new BtfError(`${what}: the string section must start with an empty string`, strOff);
    // One walk to find where each type starts.
    let at = new Int32Array(1024);
    let n = 0, off = typeOff;
    const end = typeOff + typeLen;
    while (off < end) {
      if (off + 12 > end) throw new BtfError(`${what}: type ${n + 1} header cut short at ${off}`, off);
      const info = v.getUint32(off + 4, true);
      const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
      let extra: number;
      switch (kind) {
        case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: extra = 4; break;
        case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
        case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: extra = 0; break;
        case KIND.ARRAY: extra = 12; break;
        case KIND.STRUCT: case KIND.UNION: case KIND.DATASEC: case KIND.ENUM64: extra = 12 * vlen; break;
        case KIND.ENUM: case KIND.FUNC_PROTO: extra = 8 * vlen; break;
        default: throw new BtfError(`${what}: type ${n + 1} has unknown kind ${kind}`, off + 4);
      }
      if (off + 12 + extra > end) throw new BtfError(`${what}: type ${n + 1} (${KIND_NAMES[kind]}, ${vlen} entries) runs past the type section at ${off}`, off);
      n++;
      if (n >= at.length) { const bigger = new Int32Array(at.length * 2); bigger.set(at); at = bigger; }
      at[n] = off;
      off += 12 + extra;
    }
    return new Btf(bytes, strOff, strLen, typeOff, typeLen, at, n);
  }

  /** A string of the string section. */
  str(off: number): string {
    if (off >= this.strLen) throw new BtfError(`string offset ${off} beyond the string section (${this.strLen} bytes)`, this.strOff);
    const start = this.strOff + off, end = this.strOff + this.strLen;
    const nul = this.bytes.indexOf(0, start);
    if (nul < 0 || nul >= end) throw new BtfError(`string at ${off} is not NUL-terminated`, start);
    return decoder.decode(this.bytes.subarray(start, nul));
  }

  private check(id: number): number {
    if (!Number.isInteger(id) || id < 1 || id > this.count) throw new BtfError(`type id ${id} out of range (1..${this.count})`, this.typeOff);
    return this.at[id]!;
  }

  /** Where a type's record starts in `bytes` (for fix-ups). */
  recordAt(id: number): number {
    return this.check(id);
  }

  kind(id: number): number {
    if (id === 0) return 0;
    return (this.v.getUint32(this.check(id) + 4, true) >>> 24) & 0x1f;
  }

  kindName(id: number): string {
    return id === 0 ? "void" : KIND_NAMES[this.kind(id)] ?? "?";
  }

  name(id: number): string {
    return id === 0 ? "" : this.str(this.v.getUint32(this.check(id), true));
  }

  vlen(id: number): number {
    return this.v.getUint32(this.check(id) + 4, true) & 0xffff;
  }

  kindFlag(id: number): boolean {
    return (this.v.getUint32(this.check(id) + 4, true) >>> 31) === 1;
  }

  /** The record's size-or-type word: a size for int, struct, union, enum, datasec; a type id for the rest. */
  word(id: number): number {
    return this.v.getUint32(this.check(id) + 8, true);
  }

  /** The type a pointer, typedef, modifier, var or func refers to (a func's: its prototype). */
  target(id: number): number {
    const t = this.word(id);
    if (t !== 0) this.check(t);
    return t;
  }

  /** Through typedefs and modifiers (const, volatile, restrict, type tags) to the type itself. */
  resolve(id: number): number {
    for (let i = 0; i < MAX_CHAIN; i++) {
      const k = this.kind(id);
      if (k !== KIND.TYPEDEF && k !== KIND.VOLATILE && k !== KIND.CONST && k !== KIND.RESTRICT && k !== KIND.TYPE_TAG) return id;
      id = this.target(id);
    }
    throw new BtfError(`type ${id}: a chain of more than ${MAX_CHAIN} typedefs or modifiers`, this.at[id] ?? 0);
  }

  /** The size in bytes of a type. */
  size(id: number, depth = 0): number {
    if (depth > MAX_CHAIN) throw new BtfError(`type ${id}: nested too deep to size`, this.at[id] ?? 0);
    const r = this.resolve(id);
    switch (this.kind(r)) {
      case KIND.INT: case KIND.STRUCT: case KIND.UNION: case KIND.ENUM: case KIND.ENUM64: case KIND.FLOAT: case KIND.DATASEC:
        return this.word(r);
      case KIND.PTR:
        return 8;
      case KIND.ARRAY: {
        const a = this.array(r);
        return a.nelems * this.size(a.type, depth + 1);
      }
      default:
        throw new BtfError(`type ${r} (${this.kindName(r)}) has no size`, this.at[r] ?? 0);
    }
  }

  array(id: number): { type: number; indexType: number; nelems: number } {
    const o = this.check(id);
    if (this.kind(id) !== KIND.ARRAY) throw new BtfError(`type ${id} is a ${this.kindName(id)}, not an array`, o);
    const type = this.v.getUint32(o + 12, true);
    this.check(type);
    return { type, indexType: this.v.getUint32(o + 16, true), nelems: this.v.getUint32(o + 20, true) };
  }

  members(id: number): BtfMember[] {
    const o = this.check(id), k = this.kind(id);
    if (k !== KIND.STRUCT && k !== KIND.UNION) throw new BtfError(`type ${id} is a ${this.kindName(id)}, not a struct or union`, o);
    const bitfields = this.kindFlag(id);
    const out: BtfMember[] = [];
    for (let i = 0, n = this.vlen(id); i < n; i++) {
      const m = o + 12 + 12 * i;
      const raw = this.v.getUint32(m + 8, true);
      const type = this.v.getUint32(m + 4, true);
      this.check(type === 0 ? 1 : type);
      out.push({ name: this.str(this.v.getUint32(m, true)), type, bitOffset: bitfields ? raw & 0xffffff : raw, bitSize: bitfields ? raw >>> 24 : 0 });
    }
    return out;
  }

  enumValues(id: number): { name: string; value: number }[] {
    const o = this.check(id), k = this.kind(id);
    const out: { name: string; value: number }[] = [];
    if (k === KIND.ENUM) {
      for (let i = 0, n = this.vlen(id); i < n; i++) {
        const m = o + 12 + 8 * i;
        const raw = this.v.getUint32(m + 4, true);
        out.push({ name: this.str(this.v.getUint32(m, true)), value: this.kindFlag(id) ? (raw | 0) : raw });
      }
    } else if (k === KIND.ENUM64) {
      for (let i = 0, n = this.vlen(id); i < n; i++) {
        const m = o + 12 + 12 * i;
        out.push({ name: this.str(this.v.getUint32(m, true)), value: this.v.getUint32(m + 8, true) * 2 ** 32 + this.v.getUint32(m + 4, true) });
      }
    } else {
      throw new BtfError(`type ${id} is a ${this.kindName(id)}, not an enum`, o);
    }
    return out;
  }

  datasecVars(id: number): BtfVarSecinfo[] {
    const o = this.check(id);
    if (this.kind(id) !== KIND.DATASEC) throw new BtfError(`type ${id} is a ${this.kindName(id)}, not a datasec`, o);
    const out: BtfVarSecinfo[] = [];
    for (let i = 0, n = this.vlen(id); i < n; i++) {
      const m = o + 12 + 12 * i;
      const type = this.v.getUint32(m, true);
      this.check(type);
      out.push({ type, offset: this.v.getUint32(m + 4, true), size: this.v.getUint32(m + 8, true), at: m });
    }
    return out;
  }

  /** The ids of the types with this name (optionally of one kind). */
  find(name: string, kind?: number): number[] {
    if (!this.byName) {
      const index = new Map<string, number[]>();
      for (let id = 1; id <= this.count; id++) {
        const off = this.v.getUint32(this.at[id]!, true);
        if (off === 0) continue;
        const n = this.str(off);
        const list = index.get(n);
        if (list) list.push(id); else index.set(n, [id]);
      }
      this.byName = index;
    }
    const ids = this.byName.get(name) ?? [];
    return kind === undefined ? ids : ids.filter((id) => this.kind(id) === kind);
  }

  /** A readable name for messages: "struct sk_buff", "typedef possible_net_t", "int". */
  describe(id: number): string {
    if (id === 0) return "void";
    const k = this.kind(id), n = this.name(id);
    if (k === KIND.STRUCT || k === KIND.UNION || k === KIND.ENUM || k === KIND.ENUM64) return `${KIND_NAMES[k === KIND.ENUM64 ? KIND.ENUM : k]} ${n || "(anon)"}`;
    if (k === KIND.PTR) return `${this.describe(this.target(id))} *`;
    return n || KIND_NAMES[k] || "?";
  }
}

let vmlinux: Btf | undefined;
let vmlinuxError: string | undefined;

export const VMLINUX_BTF = "/sys/kernel/btf/vmlinux";

/** The running kernel's BTF, read once; a BtfError saying why when the kernel has none. */
export function kernelBtf(path = VMLINUX_BTF): Btf {
  if (path === VMLINUX_BTF && vmlinux) return vmlinux;
  if (path === VMLINUX_BTF && vmlinuxError) throw new BtfError(vmlinuxError, 0);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const why = `the kernel's BTF (${path}) cannot be read: ${(e as Error).message} (a kernel built without CONFIG_DEBUG_INFO_BTF)`;
    if (path === VMLINUX_BTF) vmlinuxError = why;
    throw new BtfError(why, 0);
  }
  const b = Btf.parse(bytes, path);
  if (path === VMLINUX_BTF) vmlinux = b;
  return b;
}

/**
 * The object's BTF as the kernel takes it: clang leaves each DATASEC's size and its variables'
 * offsets at 0 (they are known only once the ELF is laid out); the ELF has them, per section
 * and per symbol. `sectionSize` and `symbolOffset` answer from the ELF (undefined: unknown).
 */
export function fixupForKernel(btf: Btf, sectionSize: (name: string) => number | undefined, symbolOffset: (section: string, name: string) => number | undefined): Uint8Array {
  const out = btf.bytes.slice();
  const v = new DataView(out.buffer);
  for (let id = 1; id <= btf.count; id++) {
    if (btf.kind(id) !== KIND.DATASEC) continue;
    const sec = btf.name(id);
    const size = sectionSize(sec);
    if (size === undefined) continue;
    if (btf.word(id) === 0) v.setUint32(btf.recordAt(id) + 8, size, true);
    for (const s of btf.datasecVars(id)) {
      const off = symbolOffset(sec, btf.name(s.type));
      if (off !== undefined) v.setUint32(s.at + 4, off, true);
    }
  }
  return out;
}

/** BTF_LOAD: the fd, or a BpfError with the kernel's log when it refuses. */
export function loadBtf(data: Uint8Array, what: string): number {
  const fd = btfLoadRaw(data);
  if (fd >= 0) return fd;
  const log = new Uint8Array(1 << 20);
  const again = btfLoadRaw(data, log);
  if (again >= 0) return again; // refused without a log, taken with one: take it
  const end = log.indexOf(0);
  const text = decoder.decode(log.subarray(0, end < 0 ? log.length : end)).trim();
  throw new BpfError("BTF_LOAD", what, -again, text ? text.split("\n").slice(-6).join(" | ") : undefined);
}
