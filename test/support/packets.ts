// Builders for synthetic frames and capture files, for unit tests of the reader and decoders.
// Lengths and checksums are computed as a real stack would, so a test can state what it expects.

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

const u16 = (v: number) => [(v >> 8) & 255, v & 255];
const u32 = (v: number) => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const ip4 = (s: string) => s.split(".").map(Number);
const mac = (s: string) => s.split(":").map((h) => parseInt(h, 16));

export function csum(bytes: Uint8Array | number[], initial = 0): number {
  let s = initial;
  for (let i = 0; i < bytes.length; i += 2) s += ((bytes[i]! << 8) | (bytes[i + 1] ?? 0));
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function eth(dst: string, src: string, etherType: number, payload: Uint8Array, vlan?: number): Uint8Array {
  const tag = vlan !== undefined ? [0x81, 0x00, ...u16(vlan)] : [];
  return concat(new Uint8Array([...mac(dst), ...mac(src), ...tag, ...u16(etherType)]), payload);
}

export function ipv4(src: string, dst: string, proto: number, payload: Uint8Array, opts: { id?: number; ttl?: number; options?: number[]; totalLen?: number; frag?: number } = {}): Uint8Array {
  const optBytes = opts.options ?? [];
  const ihl = 20 + optBytes.length;
  const total = opts.totalLen ?? ihl + payload.length;
  const h = [0x40 | (ihl / 4), 0, ...u16(total), ...u16(opts.id ?? 1), ...u16(opts.frag ?? 0x4000), opts.ttl ?? 64, proto, 0, 0, ...ip4(src), ...ip4(dst), ...optBytes];
  const c = csum(h);
  h[10] = c >> 8; h[11] = c & 255;
  return concat(new Uint8Array(h), payload);
}

function pseudo4(src: string, dst: string, proto: number, len: number): number[] {
  return [...ip4(src), ...ip4(dst), 0, proto, ...u16(len)];
}

export function udp(src: string, dst: string, sport: number, dport: number, payload: Uint8Array, opts: { checksum?: "none" | "ok" | "partial" } = {}): Uint8Array {
  const len = 8 + payload.length;
  const seg = new Uint8Array([...u16(sport), ...u16(dport), ...u16(len), 0, 0, ...payload]);
  const mode = opts.checksum ?? "none";
  if (mode !== "none") {
    const ps = pseudo4(src, dst, 17, len);
    let c: number;
    if (mode === "ok") c = csum([...ps, ...seg]);
    else { c = ~csum(ps) & 0xffff; }
    seg[6] = c >> 8; seg[7] = c & 255;
  }
  return seg;
}

export function icmpEcho(type: 8 | 0, id: number, seq: number, dataLen = 56): Uint8Array {
  const b = [type, 0, 0, 0, ...u16(id), ...u16(seq), ...Array.from({ length: dataLen }, (_, i) => i & 255)];
  const c = csum(b);
  b[2] = c >> 8; b[3] = c & 255;
  return new Uint8Array(b);
}

export function tcp(src: string, dst: string, sport: number, dport: number, flags: number, payload: Uint8Array, options: number[] = []): Uint8Array {
  const hl = 20 + options.length;
  const seg = [...u16(sport), ...u16(dport), ...u32(1000), ...u32(2000), (hl / 4) << 4, flags, ...u16(512), 0, 0, 0, 0, ...options, ...payload];
  const c = csum([...pseudo4(src, dst, 6, seg.length), ...seg]);
  seg[16] = c >> 8; seg[17] = c & 255;
  return new Uint8Array(seg);
}

export function vxlan(vni: number, inner: Uint8Array, flags = 0x08): Uint8Array {
  return concat(new Uint8Array([flags, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0]), inner);
}

/** A 64-byte ping (84-byte IP packet) from pod 10.244.0.2 to 10.244.1.3 across a VXLAN overlay between nodes. */
export function vxlanPing(opts: { vni?: number; port?: number; outerChecksum?: "none" | "ok" | "partial"; innerSrc?: string } = {}): Uint8Array {
  const inner = eth("0a:58:0a:f4:01:03", "0a:58:0a:f4:00:02", 0x0800, ipv4(opts.innerSrc ?? "10.244.0.2", "10.244.1.3", 1, icmpEcho(8, 7, 1)));
  const payload = vxlan(opts.vni ?? 1, inner);
  return eth("02:42:ac:12:00:03", "02:42:ac:12:00:02", 0x0800,
    ipv4("172.18.0.2", "172.18.0.3", 17, udp("172.18.0.2", "172.18.0.3", 40000, opts.port ?? 8472, payload, { checksum: opts.outerChecksum ?? "none" })));
}

export interface CapPacket { data: Uint8Array; wireLen?: number; ts?: number; iface?: number }

export function pcap(packets: CapPacket[], opts: { nano?: boolean; bigEndian?: boolean; linkType?: number; snaplen?: number } = {}): Uint8Array {
  const le = !opts.bigEndian;
  const parts: Uint8Array[] = [];
  const h = new DataView(new ArrayBuffer(24));
  h.setUint32(0, opts.nano ? 0xa1b23c4d : 0xa1b2c3d4, le);
  h.setUint16(4, 2, le); h.setUint16(6, 4, le);
  h.setUint32(16, opts.snaplen ?? 262144, le);
  h.setUint32(20, opts.linkType ?? 1, le);
  parts.push(new Uint8Array(h.buffer));
  for (const p of packets) {
    const r = new DataView(new ArrayBuffer(16));
    const ts = p.ts ?? 1700000000.25;
    r.setUint32(0, Math.floor(ts), le);
    r.setUint32(4, Math.round((ts % 1) * (opts.nano ? 1e9 : 1e6)), le);
    r.setUint32(8, p.data.length, le);
    r.setUint32(12, p.wireLen ?? p.data.length, le);
    parts.push(new Uint8Array(r.buffer), p.data);
  }
  return concat(...parts);
}

function block(type: number, body: Uint8Array, le: boolean): Uint8Array {
  const padded = (body.length + 3) & ~3;
  const len = 12 + padded;
  const b = new DataView(new ArrayBuffer(len));
  b.setUint32(0, type, le); b.setUint32(4, len, le); b.setUint32(len - 4, len, le);
  new Uint8Array(b.buffer).set(body, 8);
  return new Uint8Array(b.buffer);
}

export function pcapng(packets: CapPacket[], opts: { bigEndian?: boolean; ifaces?: { linkType: number; tsresol?: number }[]; simple?: boolean } = {}): Uint8Array {
  const le = !opts.bigEndian;
  const shb = new DataView(new ArrayBuffer(16));
  shb.setUint32(0, 0x1a2b3c4d, le); shb.setUint16(4, 1, le); shb.setUint16(6, 0, le);
  shb.setInt32(8, -1, le); shb.setInt32(12, -1, le);
  const parts = [block(0x0a0d0d0a, new Uint8Array(shb.buffer), le)];
  for (const iface of opts.ifaces ?? [{ linkType: 1 }]) {
    const opt = iface.tsresol !== undefined ? 8 : 0;
    const idb = new DataView(new ArrayBuffer(8 + opt + (opt ? 4 : 0)));
    idb.setUint16(0, iface.linkType, le); idb.setUint32(4, 262144, le);
    if (opt) { idb.setUint16(8, 9, le); idb.setUint16(10, 1, le); idb.setUint8(12, iface.tsresol!); }
    parts.push(block(1, new Uint8Array(idb.buffer), le));
  }
  for (const p of packets) {
    if (opts.simple) {
      const spb = new DataView(new ArrayBuffer(4));
      spb.setUint32(0, p.wireLen ?? p.data.length, le);
      parts.push(block(3, concat(new Uint8Array(spb.buffer), p.data), le));
      continue;
    }
    const resol = opts.ifaces?.[p.iface ?? 0]?.tsresol;
    const ups = resol === undefined ? 1e6 : resol & 0x80 ? 2 ** (resol & 0x7f) : 10 ** resol;
    const t = p.ts ?? 1700000000.25;
    const ts = BigInt(Math.floor(t)) * BigInt(ups) + BigInt(Math.round((t % 1) * ups));
    const epb = new DataView(new ArrayBuffer(20));
    epb.setUint32(0, p.iface ?? 0, le);
    epb.setUint32(4, Number(ts >> 32n), le); epb.setUint32(8, Number(ts & 0xffffffffn), le);
    epb.setUint32(12, p.data.length, le); epb.setUint32(16, p.wireLen ?? p.data.length, le);
    parts.push(block(6, concat(new Uint8Array(epb.buffer), p.data), le));
  }
  return concat(...parts);
}
