// Streaming reader for pcap and pcapng. Bytes come in as chunks (a file read in slices, or
// tcpdump's stdout); packets come out as soon as they are complete, so memory stays flat in the
// size of the capture. Every length is checked against what the file can hold: a file-level
// problem throws CaptureFormatError naming the byte offset and packet number.

export interface Packet {
  /** 1-based packet number in the file. */
  n: number;
  /** Byte offset of the packet's record/block in the file. */
  offset: number;
  linkType: number;
  iface: number;
  /** Seconds and nanoseconds since the epoch. */
  tsSec: number;
  tsNsec: number;
  /** Bytes on the wire (origlen) and the bytes captured (a view into the reader's buffer). */
  wireLen: number;
  data: Uint8Array;
  /** The record claimed more captured bytes than the file's snapshot length: cut to it, as libpcap does. */
  clampedFrom?: number;
}

export class CaptureFormatError extends Error {
  constructor(message: string, readonly offset: number, readonly packet: number) {
    super(`${message} (at byte offset ${offset}, packet #${packet})`);
    this.name = "CaptureFormatError";
  }
}

const PCAP_US = 0xa1b2c3d4;
const PCAP_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const BOM = 0x1a2b3c4d;
/** No sane capture has a single packet or block bigger than this. */
const MAX_RECORD = 16 * 1024 * 1024;

interface Iface {
  linkType: number;
  snaplen: number;
  /** Timestamp units per second (pcapng if_tsresol). */
  unitsPerSec: number;
  tsOffset: number;
}

type Format = "unknown" | "pcap" | "pcapng";

export class CaptureReader {
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  /** File offset of buf[0]. */
  private base = 0;
  private format: Format = "unknown";
  private le = true;
  private nano = false;
  private snaplen = 0;
  private linkType = 0;
  private ifaces: Iface[] = [];
  private count = 0;
  private ended = false;
  private headerDone = false;

  /** Number of packets read so far. */
  get packets(): number {
    return this.count;
  }

  /** Packets whose record claimed more than the snapshot length (libpcap cuts them to it; so does this reader), and the first of them. */
  readonly clamped = { count: 0, first: 0, claimed: 0, snaplen: 0 };

  get fileFormat(): Format {
    return this.format;
  }

