// A route-netlink socket over libc: requests with sequence numbers and ACKs (several in one
// send; the kernel answers each), dumps (multipart, until NLMSG_DONE), and multicast events.
// A socket belongs to the network namespace it was opened in, so the plugin opens one in the
// pod's namespace and one in the node's, from one process. Every receive has a deadline.
import { EAGAIN, EINTR, ENOBUFS, ENODEV, ENOENT, ESRCH, type Libc, describeErrno, errnoName, libc } from "../libc.ts";
import { inNetns } from "../netns.ts";
import { AF_NETLINK, NETLINK, NLM_F, NLMSG, NLMSGERR_ATTR, NLMSG_HDRLEN, SOCK_CLOEXEC, SOCK_RAW, SOL_NETLINK, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, SO_RCVTIMEO } from "./uapi.ts";
import { Attrs, type NlMessage, NlWriter, NetlinkParseError, messages } from "./wire.ts";

const MSG_TRUNC = 0x20;
const DEFAULT_TIMEOUT_MS = 5000;
/** Requests per send (under the socket's send buffer); their error answers must fit the receive buffer. */
const CHUNK_MESSAGES = 512;
const CHUNK_BYTES = 64 * 1024;
const EADDRNOTAVAIL = 99;

/** A request the kernel refused (or did not answer in time): names the operation and the object. */
export class NetlinkError extends Error {
  constructor(readonly what: string, readonly errno: number, readonly extack?: string) {
    super(`${what}: ${errno === 0 ? "no answer" : describeErrno(errno)}${extack ? ` (kernel: ${extack})` : ""}`);
    this.name = "NetlinkError";
  }
  get code(): string {
    return errnoName(this.errno);
  }
  /** The object is not there (no such device, route, neighbour or address). */
  get notFound(): boolean {
    return this.errno === ENODEV || this.errno === ENOENT || this.errno === ESRCH || this.errno === EADDRNOTAVAIL;
  }
  get exists(): boolean {
    return this.errno === 17;
  }
}

/** One request: what it does (for messages), its type and flags, and how to write its body. */
export interface Request {
  what: string;
  type: number;
  flags: number;
  body(w: NlWriter): void;
}

/** What the kernel said to each request: undefined for success. */
export type Outcome = NetlinkError | undefined;

/** A reply message to one request of a batch (GET requests answer with the object). */
export type ReplyHandler = (index: number, buf: Uint8Array, view: DataView, m: NlMessage) => void;

export interface SocketOptions {
  /** Open the socket in this network namespace (a path); default: the caller's. */
  netns?: string;
  /** Multicast groups to join (RTNLGRP numbers), for event sockets. */
  groups?: readonly number[];
  /** How long a receive may wait for the kernel (default 5 s). */
  timeoutMs?: number;
  /** Receive buffer in bytes (events at scale need more than the default). */
  rcvbuf?: number;
}

let nextSeq = (Date.now() & 0xffff) << 12;

export class NetlinkSocket {
  private readonly c: Libc;
  private readonly writer = new NlWriter(8192);
  private rbuf = new Uint8Array(65536);
  private rview = new DataView(this.rbuf.buffer);
  private closed = false;

  private constructor(readonly fd: number, readonly timeoutMs: number, readonly where: string) {
    this.c = libc();
  }

  static open(o: SocketOptions = {}): NetlinkSocket {
    const c = libc();
    const make = () => c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK.ROUTE);
    const fd = o.netns ? inNetns(o.netns, make) : make();
    const where = o.netns ? ` in ${o.netns}` : "";
    if (fd < 0) throw new NetlinkError(`open a route netlink socket${where}`, c.errno());
    const s = new NetlinkSocket(fd, o.timeoutMs ?? DEFAULT_TIMEOUT_MS, where);
    try {
      s.setup(o);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  private setInt(level: number, name: number, value: number): boolean {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, value, true);
    return this.c.setsockopt(this.fd, level, name, b, 4) === 0;
  }

