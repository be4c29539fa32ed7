// Attaching programs. tcx (6.6 on): BPF_LINK_CREATE on an interface's ingress or egress, the
// ifindex as seen in the network namespace the call is made in (callers run it inside the
// node's namespace with netns.ts's inNetns); the link holds the attachment for as long as an fd
// or a pin of it lives, and LINK_UPDATE swaps the program without a gap. Before 6.6: a clsact
// qdisc and a direct-action bpf filter through netlink (tc.ts), which lives until deleted.
// Tracepoints: BPF_RAW_TRACEPOINT_OPEN, by name for raw_tracepoint programs and without one for
// tp_btf (the program was loaded against the tracepoint's BTF type). Listing what is attached:
// PROG_QUERY for tcx, a filter dump for clsact.
import { NetlinkSocket } from "../netlink/index.ts";
import { inNetns } from "../netns.ts";
import { BpfProgram } from "./program.ts";
import { type QueryResult, closeFd, infoName, linkCreate, linkDetach, linkUpdate, objGet, objInfo, objPin, progQuery, rawTracepointOpen } from "./sys.ts";
import { type Direction, type TcFilter, addBpfFilter, addClsact, delBpfFilter, delClsact, listBpfFilters, runTc } from "./tc.ts";
import { ATTACH_TYPE, INFO, LINK_TYPE, PROG_TYPE, TCX_FLAG } from "./uapi.ts";

export type { Direction, TcFilter } from "./tc.ts";

export interface LinkInfo {
  id: number;
  type: number;
  progId: number;
  /** tcx links: the interface (in the namespace the link was made in) and the hook. */
  ifindex?: number;
  direction?: Direction;
}

export class BpfLink {
  private closed = false;

  constructor(readonly fd: number, readonly what: string) {}

  /** The link pinned at `path`, or undefined. */
  static fromPin(path: string): BpfLink | undefined {
    const fd = objGet(path);
    return fd === undefined ? undefined : new BpfLink(fd, `link ${path}`);
  }

  info(): LinkInfo {
    const F = INFO.bpf_link_info;
    const v = objInfo(this.fd, "bpf_link_info", this.what);
    const type = v.getUint32(F.type[0], true);
    const out: LinkInfo = { id: v.getUint32(F.id[0], true), type, progId: v.getUint32(F.prog_id[0], true) };
    if (type === LINK_TYPE.TCX) {
      out.ifindex = v.getUint32(F["tcx.ifindex"][0], true);
      out.direction = v.getUint32(F["tcx.attach_type"][0], true) === ATTACH_TYPE.TCX_EGRESS ? "egress" : "ingress";
    }
    return out;
  }

  pin(path: string): void {
    objPin(this.fd, path);
  }

  /** Runs another program on the same hook, atomically. */
  update(prog: BpfProgram): void {
    linkUpdate(this.fd, prog.fd, `${this.what}: to ${prog.name}`);
  }

