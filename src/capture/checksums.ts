// TCP/UDP checksum verification for a decoded packet, in one pass over its bytes: segments are
// nested (inner TCP inside the outer tunnel UDP), so each segment's sum is its own bytes plus
// the sum of the segment inside it, computed first. States (see ChecksumState): ok, bad, and
// the two capture artefacts of checksum offload: "partial" (the field holds only the
// pseudo-header sum the sender left for the NIC/veth) and "lco" (a tunnel's outer UDP checksum
// computed ahead for the final inner value: Linux's local checksum offload).
import { fold, sum16 } from "./decode/context.ts";
import type { Dissection, TcpLayer, UdpLayer } from "./decode/layers.ts";

function swap16(x: number): number {
  const f = fold(x);
  return ((f & 0xff) << 8) | (f >> 8);
}

export function verifyChecksums(d: Dissection): void {
  const segs = d.layers.filter((l): l is TcpLayer | UdpLayer => (l.kind === "tcp" || l.kind === "udp"));
  if (segs.length === 0) return;
  const f = d.frame;
  // Raw byte sums of each segment (no pseudo-header), innermost first.
  const raw = new Array<number>(segs.length);
  for (let i = segs.length - 1; i >= 0; i--) {
    const s = segs[i]!;
    const inner = segs[i + 1];
    if (inner && inner.offset >= s.offset && inner.segEnd <= s.segEnd) {
      // Bytes at an odd distance from the segment's start sit byte-swapped in its sum.
      const lane = (from: number, sum: number) => ((from - s.offset) & 1 ? swap16(sum) : sum);
      raw[i] = sum16(f, s.offset, inner.offset) + lane(inner.offset, raw[i + 1]!) + lane(inner.segEnd, sum16(f, inner.segEnd, s.segEnd));
    } else {
      raw[i] = s.checksumState === "bad" ? sum16(f, s.offset, s.segEnd) : 0;
    }
  }
  for (let i = segs.length - 1; i >= 0; i--) {
    const s = segs[i]!;
    if (s.checksumState !== "bad") continue; // unchecked or none: nothing to verify
    if (fold(raw[i]! + s.pseudo) === 0xffff) {
      s.checksumState = "ok";
      continue;
    }
    const partial = fold(s.pseudo);
    if (s.checksum === partial || (partial === 0xffff && s.checksum === 0)) {
      s.checksumState = "partial";
      continue;
    }
    // Local checksum offload: right once the inner partial checksum holds its final value.
    const inner = segs[i + 1];
    if (inner && inner.checksumState === "partial" && inner.offset > s.offset && inner.segEnd <= s.segEnd) {
      const finalInner = ~fold(raw[i + 1]! + inner.pseudo - inner.checksum + 0xffff) & 0xffff;
      const delta = finalInner + (0xffff - inner.checksum);
      const adjusted = raw[i]! + ((inner.offset - s.offset) & 1 ? swap16(delta) : delta);
      if (fold(adjusted + s.pseudo) === 0xffff) s.checksumState = "lco";
    }
  }
}