  private setup(o: SocketOptions): void {
    const addr = new Uint8Array(12);
    const v = new DataView(addr.buffer);
    v.setUint16(0, AF_NETLINK, true);
    let legacyGroups = 0;
    for (const g of o.groups ?? []) if (g <= 32) legacyGroups |= 1 << (g - 1);
    v.setUint32(8, legacyGroups >>> 0, true);
    if (this.c.bind(this.fd, addr, 12) !== 0) throw new NetlinkError(`bind a route netlink socket${this.where}`, this.c.errno());
    // The kernel's own words on a refused request, and ACKs without a copy of the request.
    this.setInt(SOL_NETLINK, NETLINK.EXT_ACK, 1);
    this.setInt(SOL_NETLINK, NETLINK.CAP_ACK, 1);
    // Dump requests are checked strictly and filtered in the kernel (Linux 4.20+; harmless before).
    this.setInt(SOL_NETLINK, NETLINK.GET_STRICT_CHK, 1);
    if (o.rcvbuf && !this.setInt(SOL_SOCKET, SO_RCVBUFFORCE, o.rcvbuf)) this.setInt(SOL_SOCKET, SO_RCVBUF, o.rcvbuf);
    this.setTimeout(this.timeoutMs);
  }

  private setTimeout(ms: number): void {
    const tv = new Uint8Array(16);
    const v = new DataView(tv.buffer);
    v.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
    v.setBigInt64(8, BigInt((ms % 1000) * 1000), true);
    this.c.setsockopt(this.fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.c.close(this.fd);
  }

  private send(buf: Uint8Array, len: number, what: string): void {
    for (;;) {
      const n = this.c.send(this.fd, buf, len, 0);
      if (n === len) return;
      if (n < 0 && this.c.errno() === EINTR) continue;
      throw new NetlinkError(`${what}${this.where}: send`, n < 0 ? this.c.errno() : 5);
    }
  }

  /** One datagram; throws on the deadline. Returns its length. */
  private receive(what: string): number {
    for (;;) {
      const n = this.c.recv(this.fd, this.rbuf, this.rbuf.length, MSG_TRUNC);
      if (n >= 0) {
        if (n > this.rbuf.length) {
          // Lost: the kernel dropped the rest. Grow for next time and say so.
          this.rbuf = new Uint8Array(n * 2);
          this.rview = new DataView(this.rbuf.buffer);
          throw new NetlinkParseError(`a ${n}-byte reply to ${what} did not fit the receive buffer`);
        }
        return n;
      }
      const e = this.c.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) throw new NetlinkError(`${what}${this.where}: no answer from the kernel within ${this.timeoutMs} ms`, 110);
      throw new NetlinkError(`${what}${this.where}: receive`, e);
    }
  }

  /** The errno (positive) and extended-ack text of an NLMSG_ERROR message. */
  private errorOf(m: NlMessage): { errno: number; extack?: string } {
    if (m.end - m.body < 4) throw new NetlinkParseError("error message too short");
    const errno = -this.rview.getInt32(m.body, true);
    if (!(m.flags & NLM_F.ACK_TLVS)) return { errno };
    // With NETLINK_CAP_ACK the original request's header follows, then the TLVs.
    let tlv = m.body + 4 + NLMSG_HDRLEN;
    if (!(m.flags & NLM_F.CAPPED) && m.body + 4 + 4 <= m.end) tlv = m.body + 4 + this.rview.getUint32(m.body + 4, true);
    if (tlv > m.end) return { errno };
    const text = new Attrs(this.rbuf, this.rview, tlv, m.end, NLMSGERR_ATTR.OFFS).string(NLMSGERR_ATTR.MSG);
    return text ? { errno, extack: text } : { errno };
  }

