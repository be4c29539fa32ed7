// The running kernel's own description of its structures (BTF, /sys/kernel/btf/vmlinux): where
// a member sits inside a struct on this very build. The drop watcher reads a dropped packet's
// bytes, its device and its namespace out of the kernel's sk_buff by these offsets, which
// change from build to build; nothing is hard-coded. Parsed once, only the types' skeleton.
import { readFileSync } from "node:fs";

const MAGIC = 0xeb9f;
const KIND = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 } as const;

interface Member { name: string; type: number; bitOffset: number }
interface BtfType { kind: number; name: string; size: number; type: number; members?: Member[] }

export class BtfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BtfError";
  }
}

export class Btf {
  private readonly types: BtfType[] = [{ kind: 0, name: "void", size: 0, type: 0 }];
  private readonly structs = new Map<string, number>();

  constructor(buf: Uint8Array) {
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.length < 24 || v.getUint16(0, true) !== MAGIC) throw new BtfError("not BTF (bad magic): is this kernel built with CONFIG_DEBUG_INFO_BTF?");
    const hdrLen = v.getUint32(4, true);
    const typeOff = hdrLen + v.getUint32(8, true);
    const typeEnd = typeOff + v.getUint32(12, true);
    const strOff = hdrLen + v.getUint32(16, true);
    const strEnd = strOff + v.getUint32(20, true);
    if (typeEnd > buf.length || strEnd > buf.length) throw new BtfError("BTF sections run past the end of the data");
    const decoder = new TextDecoder();
    const str = (off: number): string => {
      if (off === 0) return "";
      let end = strOff + off;
      while (end < strEnd && buf[end] !== 0) end++;
      return decoder.decode(buf.subarray(strOff + off, end));
    };
    let p = typeOff;
    while (p + 12 <= typeEnd) {
      const nameOff = v.getUint32(p, true);
      const info = v.getUint32(p + 4, true);
      const sizeOrType = v.getUint32(p + 8, true);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const kindFlag = info >>> 31;
      p += 12;
      const t: BtfType = { kind, name: str(nameOff), size: sizeOrType, type: sizeOrType };
      switch (kind) {
        case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: p += 4; break;
        case KIND.ARRAY: t.type = v.getUint32(p, true); p += 12; break;
        case KIND.STRUCT: case KIND.UNION: {
          const members: Member[] = [];
          for (let i = 0; i < vlen; i++, p += 12) {
            const off = v.getUint32(p + 8, true);
            members.push({ name: str(v.getUint32(p, true)), type: v.getUint32(p + 4, true), bitOffset: kindFlag ? off & 0xffffff : off });
          }
          t.members = members;
          break;
        }
        case KIND.ENUM: case KIND.FUNC_PROTO: p += 8 * vlen; break;
        case KIND.DATASEC: case KIND.ENUM64: p += 12 * vlen; break;
        default: break; // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: nothing more
      }
      const id = this.types.push(t) - 1;
      if (kind === KIND.STRUCT && t.name && !this.structs.has(t.name)) this.structs.set(t.name, id);
    }
  }

  static kernel(path = "/sys/kernel/btf/vmlinux"): Btf {
    let buf: Uint8Array;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw new BtfError(`cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): the kernel needs CONFIG_DEBUG_INFO_BTF`);
    }
    return new Btf(buf);
  }

  /** Through typedefs and qualifiers to the type itself. */
  private resolve(id: number): number {
    for (let i = 0; i < 32; i++) {
      const t = this.types[id];
      if (!t || ![KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG].includes(t.kind as 8)) return id;
      id = t.type;
    }
    return id;
  }

  /** A member's bit offset inside a struct or union, looking into anonymous members too. */
  private find(id: number, name: string): { bitOffset: number; type: number } | undefined {
    const t = this.types[this.resolve(id)];
    for (const m of t?.members ?? []) {
      if (m.name === name) return { bitOffset: m.bitOffset, type: m.type };
      if (m.name === "") {
        const inner = this.find(m.type, name);
        if (inner) return { bitOffset: m.bitOffset + inner.bitOffset, type: inner.type };
      }
    }
    return undefined;
  }

  /** Byte offset of `struct name`'s member at `path` (members of nested structs, not through pointers). */
  offsetOf(struct: string, ...path: string[]): number {
    let id = this.structs.get(struct);
    if (id === undefined) throw new BtfError(`struct ${struct} is not in this kernel's BTF`);
    let bits = 0;
    for (const name of path) {
      const m = this.find(id, name);
      if (!m) throw new BtfError(`struct ${struct} has no member ${path.join(".")} on this kernel`);
      bits += m.bitOffset;
      id = m.type;
    }
    if (bits % 8 !== 0) throw new BtfError(`${struct}.${path.join(".")} is a bitfield`);
    return bits / 8;
  }
}
