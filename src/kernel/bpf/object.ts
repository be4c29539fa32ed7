// An object file to kernel objects: the spec (spec.ts, no kernel) -> the object's BTF loaded
// (so maps and programs carry their types; a kernel that refuses it gets everything without,
// and the handle says so) -> maps created, or adopted from their pins when they match what the
// object wants (and replaced when they do not) -> each program's map references and CO-RE
// accesses filled in for this kernel -> programs loaded. A failure part way closes and unpins
// what this call made. close() releases every fd; pins stay until removed (pin.ts).
import { join } from "node:path";
import { type Btf, KIND, kernelBtf, loadBtf } from "./btf.ts";
import { applyCoreRelos } from "./core.ts";
import { BpfMap } from "./map.ts";
import { makePinDir, unpin } from "./pin.ts";
import { BpfProgram, VerifierError } from "./program.ts";
import { type MapSpec, type ObjectSpec, type ProgramSpec, SpecError, objectSpec } from "./spec.ts";
import { BpfError, closeFd } from "./sys.ts";
import { PROG_TYPE, PSEUDO, mapTypeName } from "./uapi.ts";

export interface LoadOptions {
  /** Where maps marked LIBBPF_PIN_BY_NAME are pinned and adopted from (<pinDir>/<map>); none: not pinned. */
  pinDir?: string;
  /** Load only these programs (default: all). */
  programs?: readonly string[];
  /** max_entries to use instead of the object's, by map name (a bigger ring, a smaller table in tests). */
  maxEntries?: Readonly<Record<string, number>>;
  /** The kernel's BTF, for CO-RE and tp_btf (default: /sys/kernel/btf/vmlinux, read when first needed). */
  kernelBtf?: Btf;
  /** Do not give the kernel the object's BTF. */
  noBtf?: boolean;
}

export class BpfObject {
  private closed = false;

  constructor(
    readonly spec: ObjectSpec,
    readonly maps: ReadonlyMap<string, BpfMap>,
    readonly programs: ReadonlyMap<string, BpfProgram>,
    /** Maps adopted from their pins (the rest were created). */
    readonly adopted: readonly string[],
    /** What was loaded differently from the object's wish, in words (BTF refused, a pin replaced). */
    readonly warnings: readonly string[],
    private readonly btfFd: number,
  ) {}

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m) throw new SpecError(`the object has no map ${name} (it has ${[...this.maps.keys()].join(", ")})`);
    return m;
  }

  program(name: string): BpfProgram {
    const p = this.programs.get(name);
    if (!p) throw new SpecError(`no program ${name} was loaded (loaded: ${[...this.programs.keys()].join(", ")})`);
    return p;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.programs.values()) p.close();
    for (const m of this.maps.values()) m.close();
    closeFd(this.btfFd);
  }
}

function sameShape(m: BpfMap, want: MapSpec, maxEntries: number): string | undefined {
  const s = m.shape;
  const diff: string[] = [];
  if (s.type !== want.type) diff.push(`type ${mapTypeName(s.type)}, wanted ${mapTypeName(want.type)}`);
  if (s.keySize !== want.keySize) diff.push(`key ${s.keySize} bytes, wanted ${want.keySize}`);
  if (s.valueSize !== want.valueSize) diff.push(`value ${s.valueSize} bytes, wanted ${want.valueSize}`);
  if (s.maxEntries !== maxEntries) diff.push(`${s.maxEntries} entries, wanted ${maxEntries}`);
  if (s.flags !== want.flags) diff.push(`flags 0x${s.flags.toString(16)}, wanted 0x${want.flags.toString(16)}`);
  return diff.length ? diff.join(", ") : undefined;
}

/** The instructions of a program, ready for this kernel: map fds in, CO-RE offsets resolved. */
export function relocate(p: ProgramSpec, spec: ObjectSpec, maps: ReadonlyMap<string, BpfMap>, kernel: () => Btf): Uint8Array {
  const insns = p.insns.slice();
  const v = new DataView(insns.buffer);
  for (const r of p.mapRelocs) {
    const m = maps.get(r.map);
    if (!m) throw new SpecError(`program ${p.name} refers to map ${r.map}, which was not created`);
    const at = r.insn * 8;
    v.setUint8(at + 1, (PSEUDO.PSEUDO_MAP_FD << 4) | (insns[at + 1]! & 0x0f));
    v.setInt32(at + 4, m.fd, true);
    v.setInt32(at + 12, 0, true);
  }
  if (p.coreRelos.length) {
    if (!spec.btf) throw new SpecError(`program ${p.name} has CO-RE relocations but the object has no BTF`);
    applyCoreRelos(insns, p.coreRelos, spec.btf, kernel(), p.name);
  }
  return insns;
}

