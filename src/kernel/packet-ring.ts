// Every packet on every interface of this network namespace, its first bytes, without a copy
// per packet: a packet socket (ETH_P_ALL) with a memory-mapped receive ring (TPACKET_V3). The
// kernel fills blocks of packets and hands a block over when it is full or when it has waited
// `retireMs`; the reader walks the handed-over blocks in place and gives each back. A socket
// filter keeps only `snaplen` bytes of each packet (headers: enough for a tunnelled TCP
// header), so a full-size segment costs the ring a few hundred bytes, not 1500.
import { type Libc, libc } from "./libc.ts";
import type { Pointer } from "bun:ffi";

const AF_PACKET = 17, SOCK_RAW = 3, ETH_P_ALL_BE = 0x0300, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_ATTACH_FILTER = 26, SOL_PACKET = 263;
const PACKET_RX_RING = 5, PACKET_STATISTICS = 6, PACKET_VERSION = 10, TPACKET_V3 = 2;
const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
const TP_STATUS_USER = 1;
/** sll_pkttype: the packet was sent by this host (on that interface), rather than received. */
export const PACKET_OUTGOING = 4;

export interface RingPacket {
  ifindex: number;
  /** PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4. */
  pktType: number;
  /** Wall-clock time the kernel took the packet: seconds since the epoch, and nanoseconds. */
  sec: number;
  nsec: number;
  /** Length on the wire (a GSO/GRO packet counts as one, with its whole length). */
  len: number;
  /** The first bytes, from the link-layer header: valid only during the callback. */
  data: Uint8Array;
}

/** A classic BPF instruction. */
type Insn = [code: number, jt: number, jf: number, k: number];

/**
 * The socket filter: every packet cut to `snaplen`; with `oneIn` > 1, a random one in `oneIn`
 * of the TCP bulk (IPv4 with a 20-byte header, segments without SYN, FIN or RST, bare or inside
 * VXLAN) and everything else. Labels are resolved to the relative jumps cBPF takes.
 */
export function samplingFilter(snaplen: number, oneIn: number, vxlanPort: number): Insn[] {
  const LDH = 0x28, LDB = 0x30, LDW = 0x20, JEQ = 0x15, JGT = 0x25, JSET = 0x45, RET = 0x06;
  const RANDOM = 0xfffff038; // SKF_AD_OFF + SKF_AD_RANDOM
  if (oneIn <= 1) return [[RET, 0, 0, snaplen]];
  type Op = { code: number; k: number; t?: string; f?: string; label?: string };
  const ops: Op[] = [
    { code: LDH, k: 12 }, { code: JEQ, k: 0x0800, f: "keep" },
    { code: LDB, k: 14 }, { code: JEQ, k: 0x45, f: "keep" },
    { code: LDB, k: 23 }, { code: JEQ, k: 6, f: "udp" },
    { code: LDB, k: 47 }, { code: JSET, k: 0x07, t: "keep", f: "sample" },
    { code: JEQ, k: 17, f: "keep", label: "udp" },
    { code: LDH, k: 36 }, { code: JEQ, k: vxlanPort, f: "keep" },
    { code: LDH, k: 62 }, { code: JEQ, k: 0x0800, f: "keep" },
    { code: LDB, k: 64 }, { code: JEQ, k: 0x45, f: "keep" },
    { code: LDB, k: 73 }, { code: JEQ, k: 6, f: "keep" },
    { code: LDB, k: 97 }, { code: JSET, k: 0x07, t: "keep", f: "sample" },
    { code: LDW, k: RANDOM, label: "sample" }, { code: JGT, k: Math.floor(0xffffffff / oneIn), t: "drop", f: "keep" },
    { code: RET, k: snaplen, label: "keep" },
    { code: RET, k: 0, label: "drop" },
  ];
  const at = new Map(ops.flatMap((o, i) => (o.label ? [[o.label, i] as [string, number]] : [])));
  return ops.map((o, i) => [o.code, o.t ? at.get(o.t)! - i - 1 : 0, o.f ? at.get(o.f)! - i - 1 : 0, o.k]);
}

function attach(c: Libc, fd: number, prog: Insn[]): boolean {
  const code = new Uint8Array(8 * prog.length);
  const v = new DataView(code.buffer);
  prog.forEach(([op, jt, jf, k], i) => {
    v.setUint16(8 * i, op, true);
    v.setUint8(8 * i + 2, jt);
    v.setUint8(8 * i + 3, jf);
    v.setUint32(8 * i + 4, k >>> 0, true);
  });
  const fprog = new Uint8Array(16);
  const fv = new DataView(fprog.buffer);
  fv.setUint16(0, prog.length, true);
  fv.setBigUint64(8, BigInt(c.addressOf(code)), true);
  return c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16) === 0;
}

