// A backend turns leases into kernel state on one node. flannel's seam: backends never know
// which registry the leases came from; they register by name, parse their own options from the
// network config's Backend block, and split their work in three: read what they own in the
// kernel (one netlink dump per kind), plan the changes from that view and the peers' leases
// (pure: unit-tested without a kernel; doctor shows the same plan), and apply the plan.
import { type DevRef, type FdbEntry, type Link, type Neigh, type Request, type Route, type Rtnl, addAddr, delAddr, delRoute, replaceRoute } from "../kernel/netlink/index.ts";
import { RTN, RTNH_F, RT_SCOPE, RT_TABLE } from "../kernel/netlink/uapi.ts";
import { type Prefix, formatIP, parseCIDR, prefixesOverlap } from "../net/cidr.ts";
import type { KernelEvent } from "../kernel/netlink/monitor.ts";
import type { Lease } from "../store/registry.ts";

/**
 * rtm_protocol of the routes gauze makes: it marks them as gauze's, so that gauze only ever
 * removes routes it made and leaves everyone else's alone (`ip route` shows "proto 71").
 */
export const GAUZE_ROUTE_PROTOCOL = 71;

/** Plan.wanted keys shared by the backends that route to peers. */
export const routeKey = (dst: string, gw: string) => `r ${dst} ${gw}`;
export const subnetKey = (subnet: string) => `s ${subnet}`;

/** A route to a peer's subnet, made with gauze's protocol mark (replace: whatever was there goes). */
export function addRouteChange(peer: string, dst: string, via: string, dev: DevRef, onlink: boolean): Change {
  return {
    op: "add", peer, text: `route ${dst} via ${via}${onlink ? " onlink" : ""}`,
    request: replaceRoute({ dst, via, dev, onlink, protocol: GAUZE_ROUTE_PROTOCOL }),
    entry: { kind: "route", route: { family: dst.includes(":") ? 6 : 4, dst, gateway: via, oif: dev.index, table: RT_TABLE.MAIN, protocol: GAUZE_ROUTE_PROTOCOL, scope: RT_SCOPE.UNIVERSE, type: RTN.UNICAST, flags: onlink ? RTNH_F.ONLINK : 0 } },
  };
}

/** The node's own subnet address as the only address (a /32, or /128) on a tunnel device: its source for peers. */
export function setSubnetAddress(nl: Rtnl, device: string, lease: Lease): void {
  const dev = nl.link(device);
  if (!dev) throw new Error(`${device} is missing: the agent sets it up before activating`);
  const net = parseCIDR(lease.subnet)!.prefix.ip;
  const want = `${formatIP(net)}/${net.family === 4 ? 32 : 128}`;
  // IPv6: the kernel's own link-local address stays (fe80::/10); only global ones are ours to set.
  const have = nl.addrs(dev, net.family).filter((a) => !a.address.startsWith("fe80:")).map((a) => `${a.address}/${a.prefixLen}`);
  const reqs = have.filter((a) => a !== want).map((a) => delAddr(dev, a));
  if (!have.includes(want)) reqs.push(addAddr(dev, want));
  nl.run(reqs);
}

/** Whether a route destination lies inside the pod network: the only routes gauze may remove. */
export function routeInside(network: Prefix, dst: string): boolean {
  const c = parseCIDR(dst);
  return !!c && c.prefix.ip.family === network.ip.family && c.prefix.bits >= network.bits && prefixesOverlap(c.prefix, network);
}

/** Removes one of gauze's routes (the protocol mark makes sure it is gauze's). */
export function delRouteChange(r: Route, dev: DevRef): Change {
  return { op: "del", peer: "", text: `route ${r.dst} via ${r.gateway ?? "-"}`, request: delRoute({ dst: r.dst, dev, protocol: GAUZE_ROUTE_PROTOCOL }), entry: { kind: "route", route: r } };
}

export interface NodeLink {
  /** The node's underlay interface (eth0), its index, address (with prefix length) of the backend's family, and MTU. */
  iface: string;
  index: number;
  ip: string;
  prefixLen?: number;
  mtu: number;
}

/** A WireGuard peer of the tunnel device, as the device reports it (keys in base64). */
export interface TunnelPeer {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  keepalive?: number;
}

/** An entry of the kernel a backend owns, as a change makes or removes it. */
export type KernelEntry =
  | { kind: "route"; route: Route }
  | { kind: "neigh"; neigh: Neigh }
  | { kind: "fdb"; fdb: FdbEntry }
  | { kind: "peer"; peer: TunnelPeer };

