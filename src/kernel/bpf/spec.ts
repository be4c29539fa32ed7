// A clang BPF object as a plain spec, with no kernel involved: its maps (from the BTF-defined
// definitions in .maps), its programs (one per function in each program section, typed by the
// section's name after libbpf's conventions), the relocations each program needs (map
// references, CO-RE field accesses), its BTF and .BTF.ext records, and its license. What gauze
// does not support is said here, by name, before anything is loaded: calls to functions that
// were not inlined, global variables, map-in-map.
import { Btf, BtfError, KIND, fixupForKernel } from "./btf.ts";
import { type CoreRelo, parseBtfExt } from "./btf-ext.ts";
import { ElfError, type ElfFile, type ElfSection, R_BPF, SHF_EXECINSTR, STT, parseElf } from "./elf.ts";
import { ATTACH_TYPE, MAP_TYPE, PROG_TYPE } from "./uapi.ts";

export interface MapSpec {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** LIBBPF_PIN_BY_NAME: pinned (and adopted) as <pin dir>/<name>. */
  pinByName: boolean;
  /** The key's and value's types in the object's BTF (0: none). */
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export interface ProgramSpec {
  /** The function's name. */
  name: string;
  section: string;
  type: number;
  expectedAttachType: number;
  /** tp_btf/<name>, raw_tracepoint/<name>: the tracepoint. */
  attachTo?: string;
  /** The instructions (a copy: loading patches them). */
  insns: Uint8Array;
  /** ld_imm64 instructions (by index) that must hold a map's fd. */
  mapRelocs: { insn: number; map: string }[];
  /** CO-RE relocations, with instruction indexes relative to this program. */
  coreRelos: (CoreRelo & { insn: number })[];
  /** bpf_func_info and bpf_line_info records, offsets in instructions from this program's start. */
  funcInfo?: { bytes: Uint8Array; count: number };
  lineInfo?: { bytes: Uint8Array; count: number };
}

export interface ObjectSpec {
  maps: MapSpec[];
  programs: ProgramSpec[];
  license: string;
  /** The object's BTF (for CO-RE) and its bytes fixed up for BTF_LOAD; undefined: the object has none. */
  btf?: Btf;
  btfForKernel?: Uint8Array;
}

export class SpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SpecError";
  }
}

/** Section name -> program type, expected attach type and target: libbpf's names, the ones gauze uses. */
export function programKind(section: string): { type: number; expectedAttachType: number; attachTo?: string } | undefined {
  if (section === "tc" || section === "classifier" || section.startsWith("tc/") || section.startsWith("classifier/")) return { type: PROG_TYPE.SCHED_CLS, expectedAttachType: 0 };
  if (section === "tcx/ingress") return { type: PROG_TYPE.SCHED_CLS, expectedAttachType: ATTACH_TYPE.TCX_INGRESS };
  if (section === "tcx/egress") return { type: PROG_TYPE.SCHED_CLS, expectedAttachType: ATTACH_TYPE.TCX_EGRESS };
  if (section.startsWith("tp_btf/") && section.length > 7) return { type: PROG_TYPE.TRACING, expectedAttachType: ATTACH_TYPE.TRACE_RAW_TP, attachTo: section.slice(7) };
  for (const p of ["raw_tracepoint/", "raw_tp/"]) {
    if (section.startsWith(p) && section.length > p.length) return { type: PROG_TYPE.RAW_TRACEPOINT, expectedAttachType: 0, attachTo: section.slice(p.length) };
  }
  if (section === "socket" || section.startsWith("socket/")) return { type: PROG_TYPE.SOCKET_FILTER, expectedAttachType: 0 };
  return undefined;
}

const LD_IMM64 = 0x18, CALL = 0x85, BPF_PSEUDO_CALL = 1;

