// Netlink's wire format: messages (struct nlmsghdr + a fixed header + attributes) written into
// one growing buffer, and read back with every length checked against the bytes that arrived.
// Replies are input like any other: a truncated or garbled one is reported, never trusted.
// Alignment is written out inline ((n + 3) & ~3): a helper called once per attribute was the
// one function hot enough for the JIT to compile, on a thread of its own, in every plugin run.
import { NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK, NLMSG_HDRLEN } from "./uapi.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class NetlinkParseError extends Error {
  constructor(message: string) {
    super(`netlink: ${message}`);
    this.name = "NetlinkParseError";
  }
}

/** Builds one or more netlink messages back to back (native byte order: little-endian here). */
export class NlWriter {
  buf: Uint8Array;
  view: DataView;
  len = 0;
  /** Where each message of the buffer starts. */
  readonly msgOffsets: number[] = [];
  private msgStart = -1;
  private readonly nests: number[] = [];

  constructor(size = 4096) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.len = 0;
    this.msgOffsets.length = 0;
    this.msgStart = -1;
    this.nests.length = 0;
  }

  /** Makes room for `n` more bytes (callers test first: this runs rarely). */
  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Starts a message; its length is filled in by endMessage. */
  beginMessage(type: number, flags: number, seq: number): void {
    if (this.len + NLMSG_HDRLEN > this.buf.length) this.grow(NLMSG_HDRLEN);
    this.msgStart = this.len;
    this.msgOffsets.push(this.len);
    const v = this.view;
    v.setUint32(this.len, 0, true);
    v.setUint16(this.len + 4, type, true);
    v.setUint16(this.len + 6, flags, true);
    v.setUint32(this.len + 8, seq >>> 0, true);
    v.setUint32(this.len + 12, 0, true);
    this.len += NLMSG_HDRLEN;
  }

  endMessage(): void {
    if (this.nests.length) throw new Error("netlink writer: unclosed nest");
    this.view.setUint32(this.msgStart, this.len - this.msgStart, true);
    this.msgStart = -1;
  }

  /** Zeroed bytes for a fixed header (ifinfomsg and friends); returns their offset. */
  fixed(n: number): number {
    if (this.len + n + 4 > this.buf.length) this.grow(n + 4);
    const at = this.len;
    this.buf.fill(0, at, at + ((n + 3) & ~3));
    this.len += ((n + 3) & ~3);
    return at;
  }

  // Each writer below writes its attribute header inline: one shared helper called per attribute
  // is what the JIT would find hot (see the note at the top).
  bytes(type: number, data: Uint8Array): void {
    const n = data.length, padded = (n + 3) & ~3;
    if (this.len + 4 + padded > this.buf.length) this.grow(4 + padded);
    const v = this.view, at = this.len;
    v.setUint16(at, 4 + n, true);
    v.setUint16(at + 2, type, true);
    this.buf.set(data, at + 4);
    this.buf.fill(0, at + 4 + n, at + 4 + padded);
    this.len = at + 4 + padded;
  }

  u8(type: number, x: number): void {
    if (this.len + 8 > this.buf.length) this.grow(8);
    const v = this.view, at = this.len;
    v.setUint16(at, 5, true);
    v.setUint16(at + 2, type, true);
    v.setUint32(at + 4, x & 0xff, true); // the byte and its 3 bytes of padding
    this.len = at + 8;
  }

  u16(type: number, x: number): void {
    if (this.len + 8 > this.buf.length) this.grow(8);
    const v = this.view, at = this.len;
    v.setUint16(at, 6, true);
    v.setUint16(at + 2, type, true);
    v.setUint32(at + 4, x & 0xffff, true);
    this.len = at + 8;
  }

  /** Network byte order (ports). */
  u16be(type: number, x: number): void {
    if (this.len + 8 > this.buf.length) this.grow(8);
    const v = this.view, at = this.len;
    v.setUint16(at, 6, true);
    v.setUint16(at + 2, type, true);
    v.setUint16(at + 4, x, false);
    v.setUint16(at + 6, 0, true);
    this.len = at + 8;
  }

  u32(type: number, x: number): void {
    if (this.len + 8 > this.buf.length) this.grow(8);
    const v = this.view, at = this.len;
    v.setUint16(at, 8, true);
    v.setUint16(at + 2, type, true);
    v.setUint32(at + 4, x >>> 0, true);
    this.len = at + 8;
  }

  s32(type: number, x: number): void {
    if (this.len + 8 > this.buf.length) this.grow(8);
    const v = this.view, at = this.len;
    v.setUint16(at, 8, true);
    v.setUint16(at + 2, type, true);
    v.setInt32(at + 4, x, true);
    this.len = at + 8;
  }

  /** A NUL-terminated string. */
  string(type: number, s: string): void {
    this.bytes(type, encoder.encode(s + "\0"));
  }

  beginNest(type: number): void {
    if (this.len + 4 > this.buf.length) this.grow(4);
    const at = this.len;
    this.view.setUint16(at, 4, true);
    this.view.setUint16(at + 2, type | NLA_F_NESTED, true);
    this.len = at + 4;
    this.nests.push(at);
  }

  endNest(): void {
    const at = this.nests.pop();
    if (at === undefined) throw new Error("netlink writer: endNest without beginNest");
    this.view.setUint16(at, this.len - at, true);
  }
}

