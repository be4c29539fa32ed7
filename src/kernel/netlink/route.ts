// Routes in the main table: read them (optionally those through one device), and add, replace
// or delete one: onlink via a VTEP address, via a node IP, a pod's default route, with an MTU
// or a metric.
import { type Family, formatIPBytes, ipBytes, prefixBytes } from "../../net/cidr.ts";
import type { DevRef } from "./link.ts";
import type { Request } from "./socket.ts";
import { AF_INET, AF_INET6, NLM_F, RTA, RTAX, RTM, RTMSG_LEN, RTN, RTNH_F, RTPROT, RT_SCOPE, RT_TABLE } from "./uapi.ts";
import { Attrs, type NlMessage, type NlWriter } from "./wire.ts";

export interface Route {
  family: 4 | 6;
  /** Destination as a prefix: "10.244.2.0/24", "0.0.0.0/0" for the default route. */
  dst: string;
  gateway?: string;
  /** ifindex of the outgoing device. */
  oif?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  /** RTNH_F_* flags (onlink = 4). */
  flags: number;
  priority?: number;
  prefsrc?: string;
}

export function isOnlink(r: Route): boolean {
  return (r.flags & RTNH_F.ONLINK) !== 0;
}

export function parseRoute(buf: Uint8Array, view: DataView, m: NlMessage): Route | undefined {
  if (m.end - m.body < RTMSG_LEN) return undefined;
  const fam = buf[m.body];
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const family = fam === AF_INET ? 4 : 6;
  const dstLen = buf[m.body + 1]!;
  if (dstLen > (family === 4 ? 32 : 128)) return undefined;
  const a = new Attrs(buf, view, m.body + RTMSG_LEN, m.end, RTA.TABLE);
  const table = a.u32(RTA.TABLE) ?? buf[m.body + 4]!;
  const dstBytes = a.bytes(RTA.DST);
  let dst: string | undefined;
  if (dstBytes) dst = formatIPBytes(dstBytes);
  else dst = family === 4 ? "0.0.0.0" : "::";
  if (!dst) return undefined;
  const gwBytes = a.bytes(RTA.GATEWAY);
  const srcBytes = a.bytes(RTA.PREFSRC);
  const r: Route = {
    family, dst: `${dst}/${dstLen}`, table, protocol: buf[m.body + 5]!, scope: buf[m.body + 6]!, type: buf[m.body + 7]!,
    flags: view.getUint32(m.body + 8, true),
  };
  const gw = gwBytes ? formatIPBytes(gwBytes) : undefined;
  if (gw) r.gateway = gw;
  const oif = a.u32(RTA.OIF);
  if (oif) r.oif = oif;
  const prio = a.u32(RTA.PRIORITY);
  if (prio !== undefined) r.priority = prio;
  const src = srcBytes ? formatIPBytes(srcBytes) : undefined;
  if (src) r.prefsrc = src;
  return r;
}

/** Routes of the main table of one family; with `oif`, the kernel (strict dumps) keeps only that device's. */
export function dumpRoutes(family: 4 | 6, oif?: DevRef): Request {
  return {
    what: `list ${family === 6 ? "IPv6 " : ""}routes${oif ? ` dev ${oif.name}` : ""}`, type: RTM.GETROUTE, flags: 0,
    body: (w) => {
      const at = w.fixed(RTMSG_LEN);
      w.view.setUint8(at, family === 4 ? AF_INET : AF_INET6);
      w.u32(RTA.TABLE, RT_TABLE.MAIN);
      if (oif) w.u32(RTA.OIF, oif.index);
    },
  };
}

export interface RouteSpec {
  /** "10.244.2.0/24", "0.0.0.0/0" (or "default"). */
  dst: string;
  via?: string;
  dev: DevRef;
  onlink?: boolean;
  mtu?: number;
  metric?: number;
  /** Scope link when there is no gateway (a directly connected prefix), universe otherwise. */
  scope?: number;
  /** rtm_protocol: who made the route (default RTPROT_BOOT, as ip route add). */
  protocol?: number;
}

