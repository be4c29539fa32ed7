// The text output path writes ASCII straight into a byte buffer: building a JS string per
// packet and encoding it afterwards cost more than decoding did (see docs/benchmarks.md).
// Everything gauze prints in text mode is ASCII; anything else is written as "?".

const HEX = "0123456789abcdef";
const HEX_HI = Uint8Array.from({ length: 256 }, (_, v) => HEX.charCodeAt(v >> 4));
const HEX_LO = Uint8Array.from({ length: 256 }, (_, v) => HEX.charCodeAt(v & 15));
/** "0000".."9999", four bytes each (digit by digit: dividing took 2 ms of start-up). */
const QUADS = new Uint8Array(40000);
for (let a = 48, i = 0; a < 58; a++) {
  for (let b = 48; b < 58; b++) {
    for (let c = 48; c < 58; c++) {
      for (let d = 48; d < 58; d++, i += 4) {
        QUADS[i] = a;
        QUADS[i + 1] = b;
        QUADS[i + 2] = c;
        QUADS[i + 3] = d;
      }
    }
  }
}

/** 0..9999 without leading zeros; returns the new write position. */
function writeHead(b: Uint8Array, u: number, x: number): number {
  const q = x * 4;
  if (x >= 1000) b[u++] = QUADS[q]!;
  if (x >= 100) b[u++] = QUADS[q + 1]!;
  if (x >= 10) b[u++] = QUADS[q + 2]!;
  b[u++] = QUADS[q + 3]!;
  return u;
}

/** 0..9999 as exactly four digits. */
function writeQuad(b: Uint8Array, u: number, x: number): number {
  const q = x * 4;
  b[u] = QUADS[q]!;
  b[u + 1] = QUADS[q + 1]!;
  b[u + 2] = QUADS[q + 2]!;
  b[u + 3] = QUADS[q + 3]!;
  return u + 4;
}

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
    const n = b.length;
    if (this.used + n > this.buf.length) this.room(n);
    if (n > 24) {
      this.buf.set(b, this.used);
      this.used += n;
      return this;
    }
    // Below about 24 bytes a plain loop beats set()'s native call (measured: 18 against 25 ns
    // for 10 bytes; 88 against 29 ns for 100).
    const out = this.buf;
    let u = this.used;
    for (let i = 0; i < n; i++) out[u++] = b[i]!;
    this.used = u;
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

  /**
   * A non-negative integer in decimal. Below 2^32 (every field a packet header holds) it is
   * written four digits per table copy: numbers are most of what a text block prints, and
   * digit-pair loops were a quarter of text mode's time.
   */
  num(n: number): this {
    const x = n >>> 0;
    if (x !== n) return this.str(String(n < 0 || !Number.isFinite(n) ? n : Math.floor(n)));
    if (this.used + 10 > this.buf.length) this.room(10);
    if (x < 10000) {
      this.used = writeHead(this.buf, this.used, x);
    } else if (x < 100000000) {
      const hi = (x / 10000) >>> 0;
      this.used = writeQuad(this.buf, writeHead(this.buf, this.used, hi), x - hi * 10000);
    } else {
      const top = (x / 100000000) >>> 0;
      const rest = x - top * 100000000;
      const mid = (rest / 10000) >>> 0;
      const b = this.buf;
      this.used = writeQuad(b, writeQuad(b, writeHead(b, this.used, top), mid), rest - mid * 10000);
    }
    return this;
  }

  /** 0..99 as exactly two digits (clock fields). */
  two(x: number): this {
    if (this.used + 2 > this.buf.length) this.room(2);
    const q = (x & 127) * 4;
    this.buf[this.used++] = QUADS[q + 2]!;
    this.buf[this.used++] = QUADS[q + 3]!;
    return this;
  }

  /** 0..999999 as exactly six digits (microseconds). */
  six(x: number): this {
    if (this.used + 6 > this.buf.length) this.room(6);
    const hi = (x / 10000) >>> 0;
    this.two(hi);
    this.used = writeQuad(this.buf, this.used, x - hi * 10000);
    return this;
  }

  hex(n: number, width: number): this {
    this.room(width + 2);
    const b = this.buf;
    b[this.used++] = 48;
    b[this.used++] = 120;
    for (let i = width - 1; i >= 0; i--) b[this.used++] = HEX_LO[(n >>> (i * 4)) & 15]!;
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

  /** Dotted quad from the 32-bit value: each octet's text copied from a table. */
  ipv4(v: number): this {
    if (this.used + 15 > this.buf.length) this.room(15);
    const b = this.buf;
    let u = writeHead(b, this.used, v >>> 24);
    b[u++] = 46;
    u = writeHead(b, u, (v >>> 16) & 255);
    b[u++] = 46;
    u = writeHead(b, u, (v >>> 8) & 255);
    b[u++] = 46;
    this.used = writeHead(b, u, v & 255);
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