  /** Takes the program off its hook now, even if other fds or pins of the link remain. */
  detach(): void {
    linkDetach(this.fd, this.what);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

const tcxType = (d: Direction) => (d === "ingress" ? ATTACH_TYPE.TCX_INGRESS : ATTACH_TYPE.TCX_EGRESS);

/** In the namespace at `netns` when given, else in the caller's. */
function within<T>(netns: string | undefined, fn: () => T): T {
  return netns ? inNetns(netns, fn) : fn();
}

/**
 * A tcx link: `prog` on the interface's hook, after what is there, or with `first` in front of
 * it (an observer must run before a program that ends the chain with a verdict or a redirect).
 */
export function attachTcx(prog: BpfProgram, ifindex: number, d: Direction, netns?: string, o: { first?: boolean } = {}): BpfLink {
  if (prog.type !== PROG_TYPE.SCHED_CLS) throw new TypeError(`program ${prog.name} is not a tc program`);
  const what = `tcx ${d} of interface ${ifindex}${netns ? ` in ${netns}` : ""}`;
  const flags = o.first ? TCX_FLAG.BEFORE : 0;
  const fd = within(netns, () => linkCreate({ progFd: prog.fd, target: ifindex, attachType: tcxType(d), flags }, `${what}: ${prog.name}`));
  return new BpfLink(fd, what);
}

/** What runs on an interface's tcx hook, in order (program and link ids) and the hook's revision. */
export function tcxAttached(ifindex: number, d: Direction, netns?: string): QueryResult {
  return within(netns, () => progQuery(ifindex, tcxType(d), `tcx ${d} of interface ${ifindex}`));
}

/** A tracepoint link: tp_btf programs attach to what they were loaded for, raw_tracepoint ones by name. */
export function attachTracepoint(prog: BpfProgram): BpfLink {
  if (prog.type === PROG_TYPE.TRACING) return new BpfLink(rawTracepointOpen(prog.fd, undefined, `tp_btf ${prog.attachTo ?? "?"}: ${prog.name}`), `tp_btf/${prog.attachTo}`);
  if (prog.type === PROG_TYPE.RAW_TRACEPOINT) {
    if (!prog.attachTo) throw new TypeError(`program ${prog.name}: which tracepoint? (load it from a raw_tracepoint/<name> section)`);
    return new BpfLink(rawTracepointOpen(prog.fd, prog.attachTo, `raw_tracepoint ${prog.attachTo}: ${prog.name}`), `raw_tracepoint/${prog.attachTo}`);
  }
  throw new TypeError(`program ${prog.name} is not a tracepoint program`);
}

/** A clsact filter gauze made: what identifies it to netlink. */
export interface ClsactAttachment {
  ifindex: number;
  direction: Direction;
  priority: number;
  handle: number;
  name: string;
  netns?: string;
}

/** `prog` as a direct-action filter on the interface's clsact hook (the qdisc made when missing). */
export function attachClsact(prog: BpfProgram, ifindex: number, d: Direction, o: { name: string; priority?: number; handle?: number; netns?: string }): ClsactAttachment {
  if (prog.type !== PROG_TYPE.SCHED_CLS) throw new TypeError(`program ${prog.name} is not a tc program`);
  const priority = o.priority ?? 1, handle = o.handle ?? 1;
  const sock = NetlinkSocket.open(o.netns ? { netns: o.netns } : {});
  try {
    runTc(sock, [addClsact(ifindex)], (e) => e.exists);
    runTc(sock, [addBpfFilter(ifindex, d, prog.fd, o.name, priority, handle)]);
  } finally {
    sock.close();
  }
  return { ifindex, direction: d, priority, handle, name: o.name, ...(o.netns ? { netns: o.netns } : {}) };
}

/** Removes a filter; quiet when it (or the interface) is gone. */
export function detachClsact(a: ClsactAttachment): void {
  const sock = NetlinkSocket.open(a.netns ? { netns: a.netns } : {});
  try {
    runTc(sock, [delBpfFilter(a.ifindex, a.direction, a.priority, a.handle)], (e) => e.notFound || e.errno === 22);
  } finally {
    sock.close();
  }
}

/** The bpf filters on an interface's clsact hook. */
export function clsactAttached(ifindex: number, d: Direction, netns?: string): TcFilter[] {
  const sock = NetlinkSocket.open(netns ? { netns } : {});
  try {
    return listBpfFilters(sock, ifindex, d);
  } finally {
    sock.close();
  }
}

/** Deletes the clsact qdisc when no filter is left on either hook; true when it did. */
export function removeClsactIfEmpty(ifindex: number, netns?: string): boolean {
  if (clsactAttached(ifindex, "ingress", netns).length || clsactAttached(ifindex, "egress", netns).length) return false;
  const sock = NetlinkSocket.open(netns ? { netns } : {});
  try {
    const [e] = sock.exchange([delClsact(ifindex)]);
    return !e;
  } finally {
    sock.close();
  }
}

/**
 * The names of the programs on an interface's ingress, tcx and clsact both (a doctor's look for
 * programs left behind); a kernel without tcx lists only clsact's.
 */
export function ingressProgramNames(ifindex: number, netns?: string): string[] {
  const names: string[] = [];
  let ids: number[] = [];
  try {
    ids = tcxAttached(ifindex, "ingress", netns).progIds;
  } catch { /* no tcx on this kernel */ }
  for (const id of ids) {
    const p = BpfProgram.fromId(id);
    if (!p) continue;
    names.push(p.name);
    p.close();
  }
  for (const f of clsactAttached(ifindex, "ingress", netns)) names.push(f.name);
  return names;
}
