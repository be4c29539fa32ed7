// IP packets of one protocol through raw sockets (socket(AF_INET or AF_INET6, SOCK_RAW,
// protocol)), for protocols this kernel has no sockets of, such as SCTP (IPPROTO_SCTP 132, no
// sctp module here): a probe can still put one packet of them on the wire, and a lab pod can
// still answer it. Sending: the kernel writes the IP header, routes it and sends it from this
// thread's network namespace; the caller gives the transport header and what follows.
// Receiving: every packet of the protocol delivered to this namespace, with its sender (an IPv4
// raw socket hands over the IP header too: it is cut off here). Needs CAP_NET_RAW.
import { describeErrno, libc } from "./libc.ts";
import { formatIPBytes, parseIP } from "../net/cidr.ts";

const AF_INET = 2, AF_INET6 = 10, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000, SOCK_NONBLOCK = 0o4000;
const POLLIN = 1, EAGAIN = 11, EINTR = 4;
export const IPPROTO_SCTP = 132;

export class RawSocketError extends Error {}

/** struct sockaddr_in / sockaddr_in6 for `ip` (port 0: raw sockets have none). */
function sockaddr(ip: string): { addr: Uint8Array; family: number } {
  const p = parseIP(ip);
  if (!p) throw new RawSocketError(`${JSON.stringify(ip)} is not an IP address`);
  const bytes = (n: bigint, len: number) => Array.from({ length: len }, (_, i) => Number((n >> BigInt(8 * (len - 1 - i))) & 0xffn));
  if (p.family === 4) {
    const a = new Uint8Array(16);
    new DataView(a.buffer).setUint16(0, AF_INET, true);
    a.set(bytes(p.value, 4), 4);
    return { addr: a, family: AF_INET };
  }
  const a = new Uint8Array(28);
  new DataView(a.buffer).setUint16(0, AF_INET6, true);
  a.set(bytes(p.value, 16), 8);
  return { addr: a, family: AF_INET6 };
}

/** Sends `payload` as one packet of IP protocol `protocol` to `dst`. */
export function sendRaw(protocol: number, dst: string, payload: Uint8Array): void {
  const c = libc();
  const { addr, family } = sockaddr(dst);
  const fd = c.socket(family, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw new RawSocketError(`raw socket for IP protocol ${protocol}: ${describeErrno(c.errno())}`);
  try {
    if (c.connect(fd, addr, addr.length) !== 0) throw new RawSocketError(`raw socket to ${dst}: ${describeErrno(c.errno())}`);
    if (c.send(fd, payload, payload.length, 0) !== payload.length) throw new RawSocketError(`sending IP protocol ${protocol} to ${dst}: ${describeErrno(c.errno())}`);
  } finally {
    c.close(fd);
  }
}

export interface RawPacket {
  /** The sender's address. */
  src: string;
  /** What follows the IP header (the transport header first). */
  payload: Uint8Array;
}

/** Every packet of one IP protocol and family that reaches this namespace, read without blocking. */
export class RawReceiver {
  private readonly fd: number;
  private readonly buf = new Uint8Array(65536);

  constructor(readonly family: 4 | 6, readonly protocol: number) {
    const c = libc();
    this.fd = c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
    if (this.fd < 0) throw new RawSocketError(`raw IPv${family} socket for IP protocol ${protocol}: ${describeErrno(c.errno())}`);
  }

  /** The next packet, waiting up to `timeoutMs` (0: only one already there); undefined when none came. */
  receive(timeoutMs: number): RawPacket | undefined {
    const c = libc();
    const until = Date.now() + timeoutMs;
    for (;;) {
      const addr = new Uint8Array(28);
      const len = new Uint32Array([addr.length]);
      const n = c.recvfrom(this.fd, this.buf, this.buf.length, 0, addr, len);
      if (n >= 0) {
        const src = (this.family === 4 ? formatIPBytes(addr.subarray(4, 8)) : formatIPBytes(addr.subarray(8, 24))) ?? "?";
        // An IPv4 raw socket reads the IP header as well; IPv6 ones do not.
        const skip = this.family === 4 ? (this.buf[0]! & 0x0f) * 4 : 0;
        if (n < skip) continue;
        return { src, payload: this.buf.slice(skip, n) };
      }
      const e = c.errno();
      if (e !== EAGAIN && e !== EINTR) throw new RawSocketError(`reading IP protocol ${this.protocol}: ${describeErrno(e)}`);
      const left = until - Date.now();
      if (left <= 0) return undefined;
      const pfd = new Uint8Array(8);
      const v = new DataView(pfd.buffer);
      v.setInt32(0, this.fd, true);
      v.setInt16(4, POLLIN, true);
      c.poll(pfd, 1, Math.min(left, 1000));
    }
  }

  close(): void {
    libc().close(this.fd);
  }
}
