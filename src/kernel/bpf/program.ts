// A loaded program: PROG_LOAD with the verifier's log surfaced whole when it refuses (the first
// try carries no log, which is cheapest; a refusal is retried with log level 1 and a buffer that
// grows to what the kernel says it needed, up to 16 MiB), BPF_PROG_TEST_RUN, pins and info.
// Unreadable verifier errors are the most common complaint about eBPF datapaths: this error
// carries the kernel's text as it is, with the program's name and type.
import { BpfError, type ProgLoad, addr, type TestRun, type TestRunResult, closeFd, fdById, infoName, objGet, objInfo, objPin, progLoadRaw, progTestRun } from "./sys.ts";
import { INFO, progTypeName } from "./uapi.ts";

const ENOSPC = 28;
const LOG_START = 1 << 16;
export const LOG_MAX = 16 << 20;

export class VerifierError extends BpfError {
  constructor(object: string, errno: number, readonly log: string, readonly truncated: boolean) {
    super("PROG_LOAD", object, errno, log ? `the verifier says${truncated ? " (its log cut at 16 MiB)" : ""}:\n${log}` : "no verifier log");
    this.name = "VerifierError";
  }
}

export interface ProgramInfo {
  id: number;
  type: number;
  name: string;
  /** The kernel's tag (hash of the instructions), as bpftool prints it. */
  tag: string;
  btfId: number;
  mapIds: number[];
  verifiedInsns: number;
}

const decoder = new TextDecoder();

function logText(log: Uint8Array): string {
  const end = log.indexOf(0);
  return decoder.decode(log.subarray(0, end < 0 ? log.length : end)).trimEnd();
}

export class BpfProgram {
  private closed = false;

  constructor(readonly fd: number, readonly name: string, readonly type: number, readonly expectedAttachType = 0, readonly attachTo?: string) {}

  /** Loads the program; a VerifierError with the whole log when the kernel refuses it. */
  static load(o: ProgLoad & { attachTo?: string }): BpfProgram {
    const what = `program ${o.name} (${progTypeName(o.type)})`;
    const first = o.log ? progLoadRaw(o) : progLoadRaw({ ...o, log: undefined, logLevel: 0 });
    if (first.fd >= 0) return new BpfProgram(first.fd, o.name, o.type, o.expectedAttachType ?? 0, o.attachTo);
    const errno = -first.fd;
    let size = LOG_START;
    for (;;) {
      const log = new Uint8Array(size);
      const r = progLoadRaw({ ...o, log, logLevel: o.logLevel || 1 });
      // Refused without a log, taken with one (a transient failure): take it.
      if (r.fd >= 0) return new BpfProgram(r.fd, o.name, o.type, o.expectedAttachType ?? 0, o.attachTo);
      const wanted = r.logTrueSize;
      const cut = -r.fd === ENOSPC || wanted > size;
      if (!cut || size >= LOG_MAX) throw new VerifierError(what, errno === ENOSPC ? -r.fd : errno, logText(log), cut);
      size = Math.min(LOG_MAX, Math.max(size * 4, wanted + 1));
    }
  }

  /** A program pinned at `path`, or undefined. */
  static fromPin(path: string, name = path.split("/").pop() ?? path): BpfProgram | undefined {
    const fd = objGet(path);
    if (fd === undefined) return undefined;
    const p = new BpfProgram(fd, name, 0);
    const info = p.info();
    return new BpfProgram(fd, info.name || name, info.type);
  }

  /** A loaded program by its kernel id (what PROG_QUERY lists), or undefined when it is gone. */
  static fromId(id: number): BpfProgram | undefined {
    const fd = fdById("PROG", id);
    if (fd === undefined) return undefined;
    const p = new BpfProgram(fd, `program ${id}`, 0);
    const info = p.info();
    return new BpfProgram(fd, info.name || `program ${id}`, info.type);
  }

  private get what(): string {
    return `program ${this.name}`;
  }

  /** One BPF_PROG_TEST_RUN: the program on `data` (`repeat` times; duration is the kernel's average). */
  testRun(o: TestRun): TestRunResult {
    return progTestRun(this.fd, o, this.what);
  }

  pin(path: string): void {
    objPin(this.fd, path);
  }

  info(): ProgramInfo {
    const F = INFO.bpf_prog_info;
    const v = objInfo(this.fd, "bpf_prog_info", this.what);
    const tag = Array.from(new Uint8Array(v.buffer, F.tag[0], 8), (b) => b.toString(16).padStart(2, "0")).join("");
    const nMaps = v.getUint32(F.nr_map_ids[0], true);
    let mapIds: number[] = [];
    if (nMaps) {
      const ids = new Uint8Array(4 * nMaps);
      objInfo(this.fd, "bpf_prog_info", this.what, (iv) => {
        iv.setUint32(F.nr_map_ids[0], nMaps, true);
        iv.setBigUint64(F.map_ids[0], BigInt(addr(ids)), true);
      });
      mapIds = Array.from({ length: nMaps }, (_, i) => new DataView(ids.buffer).getUint32(4 * i, true));
    }
    return {
      id: v.getUint32(F.id[0], true), type: v.getUint32(F.type[0], true), name: infoName(v, F.name), tag,
      btfId: v.getUint32(F.btf_id[0], true), mapIds, verifiedInsns: v.getUint32(F.verified_insns[0], true),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}