  /**
   * Sends the requests (several per datagram) and returns each one's outcome, in order. The
   * kernel runs them in order and goes on after a failure, so a request that depends on a
   * failed one fails too; callers report the first. Replies to GET requests go to `onReply`.
   */
  exchange(reqs: readonly Request[], onReply?: ReplyHandler): Outcome[] {
    const out: Outcome[] = new Array(reqs.length).fill(undefined);
    for (let from = 0; from < reqs.length; ) {
      const w = this.writer;
      w.reset();
      const base = nextSeq;
      let to = from;
      while (to < reqs.length && to - from < CHUNK_MESSAGES && (to === from || w.len < CHUNK_BYTES)) {
        const r = reqs[to]!;
        w.beginMessage(r.type, r.flags | NLM_F.REQUEST, base + (to - from));
        r.body(w);
        w.endMessage();
        to++;
      }
      // Only the last request of the datagram asks for an ACK: the kernel runs them in order and
      // answers every failure anyway, so that ACK means all before it are done (and a thousand
      // successes cost one answer, not a thousand).
      const lastAt = w.msgOffsets[w.msgOffsets.length - 1]!;
      w.view.setUint16(lastAt + 6, w.view.getUint16(lastAt + 6, true) | NLM_F.ACK, true);
      nextSeq = (nextSeq + (to - from) + 1) >>> 0;
      const what = reqs[from]!.what + (to - from > 1 ? ` (and ${to - from - 1} more)` : "");
      this.send(w.buf, w.len, what);
      const lastSeq = to - from - 1;
      let done = false;
      while (!done) {
        const n = this.receive(what);
        const ms = messages(this.rbuf, this.rview, n);
        for (let k = 0; k < ms.length; k++) {
          const m = ms[k]!;
          const i = m.seq - base;
          if (i < 0 || i >= to - from) continue; // an answer to an earlier, abandoned request
          if (m.type === NLMSG.ERROR) {
            const { errno, extack } = this.errorOf(m);
            if (errno !== 0) out[from + i] = new NetlinkError(reqs[from + i]!.what + this.where, errno, extack);
            if (i === lastSeq) done = true;
          } else if (m.type !== NLMSG.NOOP && m.type !== NLMSG.DONE) {
            onReply?.(from + i, this.rbuf, this.rview, m);
          }
        }
      }
      from = to;
    }
    return out;
  }

  /**
   * Runs a dump request and hands each object message to `each`. A dump the kernel marks as
   * interrupted (the table changed meanwhile) is run again, up to three times.
   */
  dump(req: Request, each: (buf: Uint8Array, view: DataView, m: NlMessage) => void): void {
    for (let attempt = 0; ; attempt++) {
      const w = this.writer;
      w.reset();
      const seq = nextSeq;
      nextSeq = (nextSeq + 1) >>> 0;
      w.beginMessage(req.type, req.flags | NLM_F.REQUEST | NLM_F.DUMP, seq);
      req.body(w);
      w.endMessage();
      this.send(w.buf, w.len, req.what);
      let interrupted = false;
      let done = false;
      while (!done) {
        const n = this.receive(req.what);
        const ms = messages(this.rbuf, this.rview, n);
        for (let k = 0; k < ms.length; k++) {
          const m = ms[k]!;
          if (m.seq !== seq) continue;
          if (m.flags & NLM_F.DUMP_INTR) interrupted = true;
          if (m.type === NLMSG.DONE) { done = true; break; }
          if (m.type === NLMSG.ERROR) {
            const { errno, extack } = this.errorOf(m);
            if (errno === 0) { done = true; break; }
            throw new NetlinkError(req.what + this.where, errno, extack);
          }
          if (!interrupted) each(this.rbuf, this.rview, m);
        }
      }
      if (!interrupted || attempt >= 2) return;
    }
  }

  /**
   * Reads event datagrams for up to `waitMs` (0: only what is queued), handing each message to
   * `each`. Returns "overrun" when the kernel dropped events (the receive buffer was full):
   * the caller must then read the whole state again.
   */
  events(waitMs: number, each: (buf: Uint8Array, view: DataView, m: NlMessage) => void): "ok" | "overrun" | "timeout" {
    const pfd = new Uint8Array(8);
    const pv = new DataView(pfd.buffer);
    pv.setInt32(0, this.fd, true);
    pv.setInt16(4, 1, true); // POLLIN
    let got = false;
    for (;;) {
      const r = this.c.poll(pfd, 1, got ? 0 : waitMs);
      if (r < 0) {
        if (this.c.errno() === EINTR) continue;
        throw new NetlinkError(`wait for events${this.where}`, this.c.errno());
      }
      if (r === 0) return got ? "ok" : "timeout";
      const n = this.c.recv(this.fd, this.rbuf, this.rbuf.length, 0x40 /* MSG_DONTWAIT */);
      if (n < 0) {
        const e = this.c.errno();
        if (e === EINTR || e === EAGAIN) continue;
        if (e === ENOBUFS) return "overrun";
        throw new NetlinkError(`read events${this.where}`, e);
      }
      got = true;
      const ms = messages(this.rbuf, this.rview, n);
      for (let k = 0; k < ms.length; k++) each(this.rbuf, this.rview, ms[k]!);
    }
  }
}
