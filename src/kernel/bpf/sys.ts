// The bpf(2) syscall, through libc's syscall(): one attr buffer per call, built with a DataView at
// the offsets uapi.ts holds (checked against the kernel's own union bpf_attr), and one function
// per command gauze uses. A refusal is a BpfError naming the command, the object and the errno.
// Buffers whose addresses go into an attr are held by the caller's frame until the call returns.
import { type Libc, cString, describeErrno, errnoName, libc } from "../libc.ts";
import { ATTR, CMD, type CmdName, type Field, INFO, OBJ_NAME_LEN, SYS_BPF } from "./uapi.ts";

const EINTR = 4, EAGAIN = 11, ENOENT = 2;
/** The kernel's own ENOTSUPP (not in libc's table): "this kernel does not do that". */
const ENOTSUPP = 524;

export class BpfError extends Error {
  constructor(readonly cmd: CmdName | string, readonly object: string, readonly errno: number, detail?: string) {
    super(`BPF_${cmd} ${object}: ${describeBpfErrno(errno)}${detail ? `: ${detail}` : ""}`);
    this.name = "BpfError";
  }
  get code(): string {
    return this.errno === ENOTSUPP ? "ENOTSUPP" : errnoName(this.errno);
  }
}

export function describeBpfErrno(n: number): string {
  return n === ENOTSUPP ? "operation not supported by this kernel (ENOTSUPP)" : describeErrno(n);
}

let c: Libc | undefined;

/** A zeroed attr of the command's size and a view of it. */
export function attr(size: number): { buf: Uint8Array; v: DataView } {
  const buf = new Uint8Array(size);
  return { buf, v: new DataView(buf.buffer) };
}

export function put32(v: DataView, f: Field, x: number): void {
  v.setUint32(f[0], x >>> 0, true);
}

export function put64(v: DataView, f: Field, x: number | bigint): void {
  v.setBigUint64(f[0], typeof x === "bigint" ? x : BigInt(x), true);
}

/** A buffer's address for an attr's __u64 pointer field (0 for none). */
export function addr(b: Uint8Array | undefined): number {
  return b && b.length ? (c ??= libc()).addressOf(b) : 0;
}

/** The raw call: the result (fd, 0) or -errno. EINTR and EAGAIN are retried a few times, as libbpf does for PROG_LOAD. */
export function bpfRaw(cmd: number, a: Uint8Array): number {
  const l = (c ??= libc());
  for (let i = 0; ; i++) {
    const r = l.syscall(SYS_BPF, cmd, a, a.length);
    if (r >= 0) return r;
    const e = l.errno();
    if ((e === EINTR || e === EAGAIN) && i < 5) continue;
    return -e;
  }
}

/** The call, or a BpfError naming what it was for. */
export function bpf(cmd: CmdName, a: Uint8Array, object: string): number {
  const r = bpfRaw(CMD[cmd], a);
  if (r < 0) throw new BpfError(cmd, object, -r);
  return r;
}

export function closeFd(fd: number): void {
  if (fd >= 0) (c ??= libc()).close(fd);
}

const encoder = new TextEncoder();
/** A map or program name as the kernel takes it: up to 15 bytes of [A-Za-z0-9_.], NUL-padded. */
function putName(buf: Uint8Array, f: Field, name: string): void {
  const clean = name.replace(/[^A-Za-z0-9_.]/g, "_").slice(0, OBJ_NAME_LEN - 1);
  buf.set(encoder.encode(clean), f[0]);
}

export interface MapCreate {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  btfFd?: number;
  btfKeyTypeId?: number;
  btfValueTypeId?: number;
}

export function mapCreate(o: MapCreate): number {
  const A = ATTR.MAP_CREATE;
  const { buf, v } = attr(A.$size);
  put32(v, A.map_type, o.type);
  put32(v, A.key_size, o.keySize);
  put32(v, A.value_size, o.valueSize);
  put32(v, A.max_entries, o.maxEntries);
  put32(v, A.map_flags, o.flags ?? 0);
  putName(buf, A.map_name, o.name);
  if (o.btfFd !== undefined && o.btfFd >= 0) {
    put32(v, A.btf_fd, o.btfFd);
    put32(v, A.btf_key_type_id, o.btfKeyTypeId ?? 0);
    put32(v, A.btf_value_type_id, o.btfValueTypeId ?? 0);
  }
  return bpf("MAP_CREATE", buf, `map ${o.name}`);
}