/** The maps of a BTF-defined .maps section: `__uint(x, n)` is a pointer to an array of n; `__type(x, T)` a pointer to T. */
export function mapSpecs(btf: Btf, sectionSize?: number): MapSpec[] {
  const secs = btf.find(".maps", KIND.DATASEC);
  if (!secs.length) return [];
  const out: MapSpec[] = [];
  for (const v of btf.datasecVars(secs[0]!)) {
    if (btf.kind(v.type) !== KIND.VAR) throw new BtfError(`.maps entry ${v.type} is a ${btf.kindName(v.type)}, not a variable`, 0);
    const name = btf.name(v.type);
    const def = btf.resolve(btf.target(v.type));
    if (btf.kind(def) !== KIND.STRUCT) throw new SpecError(`map ${name}: its definition is a ${btf.kindName(def)}, not a struct`);
    const m: MapSpec = { name, type: 0, keySize: 0, valueSize: 0, maxEntries: 0, flags: 0, pinByName: false, btfKeyTypeId: 0, btfValueTypeId: 0 };
    for (const f of btf.members(def)) {
      const ptr = btf.resolve(f.type);
      if (btf.kind(ptr) !== KIND.PTR) throw new SpecError(`map ${name}: field ${f.name} is not __uint() or __type() (a ${btf.kindName(ptr)})`);
      const to = btf.target(ptr);
      const number = (): number => {
        const arr = btf.resolve(to);
        if (btf.kind(arr) !== KIND.ARRAY) throw new SpecError(`map ${name}: ${f.name} must be __uint(${f.name}, N)`);
        return btf.array(arr).nelems;
      };
      switch (f.name) {
        case "type": m.type = number(); break;
        case "max_entries": m.maxEntries = number(); break;
        case "map_flags": m.flags = number(); break;
        case "key_size": m.keySize = number(); break;
        case "value_size": m.valueSize = number(); break;
        case "pinning": {
          const p = number();
          if (p > 1) throw new SpecError(`map ${name}: pinning ${p} (only LIBBPF_PIN_BY_NAME is supported)`);
          m.pinByName = p === 1;
          break;
        }
        case "key": m.btfKeyTypeId = to; m.keySize = btf.size(to); break;
        case "value": m.btfValueTypeId = to; m.valueSize = btf.size(to); break;
        case "values": throw new SpecError(`map ${name}: map-in-map (values) is not supported`);
        default: throw new SpecError(`map ${name}: unknown map attribute ${f.name}`);
      }
    }
    if (!m.type) throw new SpecError(`map ${name}: no __uint(type, ...)`);
    if (m.type === MAP_TYPE.RINGBUF && (m.keySize || m.valueSize)) throw new SpecError(`map ${name}: a ring buffer has no key or value`);
    if (sectionSize !== undefined && v.offset + v.size > sectionSize) throw new SpecError(`map ${name}: beyond .maps`);
    out.push(m);
  }
  return out;
}

function license(elf: ElfFile): string {
  const s = elf.section("license");
  if (!s) return "";
  const b = elf.data(s);
  const end = b.indexOf(0);
  return new TextDecoder().decode(b.subarray(0, end < 0 ? b.length : end));
}

/** Records of one section that fall in [start, end) bytes, rebased to instruction indexes. */
function rebase(records: Uint8Array[] | undefined, start: number, end: number): { bytes: Uint8Array; count: number } | undefined {
  const mine = (records ?? []).filter((r) => { const o = new DataView(r.buffer, r.byteOffset, 4).getUint32(0, true); return o >= start && o < end; });
  if (!mine.length) return undefined;
  const size = mine[0]!.length;
  const bytes = new Uint8Array(size * mine.length);
  mine.forEach((r, i) => {
    bytes.set(r, i * size);
    const d = new DataView(bytes.buffer, i * size, 4);
    d.setUint32(0, (d.getUint32(0, true) - start) / 8, true);
  });
  return { bytes, count: mine.length };
}

