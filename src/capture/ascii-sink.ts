// The text output path writes ASCII straight into a byte buffer: building a JS string per
// packet and encoding it afterwards cost more than decoding did (see docs/benchmarks.md).
// Everything gauze prints in text mode is ASCII; anything else is written as "?".

const HEX = "0123456789abcdef";
const HEX_HI = Uint8Array.from({ length: 256 }, (_, v) => HEX.charCodeAt(v >> 4));
const HEX_LO = Uint8Array.from({ length: 256 }, (_, v) => HEX.charCodeAt(v & 15));
/** "00".."99" as byte pairs: numbers are written two digits per division. */
const PAIRS = Uint8Array.from({ length: 200 }, (_, i) => 48 + (i & 1 ? (i >> 1) % 10 : Math.floor((i >> 1) / 10)));

export class AsciiSink {
  private buf: Uint8Array;
  private used = 0;
  constructor(private readonly write: (bytes: Uint8Array) => void, size = 1 << 20) {
    this.buf = new Uint8Array(size);
  }

  /** Makes room for n more bytes (flushing if needed). Callers reserve per line. */
  room(n: number): void {
    if (this.used + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = new Uint8Array(n);
  }

  flush(): void {
    if (this.used === 0) return;
    this.write(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  /** Position for `since`: call room() first so that no flush happens in between. */
  mark(): number {
    return this.used;
  }

  /** A copy of what was written since `mark`. */
  since(mark: number): Uint8Array {
    return this.buf.slice(mark, this.used);
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.used);
    this.used += b.length;
    return this;
  }

  str(s: string): this {
    if (this.used + s.length > this.buf.length) this.room(s.length);
    const b = this.buf;
    let u = this.used;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      b[u++] = c < 128 ? c : 63;
    }
    this.used = u;
    return this;
  }

  char(c: number): this {
    if (this.used >= this.buf.length) this.room(1);
    this.buf[this.used++] = c;
    return this;
  }

  /** A non-negative integer in decimal, zero-padded to `width`. */
  num(n: number, width = 0): this {
    if (this.used + 24 > this.buf.length) this.room(24);
    if (n < 0 || !Number.isFinite(n)) return this.str(String(n));
    const b = this.buf;
    if (n < 4294967296) {
      // Integers below 2^32: >>> 0 truncates like Math.floor, and faster.
      let x = n >>> 0;
      const digits = x < 10 ? 1 : x < 100 ? 2 : x < 1000 ? 3 : x < 10000 ? 4 : x < 100000 ? 5 : x < 1000000 ? 6 : x < 10000000 ? 7 : x < 100000000 ? 8 : x < 1000000000 ? 9 : 10;
      const len = digits > width ? digits : width;
      let u = this.used + len;
      const start = this.used;
      this.used = u;
      while (x >= 100) {
        const q = (x / 100) >>> 0;
        const r = (x - q * 100) * 2;
        b[--u] = PAIRS[r + 1]!;
        b[--u] = PAIRS[r]!;
        x = q;
      }
      if (x >= 10) {
        b[--u] = PAIRS[x * 2 + 1]!;
        b[--u] = PAIRS[x * 2]!;
      } else {
        b[--u] = 48 + x;
      }
      while (u > start) b[--u] = 48; // zero padding up to `width`
      return this;
    }
    return this.str(String(Math.floor(n)).padStart(width, "0"));
  }

  hex(n: number, width: number): this {
    this.room(width + 2);
    const b = this.buf;
    b[this.used++] = 48;
    b[this.used++] = 120;
    for (let i = width - 1; i >= 0; i--) b[this.used++] = HEX.charCodeAt((n >>> (i * 4)) & 15);
    return this;
  }

  mac(f: Uint8Array, at: number): this {
    this.room(17);
    const b = this.buf;
    let u = this.used;
    for (let i = 0; i < 6; i++) {
      if (i) b[u++] = 58;
      const v = f[at + i]!;
      b[u++] = HEX_HI[v]!;
      b[u++] = HEX_LO[v]!;
    }
    this.used = u;
    return this;
  }

  ipv4(v: number): this {
    this.num(v >>> 24).char(46).num((v >>> 16) & 255).char(46).num((v >>> 8) & 255).char(46).num(v & 255);
    return this;
  }
}

/** Collects what a writer produces into a string (tests, small outputs). */
export function sinkToString(fn: (s: AsciiSink) => void): string {
  const parts: Uint8Array[] = [];
  const s = new AsciiSink((b) => parts.push(b.slice()), 4096);
  fn(s);
  s.flush();
  return new TextDecoder().decode(Buffer.concat(parts));
}