function elemAttr(fd: number, key: Uint8Array | undefined, value: Uint8Array | undefined, flags: number): Uint8Array {
  const A = ATTR.MAP_ELEM;
  const { buf, v } = attr(A.$size);
  put32(v, A.map_fd, fd);
  put64(v, A.key, addr(key));
  put64(v, A.value, addr(value));
  put64(v, A.flags, flags);
  return buf;
}

/** Fills `value`; false when the key is not there. */
export function mapLookup(fd: number, key: Uint8Array, value: Uint8Array, what: string): boolean {
  const r = bpfRaw(CMD.MAP_LOOKUP_ELEM, elemAttr(fd, key, value, 0));
  if (r === -ENOENT) return false;
  if (r < 0) throw new BpfError("MAP_LOOKUP_ELEM", what, -r);
  return true;
}

export function mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags: number, what: string): void {
  bpf("MAP_UPDATE_ELEM", elemAttr(fd, key, value, flags), what);
}

/** False when the key was not there. */
export function mapDelete(fd: number, key: Uint8Array, what: string): boolean {
  const r = bpfRaw(CMD.MAP_DELETE_ELEM, elemAttr(fd, key, undefined, 0));
  if (r === -ENOENT) return false;
  if (r < 0) throw new BpfError("MAP_DELETE_ELEM", what, -r);
  return true;
}

/** The key after `key` (the first with undefined) into `next`; false at the end. */
export function mapNextKey(fd: number, key: Uint8Array | undefined, next: Uint8Array, what: string): boolean {
  const r = bpfRaw(CMD.MAP_GET_NEXT_KEY, elemAttr(fd, key, next, 0));
  if (r === -ENOENT) return false;
  if (r < 0) throw new BpfError("MAP_GET_NEXT_KEY", what, -r);
  return true;
}

export interface ProgLoad {
  name: string;
  type: number;
  insns: Uint8Array;
  license: string;
  expectedAttachType?: number;
  attachBtfId?: number;
  attachBtfObjFd?: number;
  btfFd?: number;
  funcInfo?: Uint8Array;
  funcInfoCount?: number;
  lineInfo?: Uint8Array;
  lineInfoCount?: number;
  logLevel?: number;
  log?: Uint8Array;
}

/** PROG_LOAD: the fd, or -errno with the log's true size (what the kernel wanted to write, 6.4 on). */
export function progLoadRaw(o: ProgLoad): { fd: number; logTrueSize: number } {
  const A = ATTR.PROG_LOAD;
  const { buf, v } = attr(A.$size);
  const license = cString(o.license);
  put32(v, A.prog_type, o.type);
  put32(v, A.insn_cnt, o.insns.length / 8);
  put64(v, A.insns, addr(o.insns));
  put64(v, A.license, addr(license));
  if (o.log && o.log.length) {
    put32(v, A.log_level, o.logLevel ?? 1);
    put32(v, A.log_size, o.log.length);
    put64(v, A.log_buf, addr(o.log));
  }
  putName(buf, A.prog_name, o.name);
  put32(v, A.expected_attach_type, o.expectedAttachType ?? 0);
  if (o.btfFd !== undefined && o.btfFd >= 0) {
    put32(v, A.prog_btf_fd, o.btfFd);
    if (o.funcInfo && o.funcInfoCount) {
      put32(v, A.func_info_rec_size, o.funcInfo.length / o.funcInfoCount);
      put64(v, A.func_info, addr(o.funcInfo));
      put32(v, A.func_info_cnt, o.funcInfoCount);
    }
    if (o.lineInfo && o.lineInfoCount) {
      put32(v, A.line_info_rec_size, o.lineInfo.length / o.lineInfoCount);
      put64(v, A.line_info, addr(o.lineInfo));
      put32(v, A.line_info_cnt, o.lineInfoCount);
    }
  }
  put32(v, A.attach_btf_id, o.attachBtfId ?? 0);
  put32(v, A.attach_btf_obj_fd, o.attachBtfObjFd ?? 0);
  const fd = bpfRaw(CMD.PROG_LOAD, buf);
  return { fd, logTrueSize: v.getUint32(A.log_true_size[0], true) };
}

