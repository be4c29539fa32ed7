// Kernel events: a netlink socket subscribed to link, address, route and neighbour (and FDB)
// changes in this namespace, read without blocking the event loop (node:fs read(2) runs in the
// runtime's I/O pool; a netlink socket answers it one datagram at a time). The agent learns within
// a millisecond that someone deleted or changed what it owns, instead of at its next resync.
import { read } from "node:fs";
import { type Addr, parseAddr } from "./addr.ts";
import { type Link, parseLink } from "./link.ts";
import { type FdbEntry, type Neigh, parseFdb, parseNeigh } from "./neigh.ts";
import { type Route, parseRoute } from "./route.ts";
import { NetlinkSocket } from "./socket.ts";
import { RTM, RTNLGRP } from "./uapi.ts";
import { type NlMessage, messages } from "./wire.ts";

export type KernelEvent =
  | { kind: "link"; op: "new" | "del"; link: Link }
  | { kind: "addr"; op: "new" | "del"; addr: Addr }
  | { kind: "route"; op: "new" | "del"; route: Route }
  | { kind: "neigh"; op: "new" | "del"; neigh: Neigh }
  | { kind: "fdb"; op: "new" | "del"; fdb: FdbEntry };

export interface KernelWatch {
  stop(): void;
}

export interface WatchOptions {
  /** Events of one datagram arrive together. */
  onEvents(events: KernelEvent[]): void;
  /** The kernel dropped events (the socket's buffer overflowed): read the whole state again. */
  onOverrun(): void;
  onError?(e: Error): void;
}

const ALL_GROUPS = [RTNLGRP.LINK, RTNLGRP.NEIGH, RTNLGRP.IPV4_IFADDR, RTNLGRP.IPV4_ROUTE, RTNLGRP.IPV6_IFADDR, RTNLGRP.IPV6_ROUTE];

/** Subscribes to this namespace's link, address, route, neighbour and FDB events until stop(). */
export function watchKernel(o: WatchOptions): KernelWatch {
  // A 1 s receive timeout lets a pending read end soon after stop(); 4 MB holds the burst of
  // events a reconcile of a thousand peers causes.
  const sock = NetlinkSocket.open({ groups: ALL_GROUPS, timeoutMs: 1000, rcvbuf: 4 << 20 });
  const buf = Buffer.alloc(1 << 16);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  let stopped = false;
  const next = () => {
    if (stopped) {
      sock.close();
      return;
    }
    read(sock.fd, buf, 0, buf.length, null, (err, n) => {
      if (stopped) return next();
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOBUFS") o.onOverrun();
        else if (code !== "EAGAIN" && code !== "EINTR") o.onError?.(err);
        return next();
      }
      const events: KernelEvent[] = [];
      try {
        for (const m of messages(bytes, view, n)) {
          const e = toEvent(bytes, view, m);
          if (e) events.push(e);
        }
      } catch (e) {
        o.onError?.(e as Error);
      }
      if (events.length) o.onEvents(events);
      next();
    });
  };
  next();
  return { stop: () => { stopped = true; } };
}

function toEvent(b: Uint8Array, v: DataView, m: NlMessage): KernelEvent | undefined {
  switch (m.type) {
    case RTM.NEWLINK: case RTM.DELLINK: {
      const link = parseLink(b, v, m);
      return link && { kind: "link", op: m.type === RTM.NEWLINK ? "new" : "del", link };
    }
    case RTM.NEWADDR: case RTM.DELADDR: {
      const addr = parseAddr(b, v, m);
      return addr && { kind: "addr", op: m.type === RTM.NEWADDR ? "new" : "del", addr };
    }
    case RTM.NEWROUTE: case RTM.DELROUTE: {
      const route = parseRoute(b, v, m);
      return route && { kind: "route", op: m.type === RTM.NEWROUTE ? "new" : "del", route };
    }
    case RTM.NEWNEIGH: case RTM.DELNEIGH: {
      const op = m.type === RTM.NEWNEIGH ? "new" : "del";
      const neigh = parseNeigh(b, v, m);
      if (neigh) return { kind: "neigh", op, neigh };
      const fdb = parseFdb(b, v, m);
      return fdb && { kind: "fdb", op, fdb };
    }
  }
  return undefined;
}
