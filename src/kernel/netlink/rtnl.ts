// The route-netlink client gauze programs the kernel with: typed reads (one dump per kind of
// object) and batches of changes, each change named in the error when the kernel refuses it.
// One client is one socket, bound to the namespace it was opened in.
import { type Addr, dumpAddrs, parseAddr } from "./addr.ts";
import { type DevRef, type Link, dumpLinks, getLink, getLinkByIndex, parseLink } from "./link.ts";
import { type FdbEntry, type Neigh, dumpFdb, dumpNeighs, parseFdb, parseNeigh } from "./neigh.ts";
import { type Route, dumpRoutes, parseRoute } from "./route.ts";
import { NetlinkError, NetlinkSocket, type Outcome, type Request, type SocketOptions } from "./socket.ts";
import { RT_TABLE } from "./uapi.ts";

/** Which refusals are fine for a change (e.g. EEXIST when creating what may be there already). */
export type Tolerate = (req: Request, err: NetlinkError, index: number) => boolean;

export class Rtnl {
  private constructor(readonly sock: NetlinkSocket) {}

  static open(o: SocketOptions = {}): Rtnl {
    return new Rtnl(NetlinkSocket.open(o));
  }

  close(): void {
    this.sock.close();
  }

  private getOne<T>(req: Request, parse: (b: Uint8Array, v: DataView, m: Parameters<typeof parseLink>[2]) => T | undefined): T | undefined {
    let found: T | undefined;
    const [err] = this.sock.exchange([req], (_i, b, v, m) => { found ??= parse(b, v, m); });
    if (err) {
      if (err.notFound) return undefined;
      throw err;
    }
    return found;
  }

  /** The link with this name, or undefined. */
  link(name: string): Link | undefined {
    return this.getOne(getLink(name), parseLink);
  }

  linkByIndex(index: number): Link | undefined {
    return this.getOne(getLinkByIndex(index), parseLink);
  }

  /** Every link; with `master`, the ports of that bridge. */
  links(master?: DevRef): Link[] {
    const out: Link[] = [];
    this.sock.dump(dumpLinks(master?.index), (b, v, m) => {
      const l = parseLink(b, v, m);
      if (l && (!master || l.master === master.index)) out.push(l);
    });
    return out;
  }

  /** Addresses, of one link when `dev` is given. */
  addrs(dev?: DevRef, family?: 4 | 6): Addr[] {
    const out: Addr[] = [];
    this.sock.dump(dumpAddrs(family), (b, v, m) => {
      const a = parseAddr(b, v, m);
      if (a && (!dev || a.index === dev.index)) out.push(a);
    });
    return out;
  }

  /** Routes of the main table, through `dev` when given. */
  routes(family: 4 | 6, dev?: DevRef): Route[] {
    const out: Route[] = [];
    this.sock.dump(dumpRoutes(family, dev), (b, v, m) => {
      const r = parseRoute(b, v, m);
      if (r && r.table === RT_TABLE.MAIN && (!dev || r.oif === dev.index)) out.push(r);
    });
    return out;
  }

  neighbours(family: 4 | 6, dev?: DevRef): Neigh[] {
    const out: Neigh[] = [];
    this.sock.dump(dumpNeighs(family, dev), (b, v, m) => {
      const n = parseNeigh(b, v, m);
      if (n && (!dev || n.index === dev.index)) out.push(n);
    });
    return out;
  }

  fdb(dev: DevRef): FdbEntry[] {
    const out: FdbEntry[] = [];
    this.sock.dump(dumpFdb(dev), (b, v, m) => {
      const e = parseFdb(b, v, m);
      if (e && e.index === dev.index) out.push(e);
    });
    return out;
  }

  /** Runs the changes (batched) and returns what the kernel said to each. */
  apply(reqs: readonly Request[]): Outcome[] {
    return reqs.length ? this.sock.exchange(reqs) : [];
  }

  /** Runs the changes; throws the first refusal `tolerate` does not accept. */
  run(reqs: readonly Request[], tolerate?: Tolerate): void {
    const out = this.apply(reqs);
    for (let i = 0; i < out.length; i++) {
      const e = out[i];
      if (e && !(tolerate && tolerate(reqs[i]!, e, i))) throw e;
    }
  }
}

/** Opens a client, runs `fn`, closes it. */
export function withRtnl<T>(o: SocketOptions, fn: (nl: Rtnl) => T): T {
  const nl = Rtnl.open(o);
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}

export { NetlinkError };
export type { Request, Outcome, Link, DevRef, Addr, Route, Neigh, FdbEntry };
