// Netlink's wire format: messages (struct nlmsghdr + a fixed header + attributes) written into
// one growing buffer, and read back with every length checked against the bytes that arrived.
// Replies are input like any other: a truncated or garbled one is reported, never trusted.
import { NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK, NLMSG_HDRLEN } from "./uapi.ts";

const align4 = (n: number) => (n + 3) & ~3;
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
  private msgStart = -1;
  private readonly nests: number[] = [];

  constructor(size = 4096) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.len = 0;
    this.msgStart = -1;
    this.nests.length = 0;
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Starts a message; its length is filled in by endMessage. */
  beginMessage(type: number, flags: number, seq: number): void {
    this.room(NLMSG_HDRLEN);
    this.msgStart = this.len;
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
    this.room(align4(n));
    const at = this.len;
    this.buf.fill(0, at, at + align4(n));
    this.len += align4(n);
    return at;
  }

  private attrHeader(type: number, payload: number): number {
    this.room(NLA_HDRLEN + align4(payload));
    const at = this.len;
    this.view.setUint16(at, NLA_HDRLEN + payload, true);
    this.view.setUint16(at + 2, type, true);
    this.len += NLA_HDRLEN;
    return at;
  }

  private pad(payload: number): void {
    const padded = align4(payload);
    if (padded > payload) this.buf.fill(0, this.len + payload, this.len + padded);
    this.len += padded;
  }

  bytes(type: number, data: Uint8Array): void {
    this.attrHeader(type, data.length);
    this.buf.set(data, this.len);
    this.pad(data.length);
  }

  u8(type: number, v: number): void {
    this.attrHeader(type, 1);
    this.view.setUint8(this.len, v);
    this.pad(1);
  }

  u16(type: number, v: number): void {
    this.attrHeader(type, 2);
    this.view.setUint16(this.len, v, true);
    this.pad(2);
  }

  /** Network byte order (ports). */
  u16be(type: number, v: number): void {
    this.attrHeader(type, 2);
    this.view.setUint16(this.len, v, false);
    this.pad(2);
  }

  u32(type: number, v: number): void {
    this.attrHeader(type, 4);
    this.view.setUint32(this.len, v >>> 0, true);
    this.pad(4);
  }

  s32(type: number, v: number): void {
    this.attrHeader(type, 4);
    this.view.setInt32(this.len, v, true);
    this.pad(4);
  }

  /** A NUL-terminated string. */
  string(type: number, s: string): void {
    const b = encoder.encode(s);
    this.attrHeader(type, b.length + 1);
    this.buf.set(b, this.len);
    this.buf[this.len + b.length] = 0;
    this.pad(b.length + 1);
  }

  beginNest(type: number): void {
    this.nests.push(this.attrHeader(type | NLA_F_NESTED, 0));
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
      off += align4(len);
    }
  }

  has(type: number): boolean {
    return type <= this.maxType && this.at[type * 2]! >= 0;
  }

  private span(type: number, min: number): number {
    if (type > this.maxType) return -1;
    const s = this.at[type * 2]!;
    if (s < 0 || this.at[type * 2 + 1]! - s < min) return -1;
    return s;
  }

  u8(type: number): number | undefined {
    const s = this.span(type, 1);
    return s < 0 ? undefined : this.buf[s];
  }

  u16be(type: number): number | undefined {
    const s = this.span(type, 2);
    return s < 0 ? undefined : this.view.getUint16(s, false);
  }

  u32(type: number): number | undefined {
    const s = this.span(type, 4);
    return s < 0 ? undefined : this.view.getUint32(s, true);
  }

  s32(type: number): number | undefined {
    const s = this.span(type, 4);
    return s < 0 ? undefined : this.view.getInt32(s, true);
  }

  /** A string attribute, up to its NUL. */
  string(type: number): string | undefined {
    const s = this.span(type, 0);
    if (s < 0) return undefined;
    let e = this.at[type * 2 + 1]!;
    const nul = this.buf.indexOf(0, s);
    if (nul >= 0 && nul < e) e = nul;
    return decoder.decode(this.buf.subarray(s, e));
  }

  bytes(type: number): Uint8Array | undefined {
    const s = this.span(type, 0);
    return s < 0 ? undefined : this.buf.subarray(s, this.at[type * 2 + 1]!);
  }

  nested(type: number, maxType: number): Attrs | undefined {
    const s = this.span(type, 0);
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
 * Walks the messages of one datagram. A header whose length is too small or runs past the
 * bytes received is an error: nothing after it can be located.
 */
export function* messages(buf: Uint8Array, view: DataView, len: number): Generator<NlMessage> {
  let off = 0;
  while (off + NLMSG_HDRLEN <= len) {
    const msgLen = view.getUint32(off, true);
    if (msgLen < NLMSG_HDRLEN || off + msgLen > len) {
      throw new NetlinkParseError(`reply truncated or garbled at byte ${off} (message length ${msgLen}, ${len - off} bytes left)`);
    }
    yield { type: view.getUint16(off + 4, true), flags: view.getUint16(off + 6, true), seq: view.getUint32(off + 8, true), body: off + NLMSG_HDRLEN, end: off + msgLen };
    off += align4(msgLen);
  }
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