/** tp_btf/<tp>: the kernel's btf_trace_<tp> typedef is what the program attaches to. */
export function tracepointBtfId(kernel: Btf, tp: string): number {
  const ids = kernel.find(`btf_trace_${tp}`, KIND.TYPEDEF);
  if (!ids.length) throw new SpecError(`tracepoint ${tp}: the kernel's BTF has no btf_trace_${tp} (no such tracepoint, or BTF without it)`);
  return ids[0]!;
}

export function loadObject(input: Uint8Array | ObjectSpec, o: LoadOptions = {}): BpfObject {
  const spec = input instanceof Uint8Array ? objectSpec(input) : input;
  const warnings: string[] = [];
  const adopted: string[] = [];
  const maps = new Map<string, BpfMap>();
  const programs = new Map<string, BpfProgram>();
  const pinnedNow: string[] = [];
  let kb = o.kernelBtf;
  const kernel = () => (kb ??= kernelBtf());
  let btfFd = -1;
  try {
    if (spec.btfForKernel && !o.noBtf) {
      try {
        btfFd = loadBtf(spec.btfForKernel, "the object's BTF");
      } catch (e) {
        if (!(e instanceof BpfError)) throw e;
        warnings.push(`the kernel refused the object's BTF (${e.message}); maps and programs were loaded without type information`);
      }
    }
    for (const m of spec.maps) {
      const maxEntries = o.maxEntries?.[m.name] ?? m.maxEntries;
      const pinPath = m.pinByName && o.pinDir ? join(o.pinDir, m.name) : undefined;
      if (pinPath) {
        const old = BpfMap.fromPin(pinPath, m.name);
        if (old) {
          const diff = sameShape(old, m, maxEntries);
          if (!diff) {
            maps.set(m.name, old);
            adopted.push(m.name);
            continue;
          }
          old.close();
          unpin(pinPath);
          warnings.push(`map ${m.name}: the pinned one at ${pinPath} did not match (${diff}); replaced with a new one`);
        }
      }
      const base = { name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries, flags: m.flags };
      let map: BpfMap;
      if (btfFd >= 0 && (m.btfKeyTypeId || m.btfValueTypeId)) {
        try {
          map = BpfMap.create({ ...base, btfFd, btfKeyTypeId: m.btfKeyTypeId, btfValueTypeId: m.btfValueTypeId });
        } catch (e) {
          if (!(e instanceof BpfError) || e.errno !== 22) throw e;
          map = BpfMap.create(base);
          warnings.push(`map ${m.name}: created without its BTF types (the kernel refused them: ${e.message})`);
        }
      } else {
        map = BpfMap.create(base);
      }
      maps.set(m.name, map);
      if (pinPath) {
        makePinDir(o.pinDir!);
        map.pin(pinPath);
        pinnedNow.push(pinPath);
      }
    }
    for (const p of spec.programs) {
      if (o.programs && !o.programs.includes(p.name)) continue;
      const insns = relocate(p, spec, maps, kernel);
      const load = {
        name: p.name, type: p.type, insns, license: spec.license, expectedAttachType: p.expectedAttachType,
        ...(p.type === PROG_TYPE.TRACING && p.attachTo ? { attachBtfId: tracepointBtfId(kernel(), p.attachTo) } : {}),
        ...(p.attachTo ? { attachTo: p.attachTo } : {}),
      };
      const withBtf = btfFd >= 0 ? {
        btfFd,
        ...(p.funcInfo ? { funcInfo: p.funcInfo.bytes, funcInfoCount: p.funcInfo.count } : {}),
        ...(p.lineInfo ? { lineInfo: p.lineInfo.bytes, lineInfoCount: p.lineInfo.count } : {}),
      } : {};
      let prog: BpfProgram;
      try {
        prog = BpfProgram.load({ ...load, ...withBtf });
      } catch (e) {
        // Refused for its BTF records (an older kernel's rules), not its code: load it without them.
        if (!(e instanceof VerifierError) || btfFd < 0 || !/func_info|line_info|\bBTF\b|btf/i.test(e.log.split("\n").slice(-5).join("\n"))) throw e;
        prog = BpfProgram.load(load);
        warnings.push(`program ${p.name}: loaded without its BTF function and line info (the kernel refused them: ${e.log.split("\n").filter(Boolean).pop()})`);
      }
      programs.set(p.name, prog);
    }
    return new BpfObject(spec, maps, programs, adopted, warnings, btfFd);
  } catch (e) {
    for (const p of programs.values()) p.close();
    for (const m of maps.values()) m.close();
    for (const path of pinnedNow) unpin(path);
    closeFd(btfFd);
    throw e;
  }
}
