// Neighbours: permanent ARP/NDP entries (a peer's VTEP address -> its VTEP MAC) and bridge FDB
// entries of a VXLAN device (a VTEP MAC -> the node IP to send the UDP packet to).
import { formatIPBytes, ipBytes } from "../../net/cidr.ts";
import type { DevRef } from "./link.ts";
import type { Request } from "./socket.ts";
import { AF_BRIDGE, AF_INET, AF_INET6, NDA, NDMSG_LEN, NLM_F, NTF, NUD, RTM } from "./uapi.ts";
import { Attrs, type NlMessage, type NlWriter, formatMac, parseMac } from "./wire.ts";

export interface Neigh {
  family: 4 | 6;
  index: number;
  dst: string;
  lladdr?: string;
  /** NUD_* state bits. */
  state: number;
  flags: number;
}

export interface FdbEntry {
  index: number;
  mac: string;
  /** The remote (node IP) of a VXLAN entry. */
  dst?: string;
  state: number;
  flags: number;
  master?: number;
}

export const isPermanent = (n: { state: number }) => (n.state & NUD.PERMANENT) !== 0;

function header(buf: Uint8Array, view: DataView, m: NlMessage) {
  if (m.end - m.body < NDMSG_LEN) return undefined;
  return {
    family: buf[m.body]!, index: view.getInt32(m.body + 4, true), state: view.getUint16(m.body + 8, true), flags: buf[m.body + 10]!,
    attrs: new Attrs(buf, view, m.body + NDMSG_LEN, m.end, NDA.MASTER),
  };
}

/** An RTM_NEWNEIGH message of an IP family; undefined for FDB messages and garbage. */
export function parseNeigh(buf: Uint8Array, view: DataView, m: NlMessage): Neigh | undefined {
  const h = header(buf, view, m);
  if (!h || (h.family !== AF_INET && h.family !== AF_INET6)) return undefined;
  const dstBytes = h.attrs.bytes(NDA.DST);
  const dst = dstBytes && dstBytes.length === (h.family === AF_INET ? 4 : 16) ? formatIPBytes(dstBytes) : undefined;
  if (!dst) return undefined;
  const ll = h.attrs.bytes(NDA.LLADDR);
  const n: Neigh = { family: h.family === AF_INET ? 4 : 6, index: h.index, dst, state: h.state, flags: h.flags };
  if (ll && ll.length === 6) n.lladdr = formatMac(ll);
  return n;
}

/** An AF_BRIDGE RTM_NEWNEIGH message (an FDB entry); undefined otherwise. */
export function parseFdb(buf: Uint8Array, view: DataView, m: NlMessage): FdbEntry | undefined {
  const h = header(buf, view, m);
  if (!h || h.family !== AF_BRIDGE) return undefined;
  const ll = h.attrs.bytes(NDA.LLADDR);
  if (!ll || ll.length !== 6) return undefined;
  const e: FdbEntry = { index: h.index, mac: formatMac(ll), state: h.state, flags: h.flags };
  const dstBytes = h.attrs.bytes(NDA.DST);
  const dst = dstBytes && (dstBytes.length === 4 || dstBytes.length === 16) ? formatIPBytes(dstBytes) : undefined;
  if (dst) e.dst = dst;
  const master = h.attrs.u32(NDA.MASTER);
  if (master) e.master = master;
  return e;
}

function ndmsg(w: NlWriter, family: number, index: number, state: number, flags: number): void {
  const at = w.fixed(NDMSG_LEN);
  w.view.setUint8(at, family);
  w.view.setInt32(at + 4, index, true);
  w.view.setUint16(at + 8, state, true);
  w.view.setUint8(at + 10, flags);
}

/** Neighbours of one family; with `dev`, the kernel (strict dumps) keeps only that device's. */
export function dumpNeighs(family: 4 | 6, dev?: DevRef): Request {
  return {
    what: `list ${family === 6 ? "IPv6 " : ""}neighbours${dev ? ` dev ${dev.name}` : ""}`, type: RTM.GETNEIGH, flags: 0,
    body: (w) => {
      ndmsg(w, family === 4 ? AF_INET : AF_INET6, 0, 0, 0);
      if (dev) w.u32(NDA.IFINDEX, dev.index);
    },
  };
}

/** FDB entries of one device (a VXLAN device's remotes, or a bridge port's). */
export function dumpFdb(dev: DevRef): Request {
  return { what: `list fdb dev ${dev.name}`, type: RTM.GETNEIGH, flags: 0, body: (w) => ndmsg(w, AF_BRIDGE, dev.index, 0, 0) };
}

function addrBytes(text: string, what: string): { family: 4 | 6; bytes: Uint8Array } {
  const ip = ipBytes(text);
  if (!ip) throw new Error(`${what}: ${JSON.stringify(text)} is not an IP address`);
  return ip;
}

function macBytes(text: string, what: string): Uint8Array {
  const b = parseMac(text);
  if (!b) throw new Error(`${what}: ${JSON.stringify(text)} is not a MAC address`);
  return b;
}

/** A permanent neighbour entry, replacing whatever the kernel had for that address. */
export function replaceNeigh(dev: DevRef, dst: string, lladdr: string): Request {
  const what = `replace neighbour ${dst} lladdr ${lladdr} dev ${dev.name} nud permanent`;
  const ip = addrBytes(dst, what);
  const mac = macBytes(lladdr, what);
  return {
    what, type: RTM.NEWNEIGH, flags: NLM_F.CREATE | NLM_F.REPLACE,
    body: (w) => {
      ndmsg(w, ip.family === 4 ? AF_INET : AF_INET6, dev.index, NUD.PERMANENT, 0);
      w.bytes(NDA.DST, ip.bytes);
      w.bytes(NDA.LLADDR, mac);
    },
  };
}

export function delNeigh(dev: DevRef, dst: string): Request {
  const what = `delete neighbour ${dst} dev ${dev.name}`;
  const ip = addrBytes(dst, what);
  return {
    what, type: RTM.DELNEIGH, flags: 0,
    body: (w) => {
      ndmsg(w, ip.family === 4 ? AF_INET : AF_INET6, dev.index, 0, 0);
      w.bytes(NDA.DST, ip.bytes);
    },
  };
}

/** A VXLAN FDB entry (`bridge fdb replace <mac> dev <dev> dst <ip> self permanent`). */
export function replaceFdb(dev: DevRef, mac: string, dst: string): Request {
  const what = `replace fdb ${mac} dev ${dev.name} dst ${dst} self permanent`;
  const ll = macBytes(mac, what);
  const ip = addrBytes(dst, what);
  return {
    what, type: RTM.NEWNEIGH, flags: NLM_F.CREATE | NLM_F.REPLACE,
    body: (w) => {
      ndmsg(w, AF_BRIDGE, dev.index, NUD.PERMANENT, NTF.SELF);
      w.bytes(NDA.LLADDR, ll);
      w.bytes(NDA.DST, ip.bytes);
    },
  };
}

/** Removes one remote of a VXLAN FDB entry. */
export function delFdb(dev: DevRef, mac: string, dst: string): Request {
  const what = `delete fdb ${mac} dev ${dev.name} dst ${dst} self`;
  const ll = macBytes(mac, what);
  const ip = addrBytes(dst, what);
  return {
    what, type: RTM.DELNEIGH, flags: 0,
    body: (w) => {
      ndmsg(w, AF_BRIDGE, dev.index, 0, NTF.SELF);
      w.bytes(NDA.LLADDR, ll);
      w.bytes(NDA.DST, ip.bytes);
    },
  };
}