export class PacketRingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PacketRingError";
  }
}

export interface RingOptions {
  snaplen: number;
  blockSize: number;
  blocks: number;
  retireMs: number;
}

export class PacketRing {
  private block = 0;
  private closed = false;

  private constructor(private readonly c: Libc, readonly fd: number, private readonly map: Pointer, private readonly mem: Uint8Array, private readonly o: RingOptions) {}

  static open(o: RingOptions = { snaplen: 192, blockSize: 1 << 18, blocks: 16, retireMs: 20 }): PacketRing {
    const c = libc();
    const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, ETH_P_ALL_BE);
    if (fd < 0) throw new PacketRingError(`packet socket: ${c.strerror(c.errno())} (the agent needs CAP_NET_RAW)`);
    const fail = (what: string): never => {
      const e = c.errno();
      c.close(fd);
      throw new PacketRingError(`packet ring: ${what}: ${c.strerror(e)}`);
    };
    const u32 = (...v: number[]) => { const b = new Uint8Array(4 * v.length); const d = new DataView(b.buffer); v.forEach((x, i) => d.setUint32(4 * i, x, true)); return b; };
    if (c.setsockopt(fd, SOL_PACKET, PACKET_VERSION, u32(TPACKET_V3), 4) < 0) fail("TPACKET_V3");
    // Every packet, cut to snaplen bytes (sampling, when asked for, replaces this program).
    if (!attach(c, fd, samplingFilter(o.snaplen, 1, 8472))) fail("socket filter");
    const frameSize = 2048;
    const req = u32(o.blockSize, o.blocks, frameSize, (o.blockSize / frameSize) * o.blocks, o.retireMs, 0, 0);
    if (c.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, req, req.length) < 0) fail("PACKET_RX_RING");
    const size = o.blockSize * o.blocks;
    const map = c.mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    if (!map) fail("mmap");
    return new PacketRing(c, fd, map!, c.view(map!, size), o);
  }

  /** Walks every block the kernel has handed over, oldest first; returns the packets seen. */
  drain(onPacket: (p: RingPacket) => void, maxBlocks = this.o.blocks): number {
    if (this.closed) return 0;
    let n = 0;
    const v = new DataView(this.mem.buffer, this.mem.byteOffset, this.mem.byteLength);
    for (let k = 0; k < maxBlocks; k++) {
      const base = this.block * this.o.blockSize;
      if ((v.getUint32(base + 8, true) & TP_STATUS_USER) === 0) break;
      const count = v.getUint32(base + 12, true);
      let off = base + v.getUint32(base + 16, true);
      for (let i = 0; i < count; i++) {
        const next = v.getUint32(off, true);
        const sec = v.getUint32(off + 4, true);
        const nsec = v.getUint32(off + 8, true);
        const snap = v.getUint32(off + 12, true);
        const len = v.getUint32(off + 16, true);
        const mac = v.getUint16(off + 24, true);
        onPacket({
          ifindex: v.getInt32(off + 52, true), pktType: v.getUint8(off + 58), sec, nsec,
          len, data: this.mem.subarray(off + mac, off + mac + snap),
        });
        n++;
        if (next === 0) break;
        off += next;
      }
      v.setUint32(base + 8, 0, true); // back to the kernel
      this.block = (this.block + 1) % this.o.blocks;
    }
    return n;
  }

  /**
   * Keep one in `oneIn` of the bulk of TCP (IPv4 segments without SYN, FIN or RST, bare or inside
   * VXLAN on `vxlanPort`): what a busy node's observer keeps up with. Everything else is kept.
   */
  sample(oneIn: number, vxlanPort: number): boolean {
    return attach(this.c, this.fd, samplingFilter(this.o.snaplen, oneIn, vxlanPort));
  }

  /** Packets the kernel counted and those it dropped because the ring was full, since the last call. */
  stats(): { packets: number; drops: number } {
    const b = new Uint8Array(12);
    const len = new Uint32Array([12]);
    if (this.c.getsockopt(this.fd, SOL_PACKET, PACKET_STATISTICS, b, len) < 0) return { packets: 0, drops: 0 };
    const d = new DataView(b.buffer);
    return { packets: d.getUint32(0, true), drops: d.getUint32(4, true) };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.c.munmap(this.map, this.o.blockSize * this.o.blocks);
    this.c.close(this.fd);
  }
}