/**
 * The attributes of one message (or nest), by type: start and end offsets of each payload in
 * the buffer, -1 when absent. Types above `maxType` are skipped; a repeated type keeps the first.
 * A length that runs past `end` stops the walk and sets `garbled`: the attributes before it stand.
 */
export class Attrs {
  readonly at: Int32Array;
  garbled = false;

  constructor(readonly buf: Uint8Array, readonly view: DataView, start: number, end: number, readonly maxType: number) {
    this.at = new Int32Array((maxType + 1) * 2).fill(-1);
    let off = start;
    while (off + NLA_HDRLEN <= end) {
      const len = view.getUint16(off, true);
      if (len < NLA_HDRLEN || off + len > end) {
        this.garbled = true;
        break;
      }
      const type = view.getUint16(off + 2, true) & NLA_TYPE_MASK;
      if (type <= maxType && this.at[type * 2] === -1) {
        this.at[type * 2] = off + NLA_HDRLEN;
        this.at[type * 2 + 1] = off + len;
      }
      off += ((len + 3) & ~3);
    }
  }

  has(type: number): boolean {
    return type <= this.maxType && this.at[type * 2]! >= 0;
  }

  // The accessors look their attribute up inline: a shared lookup helper called for every
  // accessor was hot enough for the JIT (see the note at the top).
  u8(type: number): number | undefined {
    const s = type <= this.maxType ? this.at[type * 2]! : -1;
    return s < 0 || this.at[type * 2 + 1]! - s < 1 ? undefined : this.buf[s];
  }

  u16be(type: number): number | undefined {
    const s = type <= this.maxType ? this.at[type * 2]! : -1;
    return s < 0 || this.at[type * 2 + 1]! - s < 2 ? undefined : this.view.getUint16(s, false);
  }

  u32(type: number): number | undefined {
    const s = type <= this.maxType ? this.at[type * 2]! : -1;
    return s < 0 || this.at[type * 2 + 1]! - s < 4 ? undefined : this.view.getUint32(s, true);
  }

  s32(type: number): number | undefined {
    const s = type <= this.maxType ? this.at[type * 2]! : -1;
    return s < 0 || this.at[type * 2 + 1]! - s < 4 ? undefined : this.view.getInt32(s, true);
  }

  /** A string attribute, up to its NUL. */
  string(type: number): string | undefined {
    const s = type <= this.maxType ? this.at[type * 2]! : -1;
    if (s < 0) return undefined;
    let e = this.at[type * 2 + 1]!;
    const nul = this.buf.indexOf(0, s);
    if (nul >= 0 && nul < e) e = nul;
    return decoder.decode(this.buf.subarray(s, e));
  }

  bytes(type: number): Uint8Array | undefined {
    const s = type <= this.maxType ? this.at[type * 2]! : -1;
    return s < 0 ? undefined : this.buf.subarray(s, this.at[type * 2 + 1]!);
  }

  nested(type: number, maxType: number): Attrs | undefined {
    const s = type <= this.maxType ? this.at[type * 2]! : -1;
    return s < 0 ? undefined : new Attrs(this.buf, this.view, s, this.at[type * 2 + 1]!, maxType);
  }
}

/** One message inside a received datagram. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** Offset of the payload (after struct nlmsghdr) and the message's end. */
  body: number;
  end: number;
}

/**
 * The messages of one datagram, in order. A header whose length is too small or runs past the
 * bytes received is an error: nothing after it can be located. (A plain loop into an array, not
 * a generator: a generator's next() is a built-in that a few dozen calls make hot enough for the
 * JIT, which then starts a compiler thread in every plugin run.)
 */
export function messages(buf: Uint8Array, view: DataView, len: number): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= len) {
    const msgLen = view.getUint32(off, true);
    if (msgLen < NLMSG_HDRLEN || off + msgLen > len) {
      throw new NetlinkParseError(`reply truncated or garbled at byte ${off} (message length ${msgLen}, ${len - off} bytes left)`);
    }
    out.push({ type: view.getUint16(off + 4, true), flags: view.getUint16(off + 6, true), seq: view.getUint32(off + 8, true), body: off + NLMSG_HDRLEN, end: off + msgLen });
    off += ((msgLen + 3) & ~3);
  }
  return out;
}

export function formatMac(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (i ? ":" : "") + (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}

/** "0a:58:0a:f4:01:01" to 6 bytes; undefined when it is not a MAC. */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(":");
  if (parts.length !== 6) return undefined;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(parts[i]!)) return undefined;
    out[i] = parseInt(parts[i]!, 16);
  }
  return out;
}