/** One change of a plan: what it does (for logs and doctor), the request that does it, and the entry. */
export interface Change {
  op: "add" | "del";
  /** Which peer it is for (a node name), or "" for entries no lease accounts for. */
  peer: string;
  text: string;
  /** The netlink request that makes the change; or `run`, for state netlink does not carry (WireGuard peers). */
  request?: Request;
  run?: () => void;
  entry: KernelEntry;
}

export interface Plan {
  changes: Change[];
  /** Peers the plan programs. */
  peers: number;
  /** Leases the backend cannot use, with why (a VXLAN lease without a VTEP MAC, say). */
  skipped: { node: string; subnet: string; why: string }[];
  /** Keys of the entries the plan wants in place: kernel events about these need no action. */
  wanted: Set<string>;
}

/** A plan with nothing in it yet: what a backend returns when its device is missing, and starts from. */
export function emptyPlan(): Plan {
  return { changes: [], peers: 0, skipped: [], wanted: new Set() };
}

export interface ReconcileStats {
  peers: number;
  added: number;
  removed: number;
  /** Changes the kernel refused (each logged with its message). */
  failed: number;
  /** Time spent reading the kernel's current state, and in all. */
  readMs: number;
  ms: number;
}

/** How pods attach when not through the node's bridge (macvlan: on the uplink itself). */
export interface PodAttachment {
  mode: "macvlan";
  master: string;
  /** The node's L2 subnet (pods take their prefix from it) and its router (their default gateway). */
  underlay: string;
  underlayGateway: string;
}

export interface Backend {
  readonly type: string;
  /** Pods attach some other way than a veth to the bridge (known after setup). */
  podAttachment?(): PodAttachment;
  /** Name of the device pods' traffic leaves through (for doctor and status). */
  readonly device: string;
  /** Bytes each packet gains on the wire (VXLAN over IPv4: 50). */
  readonly overhead: number;
  /** The options in effect, for the status report. */
  readonly options: Record<string, unknown>;
  /** Creates or adopts the device ("exists and compatible" is kept as is). */
  setup(nl: Rtnl): { backendData: Lease["backendData"]; podMtu: number };
  /** Once the lease is known: this node's own addressing on the device. */
  activate(nl: Rtnl, lease: Lease): void;
  /** What the backend owns in the kernel now. */
  read(nl: Rtnl): KernelView;
  /** Whether the device is missing or not as set up (deleted, down, changed by hand): setup again. */
  needsSetup(view: KernelView): boolean;
  /** The changes that make `view` match these peers. Pure. */
  plan(view: KernelView, peers: Lease[]): Plan;
  /**
   * Whether a kernel event touches what the backend owns and differs from what the last plan
   * wanted (`wanted`: Plan.wanted), so that a repair pass is due. Events the agent's own
   * changes cause match `wanted` and ask for nothing.
   */
  concerns(e: KernelEvent, device: Link | undefined, wanted: Set<string>): boolean;
  /** Removes everything the backend made (uninstall). */
  uninstall(nl: Rtnl): void;
}

/** The kernel state a backend owns, as read in one pass. */
export interface KernelView {
  device?: Link;
  /** Dual-stack: the IPv6 instance's device (its entries are in the same lists, told apart by family and index). */
  device6?: Link;
  routes: Route[];
  neighbours: Neigh[];
  fdb: FdbEntry[];
  /** WireGuard: the device's peers. */
  peers?: TunnelPeer[];
}

export interface BackendOptions {
  link: NodeLink;
  /** Prefix of the node's paths (the agent's --root: a lab node's tree), for backends that keep files. */
  root?: string;
  /** The pod network, e.g. 10.244.0.0/16 (parsed once, where the network config is read). */
  network: Prefix;
  /** The network config's Backend block, as given (each backend validates its own fields). */
  config: Record<string, unknown>;
  /** The address family this instance carries (dual-stack runs one instance per family); default 4. */
  family?: 4 | 6;
}

export class BackendConfigError extends Error {
  constructor(field: string, message: string, fix: string) {
    super(`network config: Backend.${field} ${message} (${fix})`);
    this.name = "BackendConfigError";
  }
}

export type BackendFactory = (o: BackendOptions) => Backend;

const factories = new Map<string, BackendFactory>();

export function registerBackend(type: string, f: BackendFactory): void {
  factories.set(type, f);
}

