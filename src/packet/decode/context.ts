// The state one packet's decoders share: the frame, the layers found so far,
// and the two ways decoding can stop early (cut by the snaplen, or malformed), each recorded
// with the layer and offset.
import type { Dissection, Layer } from "./layers.ts";

export interface DecodeOptions {
  /** UDP destination (or source) ports decoded as VXLAN. */
  vxlanPorts: ReadonlySet<number>;
  genevePorts: ReadonlySet<number>;
  wireguardPorts: ReadonlySet<number>;
  /** Parse TCP options and verify TCP/UDP checksums (text and JSON output; not the summary). */
  detail: boolean;
}

export const MAX_TUNNEL_DEPTH = 3;

/**
 * Where a tunnel's decoder hands its inner packet: the link and network decoders, given by the
 * dissector, so that the tunnel module need not import the modules that import it.
 */
export interface InnerDecoders {
  ethernet(ctx: DecodeContext, off: number, end: number, depth: number): void;
  etherType(ctx: DecodeContext, etherType: number, off: number, end: number, depth: number): void;
}

export class DecodeContext {
  readonly layers: Layer[] = [];
  constructor(readonly frame: Uint8Array, readonly d: Dissection, readonly opts: DecodeOptions, readonly inner: InnerDecoders) {
    d.layers = this.layers;
  }

  /**
   * True when [off, off+need) lies inside [.., end). Otherwise records why not: cut by the
   * capture's snapshot length when the frame was captured short, else malformed.
   */
  has(layer: string, off: number, need: number, end: number): boolean {
    if (off + need <= end) return true;
    if (this.frame.length < this.d.wireLen && end >= this.frame.length) {
      this.d.cut = { layer, offset: off };
    } else {
      this.malformed(layer, off, `${layer} header needs ${need} bytes, ${Math.max(0, end - off)} present`);
    }
    return false;
  }

  malformed(layer: string, offset: number, reason: string): void {
    this.d.malformed ??= { layer, offset, reason };
  }

  u8(at: number): number {
    return this.frame[at]!;
  }

  u16(at: number): number {
    return (this.frame[at]! << 8) | this.frame[at + 1]!;
  }

  u32(at: number): number {
    const f = this.frame;
    return f[at]! * 16777216 + ((f[at + 1]! << 16) | (f[at + 2]! << 8) | f[at + 3]!);
  }

  /** Little-endian (WireGuard's header fields). */
  u32le(at: number): number {
    const f = this.frame;
    return f[at + 3]! * 16777216 + ((f[at + 2]! << 16) | (f[at + 1]! << 8) | f[at]!);
  }
}

let words: Uint32Array | undefined;
let wordsBuffer: ArrayBufferLike | undefined;

/**
 * Ones'-complement sum of [from, to) as 16-bit big-endian words, not yet folded (RFC 1071).
 * The aligned middle is read four bytes at a time through a Uint32Array on the frame's buffer:
 * the sum is byte-order independent up to a final swap, and 32-bit words fold like 16-bit ones.
 */
export function sum16(frame: Uint8Array, from: number, to: number, initial = 0): number {
  if (to - from <= 64) return sum16Short(frame, from, to, initial);
  let hi = 0; // bytes at even distance from `from` (high byte of a big-endian word)
  let lo = 0;
  let i = from;
  const abs = frame.byteOffset;
  // Bytes before the first 4-aligned address, one by one.
  while (i < to && ((abs + i) & 3) !== 0) {
    if (((i - from) & 1) === 0) hi += frame[i]!;
    else lo += frame[i]!;
    i++;
  }
  const nWords = (to - i) >> 2;
  if (nWords > 0) {
    const buffer = frame.buffer;
    if (buffer !== wordsBuffer || !words) {
      words = new Uint32Array(buffer, 0, buffer.byteLength >> 2);
      wordsBuffer = buffer;
    }
    // Four sums: one would be a chain of dependent additions, each waiting for the last.
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const w0 = (abs + i) >> 2;
    const wEnd = w0 + nWords;
    let k = w0;
    for (; k + 3 < wEnd; k += 4) {
      s0 += words[k]!;
      s1 += words[k + 1]!;
      s2 += words[k + 2]!;
      s3 += words[k + 3]!;
    }
    for (; k < wEnd; k++) s0 += words[k]!;
    const s = s0 + s1 + s2 + s3;
    // Little-endian words: each holds bytes (p, p+1, p+2, p+3) as p | p+1<<8 | ... Fold to 16
    // bits: the low byte of each half came from the earlier position.
    let f = s;
    while (f > 0xffff) f = (f & 0xffff) + Math.floor(f / 65536);
    const earlier = f & 0xff;
    const later = f >> 8;
    if (((i - from) & 1) === 0) { hi += earlier; lo += later; } else { lo += earlier; hi += later; }
    i += nWords << 2;
  }
  for (; i < to; i++) {
    if (((i - from) & 1) === 0) hi += frame[i]!;
    else lo += frame[i]!;
  }
  return initial + hi * 256 + lo;
}

/** Headers (IPv4's 20 bytes, pseudo-headers): a plain loop beats setting up the word view. */
function sum16Short(frame: Uint8Array, from: number, to: number, initial: number): number {
  let s = initial;
  let i = from;
  for (; i + 1 < to; i += 2) s += (frame[i]! << 8) | frame[i + 1]!;
  if (i < to) s += frame[i]! << 8;
  return s;
}

export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}
