// .BTF.ext: what clang records per program section beside the code: function info (which BTF
// FUNC each function is), line info (source lines, for the verifier's log), and CO-RE
// relocations (each field access to resolve against the kernel's BTF). Records are grouped by
// section name; their instruction offsets are in bytes from the section's start. Bounds-checked
// like the rest: a garbled table is a BtfError with the offset.
import { type Btf, BtfError } from "./btf.ts";

export interface ExtSection {
  /** Bytes per record, as the object says (the kernel takes the same). */
  recSize: number;
  /** Each record's bytes; the first u32 is the instruction's byte offset in the section. */
  records: Uint8Array[];
}

/** enum bpf_core_relo_kind. */
export const CORE = {
  FIELD_BYTE_OFFSET: 0, FIELD_BYTE_SIZE: 1, FIELD_EXISTS: 2, FIELD_SIGNED: 3, FIELD_LSHIFT_U64: 4, FIELD_RSHIFT_U64: 5,
  TYPE_ID_LOCAL: 6, TYPE_ID_TARGET: 7, TYPE_EXISTS: 8, TYPE_SIZE: 9, ENUMVAL_EXISTS: 10, ENUMVAL_VALUE: 11, TYPE_MATCHES: 12,
} as const;

export interface CoreRelo {
  /** Byte offset of the instruction in its section. */
  insnOff: number;
  typeId: number;
  /** "0:1:0": the access path clang recorded. */
  access: string;
  kind: number;
}

export interface BtfExt {
  funcInfo: Map<string, ExtSection>;
  lineInfo: Map<string, ExtSection>;
  coreRelos: Map<string, CoreRelo[]>;
}

function readTable(bytes: Uint8Array, v: DataView, start: number, len: number, minRec: number, btf: Btf, what: string): Map<string, ExtSection> {
  const out = new Map<string, ExtSection>();
  if (len === 0) return out;
  const end = start + len;
  if (end > bytes.length || len < 4) throw new BtfError(`.BTF.ext ${what}: [${start}, +${len}) beyond ${bytes.length} bytes`, start);
  const recSize = v.getUint32(start, true);
  if (recSize < minRec || recSize % 4 !== 0 || recSize > 256) throw new BtfError(`.BTF.ext ${what}: record size ${recSize}`, start);
  let off = start + 4;
  while (off < end) {
    if (off + 8 > end) throw new BtfError(`.BTF.ext ${what}: section header cut short at ${off}`, off);
    const name = btf.str(v.getUint32(off, true));
    const n = v.getUint32(off + 4, true);
    off += 8;
    if (n === 0 || off + n * recSize > end) throw new BtfError(`.BTF.ext ${what} for ${name}: ${n} records of ${recSize} bytes at ${off} run past the table`, off);
    const records: Uint8Array[] = [];
    for (let i = 0; i < n; i++) records.push(bytes.subarray(off + i * recSize, off + (i + 1) * recSize));
    off += n * recSize;
    const prev = out.get(name);
    if (prev) prev.records.push(...records); else out.set(name, { recSize, records });
  }
  return out;
}

export function parseBtfExt(bytes: Uint8Array, btf: Btf): BtfExt {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24) throw new BtfError(`.BTF.ext: ${bytes.length} bytes, shorter than its header`, 0);
  if (v.getUint16(0, true) !== 0xeb9f) throw new BtfError(".BTF.ext: bad magic", 0);
  if (v.getUint8(2) !== 1) throw new BtfError(`.BTF.ext: version ${v.getUint8(2)}`, 2);
  const hdr = v.getUint32(4, true);
  if (hdr < 24 || hdr > bytes.length) throw new BtfError(`.BTF.ext: header length ${hdr}`, 4);
  const funcInfo = readTable(bytes, v, hdr + v.getUint32(8, true), v.getUint32(12, true), 8, btf, "func_info");
  const lineInfo = readTable(bytes, v, hdr + v.getUint32(16, true), v.getUint32(20, true), 16, btf, "line_info");
  const coreRelos = new Map<string, CoreRelo[]>();
  if (hdr >= 32) {
    const table = readTable(bytes, v, hdr + v.getUint32(24, true), v.getUint32(28, true), 16, btf, "core_relo");
    for (const [name, sec] of table) {
      coreRelos.set(name, sec.records.map((r) => {
        const d = new DataView(r.buffer, r.byteOffset, r.byteLength);
        return { insnOff: d.getUint32(0, true), typeId: d.getUint32(4, true), access: btf.str(d.getUint32(8, true)), kind: d.getUint32(12, true) };
      }));
    }
  }
  return { funcInfo, lineInfo, coreRelos };
}
