// An ELF64 little-endian reader for the relocatable objects clang writes for BPF: section
// headers, their names, the symbol table and REL relocations, nothing more (no program headers,
// no dynamic sections; BPF objects have none). The object is input like any other: every read
// is checked against the file's length first, and a truncated or garbled file is an ElfError
// naming the offset and what was expected there, never an out-of-range read or a crash.

export class ElfError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`ELF: ${message}`);
    this.name = "ElfError";
  }
}

export const SHT = { NULL: 0, PROGBITS: 1, SYMTAB: 2, STRTAB: 3, RELA: 4, NOBITS: 8, REL: 9 } as const;
export const SHF_EXECINSTR = 0x4;
export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3 } as const;
export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;
/** Relocation types of EM_BPF: an ld_imm64's 64-bit immediate, and a call's 32-bit one. */
export const R_BPF = { NONE: 0, R64_64: 1, ABS64: 2, ABS32: 3, NODYLD32: 4, R64_32: 10 } as const;
const EM_BPF = 247, ET_REL = 1;

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  entsize: number;
}

export interface ElfSymbol {
  index: number;
  name: string;
  /** STB_* */
  bind: number;
  /** STT_* */
  type: number;
  /** The section it is defined in (0: undefined; >= 0xff00: special). */
  section: number;
  value: number;
  size: number;
}

export interface ElfRel {
  /** Byte offset inside the section the relocation applies to. */
  offset: number;
  type: number;
  symbol: number;
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** Bounds-checked reads from the file: each names what it was reading. */
class Cursor {
  readonly v: DataView;
  constructor(readonly b: Uint8Array) {
    this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  need(off: number, n: number, what: string): void {
    if (!Number.isSafeInteger(off) || off < 0 || n < 0 || off + n > this.b.length) {
      throw new ElfError(`${what}: needs ${n} bytes at offset ${off}, the file has ${this.b.length}`, off);
    }
  }
  u8(off: number, what: string): number { this.need(off, 1, what); return this.v.getUint8(off); }
  u16(off: number, what: string): number { this.need(off, 2, what); return this.v.getUint16(off, true); }
  u32(off: number, what: string): number { this.need(off, 4, what); return this.v.getUint32(off, true); }
  /** A u64 that must fit a JS number (offsets and sizes in a file of a few MB). */
  u64(off: number, what: string): number {
    this.need(off, 8, what);
    const x = this.v.getBigUint64(off, true);
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(`${what}: ${x} at offset ${off} is not a plausible offset or size`, off);
    return Number(x);
  }
}

export class ElfFile {
  private constructor(readonly bytes: Uint8Array, readonly sections: ElfSection[], readonly symbols: ElfSymbol[], private readonly rels: Map<number, ElfRel[]>) {}

  static parse(input: Uint8Array): ElfFile {
    // A plain Uint8Array over the same memory: Node's Buffer.slice() would not copy.
    const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    const r = new Cursor(bytes);
    r.need(0, 64, "ELF header");
    if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) throw new ElfError("not an ELF file (bad magic)", 0);
    if (bytes[4] !== 2) throw new ElfError(`class ${bytes[4]}: only ELF64 is read`, 4);
    if (bytes[5] !== 1) throw new ElfError(`data encoding ${bytes[5]}: only little-endian is read`, 5);
    if (bytes[6] !== 1) throw new ElfError(`ELF version ${bytes[6]}`, 6);
    const type = r.u16(16, "e_type"), machine = r.u16(18, "e_machine");
    if (machine !== EM_BPF) throw new ElfError(`e_machine ${machine}: not a BPF object (expected ${EM_BPF})`, 18);
    if (type !== ET_REL) throw new ElfError(`e_type ${type}: not a relocatable object`, 16);
    const shoff = r.u64(40, "e_shoff");
    const shentsize = r.u16(58, "e_shentsize"), shnum = r.u16(60, "e_shnum"), shstrndx = r.u16(62, "e_shstrndx");
    if (shnum === 0) throw new ElfError("no section headers (or extended numbering, which BPF objects never need)", 60);
    if (shentsize !== 64) throw new ElfError(`e_shentsize ${shentsize}, expected 64`, 58);
    r.need(shoff, shnum * 64, "section header table");
    const raw: ElfSection[] = [];
    for (let i = 0; i < shnum; i++) {
      const o = shoff + i * 64;
      const s: ElfSection = {
        index: i, name: "", type: r.u32(o + 4, `section ${i} sh_type`), flags: r.u64(o + 8, `section ${i} sh_flags`),
        offset: r.u64(o + 24, `section ${i} sh_offset`), size: r.u64(o + 32, `section ${i} sh_size`),
        link: r.u32(o + 40, `section ${i} sh_link`), info: r.u32(o + 44, `section ${i} sh_info`), entsize: r.u64(o + 56, `section ${i} sh_entsize`),
      };
      if (s.type !== SHT.NOBITS && s.type !== SHT.NULL) r.need(s.offset, s.size, `section ${i}'s contents`);
      raw.push(s);
    }
    if (shstrndx >= shnum || raw[shstrndx]!.type !== SHT.STRTAB) throw new ElfError(`e_shstrndx ${shstrndx} is not a string table`, 62);
    const shstr = raw[shstrndx]!;
    for (const s of raw) s.name = stringAt(r, shstr, r.u32(shoff + s.index * 64, `section ${s.index} sh_name`), `section ${s.index}'s name`);