  /** Appends a chunk; the packets of earlier pushes must have been consumed (views are reused). */
  push(chunk: Uint8Array): void {
    const rest = this.buf.length - this.pos;
    if (rest === 0) {
      this.base += this.buf.length;
      this.buf = chunk;
    } else {
      const merged = new Uint8Array(rest + chunk.length);
      merged.set(this.buf.subarray(this.pos), 0);
      merged.set(chunk, rest);
      this.base += this.pos;
      this.buf = merged;
    }
    this.pos = 0;
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  private own: Uint8Array | undefined;

  /**
   * Refills from a synchronous source (a file, stdin) into the reader's own buffer: the unread
   * rest of the last fill moves to the front and `read` fills the space after it. No other copy.
   * Returns the bytes read (0 at the end of input). Packets handed out before are invalid after.
   */
  fill(read: (buf: Uint8Array, offset: number, length: number) => number, size = 4 << 20): number {
    const rest = this.buf.length - this.pos;
    if (!this.own || this.own.length < size || rest * 2 > this.own.length) {
      // A record bigger than half the buffer: grow, so it always fits with room to read.
      const bigger = new Uint8Array(Math.max(size, rest * 4));
      bigger.set(this.buf.subarray(this.pos), 0);
      this.own = bigger;
    } else if (rest > 0) {
      this.own.copyWithin(0, this.buf.byteOffset + this.pos - this.own.byteOffset, this.buf.byteOffset + this.buf.length - this.own.byteOffset);
    }
    const n = read(this.own, rest, this.own.length - rest);
    this.base += this.pos;
    this.buf = this.own.subarray(0, rest + n);
    this.pos = 0;
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    return n;
  }

  /** Signals the end of input: a partial record left over is a truncation error in next(). */
  end(): void {
    this.ended = true;
  }

  private u32(at: number): number {
    return this.view.getUint32(at, this.le);
  }

  private err(msg: string, at = this.base + this.pos): never {
    throw new CaptureFormatError(msg, at, this.count + 1);
  }

  private need(bytes: number, what: string): boolean {
    if (this.buf.length - this.pos >= bytes) return true;
    if (this.ended) {
      this.err(`truncated ${what}: needs ${bytes} bytes, the file has ${this.buf.length - this.pos} left`);
    }
    return false;
  }

  /** The next complete packet, or undefined when more input is needed (or the input ended). */
  next(): Packet | undefined {
    for (;;) {
      if (this.format === "unknown") {
        if (this.buf.length - this.pos === 0 && this.ended) this.err("empty file: no pcap or pcapng header");
        if (!this.need(4, "file header")) return undefined;
        this.detect();
        continue;
      }
      if (this.buf.length - this.pos === 0) return undefined;
      const p = this.format === "pcap" ? this.nextPcap() : this.nextPcapng();
      if (p === null) continue; // a non-packet block was consumed
      return p;
    }
  }

  private detect(): void {
    const magicBE = this.view.getUint32(this.pos, false);
    const magicLE = this.view.getUint32(this.pos, true);
    if (magicBE === PCAPNG_SHB) {
      this.format = "pcapng";
      return;
    }
    for (const [m, le] of [[magicLE, true], [magicBE, false]] as const) {
      if (m === PCAP_US || m === PCAP_NS) {
        this.format = "pcap";
        this.le = le;
        this.nano = m === PCAP_NS;
        return;
      }
    }
    this.err(`not a capture file: magic 0x${magicBE.toString(16).padStart(8, "0")} is neither pcap (a1b2c3d4, a1b23c4d) nor pcapng (0a0d0d0a)`);
  }

  private nextPcap(): Packet | undefined {
    if (!this.headerDone) {
      if (!this.need(24, "pcap file header")) return undefined;
      const major = this.view.getUint16(this.pos + 4, this.le);
      if (major !== 2) this.err(`pcap version ${major} is not 2`);
      this.snaplen = this.u32(this.pos + 16);
      this.linkType = this.u32(this.pos + 20) & 0x0fffffff;
      this.pos += 24;
      this.headerDone = true;
      if (this.buf.length - this.pos === 0) return undefined;
    }
    if (!this.need(16, "packet record header")) return undefined;
    const at = this.pos;
    const caplen = this.u32(at + 8);
    const wireLen = this.u32(at + 12);
    // Beyond any sane record: the file is broken from here on.
    if (caplen > MAX_RECORD) this.err(`packet claims ${caplen} captured bytes, more than any capture holds (${MAX_RECORD})`);
    if (!this.need(16 + caplen, `packet #${this.count + 1}`)) return undefined;
    const sec = this.u32(at);
    const frac = this.u32(at + 4);
    this.pos = at + 16 + caplen;
    this.count++;
    // More captured bytes than the snapshot length (some writers do it): libpcap keeps the first
    // snaplen bytes and goes on; so does this reader, and says so once (see `clamped`).
    let keep = caplen;
    if (this.snaplen > 0 && caplen > this.snaplen) {
      keep = this.snaplen;
      if (this.clamped.count++ === 0) Object.assign(this.clamped, { first: this.count, claimed: caplen, snaplen: this.snaplen });
    }
    return {
      n: this.count, offset: this.base + at, linkType: this.linkType, iface: 0,
      tsSec: sec, tsNsec: this.nano ? frac : frac * 1000,
      wireLen: Math.max(wireLen, keep), data: this.buf.subarray(at + 16, at + 16 + keep), ...(keep < caplen ? { clampedFrom: caplen } : {}),
    };
  }

  /** pcapng: returns a packet, null for a consumed non-packet block, undefined for "need more". */
  private nextPcapng(): Packet | null | undefined {
    if (!this.need(12, "block header")) return undefined;
    const at = this.pos;
    const type = this.view.getUint32(at, this.le);
    if (type === PCAPNG_SHB) {
      // The section header decides the byte order of everything up to the next one.
      if (!this.need(12, "section header")) return undefined;
      const bom = this.view.getUint32(at + 8, true);
      if (bom === BOM) this.le = true;
      else if (bom === 0x4d3c2b1a) this.le = false;
      else this.err(`section header has byte-order magic 0x${bom.toString(16)}, not 1a2b3c4d`);
      this.ifaces = [];
    }
    const len = this.u32(at + 4);
    if (len < 12 || len % 4 !== 0) this.err(`block of type 0x${type.toString(16)} has length ${len}, not a multiple of 4 of at least 12`);
    if (len > MAX_RECORD) this.err(`block of type 0x${type.toString(16)} claims ${len} bytes`);
    if (!this.need(len, `block of type 0x${type.toString(16)}`)) return undefined;
    const trailer = this.u32(at + len - 4);
    if (trailer !== len) this.err(`block length ${len} does not match its trailing copy ${trailer}`);
    this.pos = at + len;
    const body = at + 8;
    const bodyLen = len - 12;
    switch (type) {
      case PCAPNG_SHB:
        if (bodyLen < 16) this.err("section header block too short", at);
        return null;
      case 1: { // interface description
        if (bodyLen < 8) this.err("interface description block too short", at);
        const iface: Iface = { linkType: this.view.getUint16(body, this.le), snaplen: this.u32(body + 4), unitsPerSec: 1e6, tsOffset: 0 };
        this.readIfaceOptions(iface, body + 8, body + bodyLen);
        this.ifaces.push(iface);
        return null;
      }
      case 6: { // enhanced packet
        if (bodyLen < 20) this.err("enhanced packet block too short", at);
        const ifid = this.u32(body);
        const iface = this.ifaces[ifid];
        if (!iface) this.err(`packet refers to interface ${ifid}, but only ${this.ifaces.length} are described`, at);
        const caplen = this.u32(body + 12);
        const wireLen = this.u32(body + 16);
        if (caplen > bodyLen - 20) this.err(`packet claims ${caplen} captured bytes in a block with room for ${bodyLen - 20}`, at);
        this.count++;
        const [sec, nsec] = this.timestamp(iface, this.u32(body + 4), this.u32(body + 8));
        return { n: this.count, offset: this.base + at, linkType: iface.linkType, iface: ifid, tsSec: sec, tsNsec: nsec, wireLen, data: this.buf.subarray(body + 20, body + 20 + caplen) };
      }
      case 3: { // simple packet
        if (bodyLen < 4) this.err("simple packet block too short", at);
        const iface = this.ifaces[0];
        if (!iface) this.err("simple packet block before any interface description", at);
        const wireLen = this.u32(body);
        let caplen = Math.min(wireLen, bodyLen - 4);
        if (iface.snaplen > 0) caplen = Math.min(caplen, iface.snaplen);
        this.count++;
        return { n: this.count, offset: this.base + at, linkType: iface.linkType, iface: 0, tsSec: 0, tsNsec: 0, wireLen, data: this.buf.subarray(body + 4, body + 4 + caplen) };
      }
      case 2: { // obsolete packet block
        if (bodyLen < 20) this.err("packet block too short", at);
        const ifid = this.view.getUint16(body, this.le);
        const iface = this.ifaces[ifid];
        if (!iface) this.err(`packet refers to interface ${ifid}, but only ${this.ifaces.length} are described`, at);
        const caplen = this.u32(body + 12);
        if (caplen > bodyLen - 20) this.err(`packet claims ${caplen} captured bytes in a block with room for ${bodyLen - 20}`, at);
        this.count++;
        const [sec, nsec] = this.timestamp(iface, this.u32(body + 4), this.u32(body + 8));
        return { n: this.count, offset: this.base + at, linkType: iface.linkType, iface: ifid, tsSec: sec, tsNsec: nsec, wireLen: this.u32(body + 16), data: this.buf.subarray(body + 20, body + 20 + caplen) };
      }
      default:
        return null; // name resolution, statistics, custom blocks: not needed to decode packets
    }
  }

  private readIfaceOptions(iface: Iface, from: number, to: number): void {
    let p = from;
    while (p + 4 <= to) {
      const code = this.view.getUint16(p, this.le);
      const len = this.view.getUint16(p + 2, this.le);
      if (code === 0) break;
      if (p + 4 + len > to) this.err("interface option runs past its block", this.base + p);
      if (code === 9 && len >= 1) {
        const v = this.buf[p + 4]!;
        iface.unitsPerSec = v & 0x80 ? 2 ** (v & 0x7f) : 10 ** v;
        if (!Number.isFinite(iface.unitsPerSec) || iface.unitsPerSec > 1e18) this.err(`if_tsresol ${v} is out of range`, this.base + p);
      } else if (code === 14 && len >= 8) {
        iface.tsOffset = Number(this.view.getBigInt64(p + 4, this.le));
      }
      p += 4 + ((len + 3) & ~3);
    }
  }

  private timestamp(iface: Iface, hi: number, lo: number): [number, number] {
    if (iface.unitsPerSec === 1e6) {
      const us = hi * 4294967296 + lo; // exact below 2^53 us (year 2255)
      const sec = Math.floor(us / 1e6);
      return [sec + iface.tsOffset, (us - sec * 1e6) * 1000];
    }
    const units = (BigInt(hi) << 32n) | BigInt(lo);
    const ups = BigInt(Math.round(iface.unitsPerSec));
    const sec = units / ups;
    const rem = units % ups;
    return [Number(sec) + iface.tsOffset, Number((rem * 1_000_000_000n) / ups)];
  }
}
