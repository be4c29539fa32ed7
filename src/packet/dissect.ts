// One packet in, one Dissection out: link layer by link type, then each header in turn, the
// inner frames of tunnels recursively; then the tunnel's per-layer sizes, which are what gauze
// is for: outer IP 134 bytes, inner IP 84, encapsulation 50 for a 64-byte ping over VXLAN.
import { DecodeContext, type DecodeOptions } from "./decode/context.ts";
import { verifyChecksums } from "./checksums.ts";
import type { Dissection, Ipv4Layer, Ipv6Layer, Layer, Sealed, Tunnel, WireguardLayer } from "./decode/layers.ts";
import { decodeEthernet, decodeLink } from "./decode/link.ts";
import { decodeEtherType } from "./decode/network.ts";
/** A captured frame: its bytes (maybe cut short), its length on the wire, and the link type. */
export interface Frame { data: Uint8Array; wireLen: number; linkType: number }

export const DEFAULT_VXLAN_PORTS = [8472, 4789];
export const DEFAULT_GENEVE_PORTS = [6081];
export const DEFAULT_WIREGUARD_PORTS = [51820];

export function decodeOptions(o: { vxlanPorts?: number[]; genevePorts?: number[]; wireguardPorts?: number[]; detail?: boolean } = {}): DecodeOptions {
  return {
    vxlanPorts: new Set(o.vxlanPorts ?? DEFAULT_VXLAN_PORTS),
    genevePorts: new Set(o.genevePorts ?? DEFAULT_GENEVE_PORTS),
    wireguardPorts: new Set(o.wireguardPorts ?? DEFAULT_WIREGUARD_PORTS),
    detail: o.detail ?? true,
  };
}

/** A tunnel's inner frame is decoded by the same link and network decoders as the outer one. */
const INNER = { ethernet: decodeEthernet, etherType: decodeEtherType };

export function dissect(p: Frame, opts: DecodeOptions): Dissection {
  const d: Dissection = { frame: p.data, wireLen: p.wireLen, linkType: p.linkType, layers: [] };
  const ctx = new DecodeContext(p.data, d, opts, INNER);
  try {
    decodeLink(ctx, p.linkType);
  } catch (e) {
    // A decoder bug must not end the run: the packet is reported, the next one decoded.
    ctx.malformed("decoder", 0, `internal decoder error: ${(e as Error).message}`);
  }
  const t = findTunnel(d.layers, p.wireLen);
  if (t) d.tunnel = t;
  const s = findSealed(d.layers);
  if (s) d.sealed = s;
  if (opts.detail) verifyChecksums(d);
  return d;
}

export function ipLength(l: Ipv4Layer | Ipv6Layer): number {
  return l.kind === "ipv4" ? l.totalLen : 40 + l.payloadLen;
}

function isIp(l: Layer | undefined): l is Ipv4Layer | Ipv6Layer {
  return l !== undefined && (l.kind === "ipv4" || l.kind === "ipv6");
}

/** A WireGuard transport message: the outer IP header's length and what the sealed packet takes. */
function findSealed(layers: Layer[]): Sealed | undefined {
  const i = layers.findIndex((l) => l.kind === "wireguard" && l.msgType === 4);
  if (i < 0) return undefined;
  const wg = layers[i] as WireguardLayer;
  let outer = i - 1;
  while (outer >= 0 && !isIp(layers[outer])) outer--;
  if (outer < 0 || wg.sealedLen === undefined) return undefined;
  const outerIpLen = ipLength(layers[outer] as Ipv4Layer | Ipv6Layer);
  return { kind: "wireguard", outerIpLen, innerPaddedLen: wg.sealedLen, overheadBytes: outerIpLen - wg.sealedLen };
}

/** The outermost tunnel: its outer IP header, and the first IP header inside it. */
function findTunnel(layers: Layer[], wireLen: number): Tunnel | undefined {
  for (let i = 0; i < layers.length; i++) {
    const t = layers[i]!;
    if (t.kind !== "vxlan" && t.kind !== "geneve") continue;
    let outer = i - 1;
    while (outer >= 0 && !(isIp(layers[outer]) && layers[outer]!.depth === t.depth)) outer--;
    let inner = i + 1;
    while (inner < layers.length && !(isIp(layers[inner]) && layers[inner]!.depth === t.depth + 1)) inner++;
    if (outer < 0 || inner >= layers.length) return undefined;
    const o = layers[outer] as Ipv4Layer | Ipv6Layer;
    const n = layers[inner] as Ipv4Layer | Ipv6Layer;
    const innerStart = layers[i + 1]?.offset ?? n.offset;
    return {
      kind: t.kind, vni: t.vni, outerIp: outer, tunnelLayer: i, innerIp: inner,
      outerIpLen: ipLength(o), innerIpLen: ipLength(n), encapBytes: n.offset - o.offset,
      outerFrameLen: wireLen, innerFrameLen: n.offset - innerStart + ipLength(n),
    };
  }
  return undefined;
}