export function objPin(fd: number, path: string): void {
  const A = ATTR.OBJ;
  const { buf, v } = attr(A.$size);
  const p = cString(path);
  put64(v, A.pathname, addr(p));
  put32(v, A.bpf_fd, fd);
  bpf("OBJ_PIN", buf, `pin ${path}`);
}

/** The pinned object's fd, or undefined when nothing is pinned there. */
export function objGet(path: string): number | undefined {
  const A = ATTR.OBJ;
  const { buf, v } = attr(A.$size);
  const p = cString(path);
  put64(v, A.pathname, addr(p));
  const r = bpfRaw(CMD.OBJ_GET, buf);
  if (r === -ENOENT) return undefined;
  if (r < 0) throw new BpfError("OBJ_GET", path, -r);
  return r;
}

export interface TestRun {
  data: Uint8Array;
  repeat?: number;
  /** Room for the packet as the program left it (default: the input's size plus 256). */
  dataOutSize?: number;
  /** struct __sk_buff (or the type's context) to start from. */
  ctx?: Uint8Array;
}

export interface TestRunResult {
  retval: number;
  /** Average nanoseconds per run, as the kernel measured it. */
  durationNs: number;
  dataOut: Uint8Array;
}

export function progTestRun(fd: number, o: TestRun, what: string): TestRunResult {
  const A = ATTR.TEST_RUN;
  const { buf, v } = attr(A.$size);
  const out = new Uint8Array(o.dataOutSize ?? o.data.length + 256);
  put32(v, A.prog_fd, fd);
  put32(v, A.data_size_in, o.data.length);
  put32(v, A.data_size_out, out.length);
  put64(v, A.data_in, addr(o.data));
  put64(v, A.data_out, addr(out));
  put32(v, A.repeat, o.repeat ?? 1);
  if (o.ctx) {
    put32(v, A.ctx_size_in, o.ctx.length);
    put64(v, A.ctx_in, addr(o.ctx));
  }
  bpf("PROG_TEST_RUN", buf, what);
  const size = v.getUint32(A.data_size_out[0], true);
  return { retval: v.getInt32(A.retval[0], true), durationNs: v.getUint32(A.duration[0], true), dataOut: out.slice(0, Math.min(size, out.length)) };
}

/** OBJ_GET_INFO_BY_FD into a buffer of the info struct's size. */
export function objInfo(fd: number, kind: keyof typeof INFO, what: string, extra?: (info: DataView) => void): DataView {
  const info = new Uint8Array(INFO[kind].$size);
  const iv = new DataView(info.buffer);
  extra?.(iv);
  const A = ATTR.INFO;
  const { buf, v } = attr(A.$size);
  put32(v, A.bpf_fd, fd);
  put32(v, A.info_len, info.length);
  put64(v, A.info, addr(info));
  bpf("OBJ_GET_INFO_BY_FD", buf, what);
  return iv;
}

/** A NUL-terminated name field of an info struct. */
export function infoName(v: DataView, f: Field): string {
  const b = new Uint8Array(v.buffer, v.byteOffset + f[0], f[1]);
  const end = b.indexOf(0);
  return new TextDecoder().decode(b.subarray(0, end < 0 ? b.length : end));
}

export interface QueryResult {
  progIds: number[];
  linkIds: number[];
  revision: number;
}