    const symtabs = raw.filter((s) => s.type === SHT.SYMTAB);
    if (symtabs.length > 1) throw new ElfError("more than one symbol table", symtabs[1]!.offset);
    const symbols: ElfSymbol[] = [];
    const symtab = symtabs[0];
    if (symtab) {
      if (symtab.entsize !== 24 || symtab.size % 24 !== 0) throw new ElfError(`symbol table entry size ${symtab.entsize}, size ${symtab.size}: expected 24-byte entries`, symtab.offset);
      const strtab = raw[symtab.link];
      if (!strtab || strtab.type !== SHT.STRTAB) throw new ElfError(`symbol table's sh_link ${symtab.link} is not a string table`, symtab.offset);
      for (let i = 0; i < symtab.size / 24; i++) {
        const o = symtab.offset + i * 24;
        const info = r.u8(o + 4, `symbol ${i} st_info`);
        symbols.push({
          index: i, name: stringAt(r, strtab, r.u32(o, `symbol ${i} st_name`), `symbol ${i}'s name`), bind: info >> 4, type: info & 0xf,
          section: r.u16(o + 6, `symbol ${i} st_shndx`), value: r.u64(o + 8, `symbol ${i} st_value`), size: r.u64(o + 16, `symbol ${i} st_size`),
        });
      }
    }

    const rels = new Map<number, ElfRel[]>();
    for (const s of raw) {
      if (s.type === SHT.RELA) throw new ElfError(`section ${s.name}: RELA relocations (BPF objects use REL)`, s.offset);
      if (s.type !== SHT.REL) continue;
      if (s.entsize !== 16 || s.size % 16 !== 0) throw new ElfError(`relocation section ${s.name}: entry size ${s.entsize}, size ${s.size}: expected 16-byte entries`, s.offset);
      if (!symtab || s.link !== symtab.index) throw new ElfError(`relocation section ${s.name}: sh_link ${s.link} is not the symbol table`, s.offset);
      const target = raw[s.info];
      if (!target || s.info === 0) throw new ElfError(`relocation section ${s.name}: sh_info ${s.info} is not a section`, s.offset);
      const list: ElfRel[] = [];
      for (let i = 0; i < s.size / 16; i++) {
        const o = s.offset + i * 16;
        const offset = r.u64(o, `${s.name} relocation ${i} r_offset`);
        const type = r.u32(o + 8, `${s.name} relocation ${i} type`);
        const symbol = r.u32(o + 12, `${s.name} relocation ${i} symbol`);
        if (symbol >= symbols.length) throw new ElfError(`${s.name} relocation ${i}: symbol ${symbol} of ${symbols.length}`, o + 12);
        if (target.type !== SHT.NOBITS && offset >= target.size) throw new ElfError(`${s.name} relocation ${i}: offset ${offset} beyond ${target.name} (${target.size} bytes)`, o);
        list.push({ offset, type, symbol });
      }
      rels.set(s.info, [...(rels.get(s.info) ?? []), ...list]);
    }
    return new ElfFile(bytes, raw, symbols, rels);
  }

  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** The section's bytes (a view into the file; zeros for NOBITS). */
  data(s: ElfSection): Uint8Array {
    return s.type === SHT.NOBITS ? new Uint8Array(s.size) : this.bytes.subarray(s.offset, s.offset + s.size);
  }

  /** The REL relocations that apply to a section. */
  relocations(sectionIndex: number): ElfRel[] {
    return this.rels.get(sectionIndex) ?? [];
  }

  /** Symbols defined in a section, by value. */
  symbolsIn(sectionIndex: number): ElfSymbol[] {
    return this.symbols.filter((s) => s.section === sectionIndex).sort((a, b) => a.value - b.value);
  }
}

function stringAt(r: Cursor, strtab: ElfSection, off: number, what: string): string {
  if (off >= strtab.size) {
    if (off === 0 && strtab.size === 0) return "";
    throw new ElfError(`${what}: string offset ${off} beyond its string table (${strtab.size} bytes)`, strtab.offset);
  }
  const start = strtab.offset + off, end = strtab.offset + strtab.size;
  const nul = r.b.indexOf(0, start);
  if (nul < 0 || nul >= end) throw new ElfError(`${what}: string at ${start} is not NUL-terminated inside its table`, start);
  return decoder.decode(r.b.subarray(start, nul));
}

export function parseElf(bytes: Uint8Array): ElfFile {
  return ElfFile.parse(bytes);
}