function prefixOf(dst: string, family?: Family): { family: Family; bytes: Uint8Array; bits: number } {
  if (dst === "default") return { family: family ?? 4, bytes: new Uint8Array(family === 6 ? 16 : 4), bits: 0 };
  const p = prefixBytes(dst.includes("/") ? dst : `${dst}/${dst.includes(":") ? 128 : 32}`);
  if (!p) throw new Error(`route destination ${JSON.stringify(dst)} is not a prefix`);
  return p;
}

function describe(verb: string, r: RouteSpec): string {
  return `${verb} route ${r.dst}${r.via ? ` via ${r.via}` : ""} dev ${r.dev.name}${r.onlink ? " onlink" : ""}${r.mtu ? ` mtu ${r.mtu}` : ""}${r.metric ? ` metric ${r.metric}` : ""}`;
}

function rtmsg(w: NlWriter, r: RouteSpec, forDelete: boolean): void {
  const gw = r.via ? ipBytes(r.via) : undefined;
  if (r.via && !gw) throw new Error(`route ${r.dst}: gateway ${JSON.stringify(r.via)} is not an IP address`);
  const p = prefixOf(r.dst, gw?.family);
  if (gw && gw.family !== p.family) throw new Error(`route ${r.dst}: gateway ${r.via} is of the other address family`);
  const at = w.fixed(RTMSG_LEN);
  const v = w.view;
  v.setUint8(at, p.family === 4 ? AF_INET : AF_INET6);
  v.setUint8(at + 1, p.bits);
  v.setUint8(at + 4, RT_TABLE.MAIN);
  v.setUint8(at + 5, r.protocol ?? (forDelete ? RTPROT.UNSPEC : RTPROT.BOOT));
  v.setUint8(at + 6, forDelete ? RT_SCOPE.NOWHERE : (r.scope ?? (gw ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK)));
  v.setUint8(at + 7, forDelete ? 0 : RTN.UNICAST);
  v.setUint32(at + 8, r.onlink && !forDelete ? RTNH_F.ONLINK : 0, true);
  if (p.bits > 0) w.bytes(RTA.DST, p.bytes);
  if (gw) w.bytes(RTA.GATEWAY, gw.bytes);
  w.u32(RTA.OIF, r.dev.index);
  if (r.metric !== undefined) w.u32(RTA.PRIORITY, r.metric);
  if (r.mtu) {
    w.beginNest(RTA.METRICS);
    w.u32(RTAX.MTU, r.mtu);
    w.endNest();
  }
}

/** A new route (EEXIST when that destination is routed already). */
export function addRoute(r: RouteSpec): Request {
  return { what: describe("add", r), type: RTM.NEWROUTE, flags: NLM_F.CREATE | NLM_F.EXCL, body: (w) => rtmsg(w, r, false) };
}

/** Adds the route or replaces the one for its destination. */
export function replaceRoute(r: RouteSpec): Request {
  return { what: describe("replace", r), type: RTM.NEWROUTE, flags: NLM_F.CREATE | NLM_F.REPLACE, body: (w) => rtmsg(w, r, false) };
}

/** Deletes the route to `dst` through `dev` (ESRCH when there is none). */
export function delRoute(r: RouteSpec): Request {
  return { what: describe("delete", r), type: RTM.DELROUTE, flags: 0, body: (w) => rtmsg(w, r, true) };
}

/** A route as text, as in messages and doctor's evidence. */
export function formatRoute(r: Route, devName?: (index: number) => string | undefined): string {
  const dev = r.oif ? devName?.(r.oif) ?? `#${r.oif}` : undefined;
  const dst = r.dst === "0.0.0.0/0" || r.dst === "::/0" ? "default" : r.dst;
  return `${dst}${r.gateway ? ` via ${r.gateway}` : ""}${dev ? ` dev ${dev}` : ""}${isOnlink(r) ? " onlink" : ""}`;
}