function programsOf(elf: ElfFile, sec: ElfSection, ext: ReturnType<typeof parseBtfExt> | undefined, mapsSection: number | undefined): ProgramSpec[] {
  const kind = programKind(sec.name);
  if (!kind) throw new SpecError(`section ${sec.name}: not a program type gauze loads (tc, tcx/ingress, tcx/egress, tp_btf/<tp>, raw_tracepoint/<tp>, socket)`);
  if (sec.size % 8 !== 0) throw new ElfError(`section ${sec.name}: ${sec.size} bytes is not a whole number of instructions`, sec.offset);
  const funcs = elf.symbolsIn(sec.index).filter((s) => s.type === STT.FUNC);
  if (!funcs.length) throw new SpecError(`section ${sec.name}: no function symbol names its program`);
  const code = elf.data(sec);
  const rels = elf.relocations(sec.index);
  return funcs.map((f) => {
    const start = f.value, end = f.value + f.size;
    if (start % 8 || f.size % 8 || f.size === 0 || end > sec.size) throw new ElfError(`function ${f.name}: [${start}, ${end}) is not whole instructions inside ${sec.name} (${sec.size} bytes)`, sec.offset + Math.min(start, sec.size));
    const insns = code.slice(start, end);
    const v = new DataView(insns.buffer);
    for (let i = 0; i < insns.length / 8; i++) {
      if (insns[i * 8] === CALL && ((insns[i * 8 + 1]! >> 4) & 0xf) === BPF_PSEUDO_CALL) {
        throw new SpecError(`program ${f.name}: calls a BPF function at instruction ${i}; gauze loads single-function programs (mark helpers __always_inline)`);
      }
    }
    const mapRelocs: ProgramSpec["mapRelocs"] = [];
    for (const r of rels) {
      if (r.offset < start || r.offset >= end) continue;
      const sym = elf.symbols[r.symbol]!;
      const at = r.offset - start;
      if (r.type === R_BPF.R64_32) throw new SpecError(`program ${f.name}: a call relocation to ${sym.name || "a function"} (BPF-to-BPF calls are not supported)`);
      if (r.type !== R_BPF.R64_64) throw new SpecError(`program ${f.name}: relocation type ${r.type} at byte ${at}`);
      if (at % 8 || at + 16 > insns.length || insns[at] !== LD_IMM64) throw new ElfError(`program ${f.name}: relocation at byte ${at} is not on an ld_imm64 instruction`, sec.offset + r.offset);
      if (mapsSection === undefined || sym.section !== mapsSection) {
        const where = elf.sections[sym.section]?.name ?? `section ${sym.section}`;
        throw new SpecError(`program ${f.name}: refers to ${sym.name || where} in ${where}; gauze supports map references only (no global variables: keep settings in a map)`);
      }
      if (v.getInt32(at + 4, true) !== 0) throw new SpecError(`program ${f.name}: map reference to ${sym.name} with an offset`);
      mapRelocs.push({ insn: at / 8, map: sym.name });
    }
    const coreRelos = (ext?.coreRelos.get(sec.name) ?? []).filter((c) => c.insnOff >= start && c.insnOff < end).map((c) => ({ ...c, insn: (c.insnOff - start) / 8 }));
    const spec: ProgramSpec = { name: f.name, section: sec.name, ...kind, insns, mapRelocs, coreRelos };
    const fi = rebase(ext?.funcInfo.get(sec.name)?.records, start, end);
    const li = rebase(ext?.lineInfo.get(sec.name)?.records, start, end);
    if (fi) spec.funcInfo = fi;
    if (li) spec.lineInfo = li;
    return spec;
  });
}

/** The whole object as a spec. ElfError and BtfError for a damaged file; SpecError for what gauze does not support. */
export function objectSpec(bytes: Uint8Array): ObjectSpec {
  const elf = parseElf(bytes);
  const btfSec = elf.section(".BTF");
  const btf = btfSec ? Btf.parse(elf.data(btfSec), ".BTF") : undefined;
  const extSec = elf.section(".BTF.ext");
  const ext = btf && extSec ? parseBtfExt(elf.data(extSec), btf) : undefined;
  const mapsSec = elf.section(".maps");
  if (mapsSec && !btf) throw new SpecError(".maps without .BTF: BTF-defined maps need the object's BTF (compile with -g)");
  const maps = btf ? mapSpecs(btf, mapsSec?.size) : [];
  // Every map symbol must be one of the BTF-defined maps.
  if (mapsSec) {
    for (const s of elf.symbolsIn(mapsSec.index)) {
      if (s.type === STT.SECTION || !s.name) continue;
      if (!maps.some((m) => m.name === s.name)) throw new SpecError(`map ${s.name} in .maps has no BTF definition`);
    }
  }
  const programs: ProgramSpec[] = [];
  for (const s of elf.sections) {
    if (!(s.flags & SHF_EXECINSTR) || s.size === 0) continue;
    if (s.name === ".text") throw new SpecError(".text holds code: functions that were not inlined (gauze loads single-function programs: mark them __always_inline)");
    programs.push(...programsOf(elf, s, ext, mapsSec?.index));
  }
  const spec: ObjectSpec = { maps, programs, license: license(elf) };
  if (btf) {
    spec.btf = btf;
    const sizeOf = (name: string) => elf.section(name)?.size;
    const symbolOffset = (section: string, name: string) => {
      const s = elf.section(section);
      return s ? elf.symbolsIn(s.index).find((x) => x.name === name)?.value : undefined;
    };
    spec.btfForKernel = fixupForKernel(btf, sizeOf, symbolOffset);
  }
  return spec;
}