export function backendTypes(): string[] {
  return [...factories.keys()];
}

export function createBackend(type: string, o: BackendOptions): Backend {
  const f = factories.get(type);
  if (!f) throw new BackendConfigError("Type", JSON.stringify(type) + " is not a backend gauze has", `use one of ${backendTypes().join(", ")}`);
  return f(o);
}

/**
 * Runs a plan: every change in one batch; returns the stats (refusals counted, not thrown) and
 * the changes the kernel took, so that a caller keeping the view can apply them to it.
 */
export function applyPlan(nl: Rtnl, plan: Plan, onRefused: (c: Change, message: string) => void): { added: number; removed: number; failed: number; done: Change[] } {
  // Netlink changes in one batch; the others (WireGuard peers) each on their own, in plan order
  // relative to one another.
  const viaNetlink = plan.changes.filter((c) => c.request);
  const batch = nl.apply(viaNetlink.map((c) => c.request!));
  const outcome = new Map<Change, { message: string; notFound: boolean } | undefined>(viaNetlink.map((c, i) => [c, batch[i]]));
  for (const c of plan.changes) {
    if (c.request || !c.run) continue;
    try {
      c.run();
      outcome.set(c, undefined);
    } catch (e) {
      outcome.set(c, { message: (e as Error).message, notFound: false });
    }
  }
  let added = 0, removed = 0, failed = 0;
  const done: Change[] = [];
  plan.changes.forEach((c) => {
    const e = outcome.get(c);
    if (e && !(c.op === "del" && e.notFound)) {
      failed++;
      onRefused(c, e.message);
      return;
    }
    done.push(c);
    if (c.op === "add") added++;
    else removed++;
  });
  return { added, removed, failed, done };
}

const entryKey = (e: KernelEntry): string =>
  e.kind === "route" ? `r ${e.route.dst}` : e.kind === "neigh" ? `n ${e.neigh.dst}` : e.kind === "peer" ? `p ${e.peer.publicKey}` : `f ${e.fdb.mac} ${e.fdb.dst}`;

/**
 * The view after these changes, without reading the kernel again: an add replaces what the
 * kernel held under the same key (route: destination; neighbour: address; VXLAN FDB: every remote
 * of the MAC, as `replace` does), a delete removes that one entry. Keyed, so a thousand changes
 * cost a thousand steps.
 */
export function viewAfter(view: KernelView, changes: readonly Change[]): KernelView {
  if (changes.length === 0) return view;
  const next = new Map<string, KernelEntry>();
  const remotes = new Map<string, Set<string>>(); // FDB MAC -> keys of its remotes
  const addFdb = (fdb: FdbEntry) => {
    const k = `f ${fdb.mac} ${fdb.dst}`;
    next.set(k, { kind: "fdb", fdb });
    (remotes.get(fdb.mac) ?? remotes.set(fdb.mac, new Set()).get(fdb.mac)!).add(k);
  };
  for (const route of view.routes) next.set(`r ${route.dst}`, { kind: "route", route });
  for (const peer of view.peers ?? []) next.set(`p ${peer.publicKey}`, { kind: "peer", peer });
  for (const neigh of view.neighbours) next.set(`n ${neigh.dst}`, { kind: "neigh", neigh });
  const fdbOther: FdbEntry[] = [];
  for (const fdb of view.fdb) {
    if (fdb.dst) addFdb(fdb);
    else fdbOther.push(fdb);
  }
  for (const c of changes) {
    const e = c.entry;
    if (e.kind === "fdb" && c.op === "add") {
      for (const k of remotes.get(e.fdb.mac) ?? []) next.delete(k);
      remotes.delete(e.fdb.mac);
      addFdb(e.fdb);
    } else if (c.op === "add") {
      next.set(entryKey(e), e);
    } else {
      next.delete(entryKey(e));
    }
  }
  const out: KernelView = { ...(view.device ? { device: view.device } : {}), ...(view.device6 ? { device6: view.device6 } : {}), routes: [], neighbours: [], fdb: fdbOther, ...(view.peers ? { peers: [] } : {}) };
  for (const e of next.values()) {
    if (e.kind === "route") out.routes.push(e.route);
    else if (e.kind === "neigh") out.neighbours.push(e.neigh);
    else if (e.kind === "peer") (out.peers ??= []).push(e.peer);
    else out.fdb.push(e.fdb);
  }
  return out;
}
