// Address text for the formatters (the decoders keep numbers and offsets).
import { formatIP } from "../net/cidr.ts";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function macAt(f: Uint8Array, at: number): string {
  return `${HEX[f[at]!]}:${HEX[f[at + 1]!]}:${HEX[f[at + 2]!]}:${HEX[f[at + 3]!]}:${HEX[f[at + 4]!]}:${HEX[f[at + 5]!]}`;
}

export function ipv4Text(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export function ipv6At(f: Uint8Array, at: number): string {
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(f[at + i]!);
  return formatIP({ family: 6, value: v });
}