/** PROG_QUERY on an interface's tcx hook: what is attached, in order, and the hook's revision. */
export function progQuery(ifindex: number, attachType: number, what: string, room = 64): QueryResult {
  for (;;) {
    const A = ATTR.QUERY;
    const { buf, v } = attr(A.$size);
    const progs = new Uint8Array(4 * room), links = new Uint8Array(4 * room);
    put32(v, A.target_ifindex, ifindex);
    put32(v, A.attach_type, attachType);
    put64(v, A.prog_ids, addr(progs));
    put64(v, A.link_ids, addr(links));
    put32(v, A.count, room);
    const r = bpfRaw(CMD.PROG_QUERY, buf);
    const count = v.getUint32(A.count[0], true);
    if (r === -28 /* ENOSPC */ && count > room) { room = count; continue; }
    if (r < 0) throw new BpfError("PROG_QUERY", what, -r);
    const pv = new DataView(progs.buffer), lv = new DataView(links.buffer);
    const ids = (d: DataView) => Array.from({ length: count }, (_, i) => d.getUint32(4 * i, true));
    return { progIds: ids(pv), linkIds: ids(lv), revision: Number(v.getBigUint64(A.revision[0], true)) };
  }
}

/** RAW_TRACEPOINT_OPEN: by name (raw_tracepoint programs), or with no name for tp_btf (the program knows its target). */
export function rawTracepointOpen(progFd: number, name: string | undefined, what: string): number {
  const A = ATTR.RAW_TRACEPOINT;
  const { buf, v } = attr(A.$size);
  const n = name === undefined ? undefined : cString(name);
  put64(v, A.name, addr(n));
  put32(v, A.prog_fd, progFd);
  return bpf("RAW_TRACEPOINT_OPEN", buf, what);
}

/** BTF_LOAD: the fd, or -errno (the log says why). */
export function btfLoadRaw(data: Uint8Array, log?: Uint8Array): number {
  const A = ATTR.BTF_LOAD;
  const { v, buf } = attr(A.$size);
  put64(v, A.btf, addr(data));
  put32(v, A.btf_size, data.length);
  if (log && log.length) {
    put64(v, A.btf_log_buf, addr(log));
    put32(v, A.btf_log_size, log.length);
    put32(v, A.btf_log_level, 1);
  }
  return bpfRaw(CMD.BTF_LOAD, buf);
}

export interface LinkCreate {
  progFd: number;
  /** An ifindex (tcx) or an fd. */
  target: number;
  attachType: number;
  flags?: number;
  expectedRevision?: number;
}

export function linkCreate(o: LinkCreate, what: string): number {
  const A = ATTR.LINK_CREATE;
  const { buf, v } = attr(A.$size);
  put32(v, A.prog_fd, o.progFd);
  put32(v, A.target_ifindex, o.target);
  put32(v, A.attach_type, o.attachType);
  put32(v, A.flags, o.flags ?? 0);
  if (o.expectedRevision) put64(v, A["tcx.expected_revision"], o.expectedRevision);
  return bpf("LINK_CREATE", buf, what);
}

/** Points a link at another program, atomically (no packet goes unobserved). */
export function linkUpdate(linkFd: number, newProgFd: number, what: string): void {
  const A = ATTR.LINK_UPDATE;
  const { buf, v } = attr(A.$size);
  put32(v, A.link_fd, linkFd);
  put32(v, A.new_prog_fd, newProgFd);
  bpf("LINK_UPDATE", buf, what);
}

/** Detaches a link's program from its hook even while fds or pins of the link remain. */
export function linkDetach(linkFd: number, what: string): void {
  const A = ATTR.LINK_DETACH;
  const { buf, v } = attr(A.$size);
  put32(v, A.link_fd, linkFd);
  bpf("LINK_DETACH", buf, what);
}

/** An fd for an object by its id (PROG_, MAP_, LINK_ or BTF_GET_FD_BY_ID); undefined when it is gone. */
export function fdById(kind: "PROG" | "MAP" | "LINK" | "BTF", id: number): number | undefined {
  const A = ATTR.GET_FD_BY_ID;
  const { buf, v } = attr(A.$size);
  put32(v, A.prog_id, id);
  const cmd = `${kind}_GET_FD_BY_ID` as const;
  const r = bpfRaw(CMD[cmd], buf);
  if (r === -ENOENT) return undefined;
  if (r < 0) throw new BpfError(cmd, `${kind.toLowerCase()} ${id}`, -r);
  return r;
}
