// TCP/UDP checksum verification for a decoded packet. States (see ChecksumState): ok, bad, and
// the two capture artefacts of checksum offload: "partial" (the field holds only the
// pseudo-header sum the sender left for the NIC/veth) and "lco" (a tunnel's outer UDP checksum
// computed ahead for the final inner value: Linux's local checksum offload).
// Segments nest (inner TCP inside the outer tunnel UDP). The cheap answers come first, and a
// segment's bytes are summed only when needed, at most once: "partial" needs the pseudo-header
// alone; "lco" needs only the outer bytes around the inner segment, because a segment whose
// checksum is right sums to a known value (the trick the kernel's LCO itself uses). On a
// capture taken on a veth, where both hold, no payload byte is read.
import { fold, sum16 } from "./decode/context.ts";
import type { Dissection, Layer, TcpLayer, UdpLayer } from "./decode/layers.ts";

type Segment = TcpLayer | UdpLayer;

function swap16(x: number): number {
  const f = fold(x);
  return ((f & 0xff) << 8) | (f >> 8);
}

// Scratch for one packet at a time (no allocation per packet).
const segs: Segment[] = [];
const raw: number[] = [];
const NOT_SUMMED = -1;

function isSegment(l: Layer): l is Segment {
  return l.kind === "tcp" || l.kind === "udp";
}

/** Whether segment `i + 1` lies inside segment `i` (an inner TCP inside a tunnel's UDP). */
function hasInner(i: number): boolean {
  const s = segs[i]!;
  const inner = segs[i + 1];
  return inner !== undefined && inner.offset >= s.offset && inner.segEnd <= s.segEnd;
}

/** A sum of bytes starting `at` as it counts inside segment s (odd distance: byte-swapped). */
function lane(s: Segment, at: number, sum: number): number {
  return (at - s.offset) & 1 ? swap16(sum) : sum;
}

/** Raw byte sum of segment i (no pseudo-header), reusing the inner segment's sum. */
function rawSum(f: Uint8Array, i: number): number {
  const cached = raw[i]!;
  if (cached !== NOT_SUMMED) return cached;
  const s = segs[i]!;
  let v: number;
  if (hasInner(i)) {
    const inner = segs[i + 1]!;
    v = sum16(f, s.offset, inner.offset) + lane(s, inner.offset, rawSum(f, i + 1)) + lane(s, inner.segEnd, sum16(f, inner.segEnd, s.segEnd));
  } else {
    v = sum16(f, s.offset, s.segEnd);
  }
  raw[i] = v;
  return v;
}

export function verifyChecksums(d: Dissection): void {
  segs.length = 0;
  raw.length = 0;
  for (const l of d.layers) {
    if (isSegment(l)) {
      segs.push(l);
      raw.push(NOT_SUMMED);
    }
  }
  const f = d.frame;
  for (let i = segs.length - 1; i >= 0; i--) {
    const s = segs[i]!;
    if (s.checksumState !== "bad") continue; // unchecked or none: nothing to verify
    const partial = fold(s.pseudo);
    if (s.checksum === partial || (partial === 0xffff && s.checksum === 0)) {
      s.checksumState = "partial";
      continue;
    }
    if (hasInner(i) && segs[i + 1]!.checksumState === "partial") {
      // Local checksum offload: right once the inner checksum holds its final value, when the
      // inner segment's sum is whatever makes its own check pass: -pseudo, ones' complement.
      const inner = segs[i + 1]!;
      const innerFinal = 0xffff - fold(inner.pseudo);
      const outerSum = sum16(f, s.offset, inner.offset) + lane(s, inner.offset, innerFinal) + lane(s, inner.segEnd, sum16(f, inner.segEnd, s.segEnd));
      if (fold(outerSum + s.pseudo) === 0xffff) {
        s.checksumState = "lco";
        continue;
      }
    }
    if (fold(rawSum(f, i) + s.pseudo) === 0xffff) s.checksumState = "ok";
  }
  segs.length = 0; // no frame kept alive between packets
}
