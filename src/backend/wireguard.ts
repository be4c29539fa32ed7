// WireGuard: the overlay, encrypted. Device gauze-wg, UDP 51820 (flannel's defaults), MTU =
// underlay MTU - 60 (outer IPv4 20 + UDP 8 + WireGuard 32: a 16-byte header and a 16-byte tag),
// this node's subnet address as a /32 on it, and for every other node one peer (its public key,
// its node IP and port as the endpoint, its subnet as the allowed IPs) and one route of its
// subnet into the device. The private key is made on the node and stays there (mode 0600,
// under run/gauze); the public key travels in the lease.
//
// Kernels with the module get a kernel device (rtnetlink kind "wireguard") and are configured
// with `wg`; elsewhere (this kernel has tun but no wireguard module) Debian's wireguard-go runs
// the device in userspace and gauze talks to its UAPI socket directly. Only the userspace path
// runs here; the kernel path is the same plan applied through `wg set`.
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type Prefix, parseCIDR, prefixMatcher } from "../net/cidr.ts";
import { type Link, type Rtnl, delLink, replaceRoute, setLink } from "../kernel/netlink/index.ts";
import type { KernelEvent } from "../kernel/netlink/monitor.ts";
import { startDetached } from "../kernel/spawn.ts";
import { isExecutable } from "../kernel/files.ts";
import { type WgPeerChange, wgGet, wgSet } from "../kernel/wireguard.ts";
import { RTN, RT_SCOPE, RT_TABLE } from "../kernel/netlink/uapi.ts";
import type { Lease } from "../store/registry.ts";
import {
  type Backend, type BackendOptions, type KernelView, type Plan, type TunnelPeer, BackendConfigError, GAUZE_ROUTE_PROTOCOL, emptyPlan,
  delRouteChange, registerBackend, setSubnetAddress, routeInside, subnetKey,
} from "./backend.ts";

export const WIREGUARD_OVERHEAD = 60; // outer IPv4 20 + UDP 8 + WireGuard header 16 + tag 16
export const WG_DEVICE = "gauze-wg";

export type WireguardOptions = { listenPort: number; keepalive: number };

const KNOWN = new Set(["Type", "ListenPort", "PersistentKeepaliveInterval"]);

export function parseWireguardOptions(c: Record<string, unknown>): WireguardOptions {
  for (const k of Object.keys(c)) {
    if (!KNOWN.has(k)) throw new BackendConfigError(k, "is not an option of the wireguard backend", `remove it; wireguard takes ${[...KNOWN].join(", ")}`);
  }
  const port = c.ListenPort ?? 51820;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) throw new BackendConfigError("ListenPort", `${JSON.stringify(port)} is not a UDP port`, "use an integer from 1 to 65535 (flannel's default is 51820)");
  const ka = c.PersistentKeepaliveInterval ?? 0;
  if (typeof ka !== "number" || !Number.isInteger(ka) || ka < 0 || ka > 65535) throw new BackendConfigError("PersistentKeepaliveInterval", `${JSON.stringify(ka)} is not a number of seconds`, "use 0 (off) to 65535");
  return { listenPort: port, keepalive: ka };
}

/** A WireGuard public key: 32 bytes, base64. */
export function validKey(k: unknown): k is string {
  return typeof k === "string" && /^[A-Za-z0-9+/]{43}=$/.test(k) && Buffer.from(k, "base64").length === 32;
}

/** This node's key pair: the private half read from `file` (made there, mode 0600, when missing). */
export function nodeKeys(file: string): { privateKey: string; publicKey: string } {
  let priv: string;
  try {
    priv = readFileSync(file, "utf8").trim();
    if (!validKey(priv)) throw new Error(`${file} does not hold a WireGuard key`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    const { privateKey } = generateKeyPairSync("x25519");
    priv = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url").toString("base64");
    mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
    const fd = openSync(file, "wx", 0o600);
    try {
      writeFileSync(fd, priv + "\n");
    } finally {
      closeSync(fd);
    }
  }
  // The public half from the private one (RFC 7748 X25519), as `wg pubkey` does: the raw key
  // wrapped in its PKCS#8 header for node:crypto.
  const der = Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), Buffer.from(priv, "base64")]);
  const x = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({ format: "jwk" }).x!;
  return { privateKey: priv, publicKey: Buffer.from(x, "base64url").toString("base64") };
}

interface Peer { node: string; subnet: string; publicKey: string; endpoint: string }

function inPath(name: string): boolean {
  return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":").some((d) => d && isExecutable(join(d, name)));
}

const peerKey = (k: string) => `p ${k}`;

export class WireguardBackend implements Backend {
  readonly type = "wireguard";
  readonly device = WG_DEVICE;
  readonly overhead = WIREGUARD_OVERHEAD;
  readonly options: WireguardOptions;
  private readonly network: Prefix;
  private readonly inNetwork: (ip: string) => boolean;
  /** Where wireguard-go's UAPI socket lives: the node's run/wireguard. */
  private readonly sock: string;
  private readonly keyFile: string;
  private readonly root: string;
  private keys?: { privateKey: string; publicKey: string };

  constructor(private readonly o: BackendOptions) {
    this.options = parseWireguardOptions(o.config);
    this.network = o.network;
    this.inNetwork = prefixMatcher(this.network);
    this.root = o.root ?? "";
    this.sock = join(this.root || "/", "run/wireguard", `${WG_DEVICE}.sock`);
    this.keyFile = join(this.root || "/", "run/gauze/wireguard.key");
  }

  needsSetup(view: KernelView): boolean {
    return !view.device || !view.device.up || view.device.mtu !== this.o.link.mtu - WIREGUARD_OVERHEAD;
  }

  /** Starts wireguard-go for the device (in this namespace), its socket in the node's run/wireguard. */
  private startUserspace(nl: Rtnl): void {
    const runDir = join(this.root || "/", "run");
    mkdirSync(join(runDir, "wireguard"), { recursive: true, mode: 0o700 });
    const argv = this.root
      // A lab node: wireguard-go looks for /run/wireguard, so the node's own run/ is bound there.
      ? [process.execPath, "mount-exec", "--bind", `${runDir}:/run`, "--", "wireguard-go", WG_DEVICE]
      : ["wireguard-go", WG_DEVICE];
    const log = openSync("/dev/null", "w");
    try {
      // Not WG_PROCESS_FOREGROUND in the environment, even empty: wireguard-go marks its daemon
      // child with it, and an inherited copy would make every child fork again.
      const env = { ...process.env };
      delete env.WG_PROCESS_FOREGROUND;
      startDetached(argv, log, { env });
    } finally {
      closeSync(log);
    }
    const until = Date.now() + 5000;
    while (!nl.link(WG_DEVICE)) {
      if (Date.now() > until) throw new Error(`wireguard-go did not make ${WG_DEVICE} within 5 s (apt-get install wireguard-go; it needs /dev/net/tun)`);
      Bun.sleepSync(20);
    }
    // The device exists a moment before its socket answers.
    while (Date.now() < until) {
      try {
        wgGet(this.sock);
        return;
      } catch {
        Bun.sleepSync(20);
      }
    }
    throw new Error(`wireguard-go made ${WG_DEVICE} but its socket ${this.sock} does not answer`);
  }

  setup(nl: Rtnl): { backendData: Lease["backendData"]; podMtu: number } {
    if (!nl.link(WG_DEVICE) && !inPath("wireguard-go")) {
      throw new Error("the wireguard backend needs WireGuard: this kernel has no module, and wireguard-go is not installed (apt-get install wireguard-go)");
    }
    if (!nl.link(WG_DEVICE)) this.startUserspace(nl);
    this.keys = nodeKeys(this.keyFile);
    wgSet(this.sock, { privateKey: this.keys.privateKey, listenPort: this.options.listenPort });
    const mtu = this.o.link.mtu - WIREGUARD_OVERHEAD;
    const dev = nl.link(WG_DEVICE)!;
    if (dev.mtu !== mtu || !dev.up) nl.run([setLink(dev, { mtu, up: true })]);
    return { backendData: { publicKey: this.keys.publicKey }, podMtu: mtu };
  }

  activate(nl: Rtnl, lease: Lease): void {
    setSubnetAddress(nl, WG_DEVICE, lease);
  }

  read(nl: Rtnl): KernelView {
    const device = nl.link(WG_DEVICE);
    if (!device) return { routes: [], neighbours: [], fdb: [], peers: [] };
    let peers: TunnelPeer[] = [];
    try {
      peers = wgGet(this.sock).peers;
    } catch {
      // the device without its userspace process: needsSetup sees it (the device goes with it)
    }
    return { device, routes: nl.routes(4, device), neighbours: [], fdb: [], peers };
  }

  plan(view: KernelView, leases: Lease[]): Plan {
    const empty = emptyPlan();
    const { changes, skipped, wanted } = empty;
    const dev = view.device;
    if (!dev) return empty;
    const peers: Peer[] = [];
    for (const l of leases) {
      if (l.backendType !== "wireguard") { skipped.push({ node: l.node, subnet: l.subnet, why: `backend ${l.backendType}, not wireguard` }); continue; }
      if (!validKey(l.backendData.publicKey)) { skipped.push({ node: l.node, subnet: l.subnet, why: l.backendData.publicKey ? "its public key is not a WireGuard key (32 bytes, base64)" : "no public key in its lease" }); continue; }
      peers.push({ node: l.node, subnet: l.subnet, publicKey: l.backendData.publicKey, endpoint: `${l.publicIp}:${this.options.listenPort}` });
    }
    const havePeer = new Map((view.peers ?? []).map((p) => [p.publicKey, p]));
    const haveRoute = new Set(view.routes.filter((r) => !r.gateway).map((r) => r.dst));
    for (const p of peers) {
      wanted.add(subnetKey(p.subnet));
      wanted.add(peerKey(p.publicKey));
      const h = havePeer.get(p.publicKey);
      const ka = this.options.keepalive;
      if (!h || h.endpoint !== p.endpoint || h.allowedIps.length !== 1 || h.allowedIps[0] !== p.subnet || (h.keepalive ?? 0) !== ka) {
        const change: WgPeerChange = { publicKey: p.publicKey, endpoint: p.endpoint, allowedIps: [p.subnet], ...(ka ? { keepalive: ka } : {}) };
        changes.push({
          op: "add", peer: p.node, text: `peer ${p.publicKey.slice(0, 8)}… endpoint ${p.endpoint} allowed ${p.subnet}`,
          run: () => wgSet(this.sock, { peers: [change] }),
          entry: { kind: "peer", peer: { publicKey: p.publicKey, endpoint: p.endpoint, allowedIps: [p.subnet], ...(ka ? { keepalive: ka } : {}) } },
        });
      }
      if (!haveRoute.has(p.subnet)) {
        changes.push({
          op: "add", peer: p.node, text: `route ${p.subnet} dev ${WG_DEVICE}`,
          request: replaceRoute({ dst: p.subnet, dev, scope: RT_SCOPE.LINK, protocol: GAUZE_ROUTE_PROTOCOL }),
          entry: { kind: "route", route: { family: 4, dst: p.subnet, oif: dev.index, table: RT_TABLE.MAIN, protocol: GAUZE_ROUTE_PROTOCOL, scope: RT_SCOPE.LINK, type: RTN.UNICAST, flags: 0 } },
        });
      }
    }
    for (const r of view.routes) {
      if (r.protocol === GAUZE_ROUTE_PROTOCOL && !wanted.has(subnetKey(r.dst)) && routeInside(this.network, r.dst)) changes.push(delRouteChange(r, dev));
    }
    for (const h of view.peers ?? []) {
      if (!wanted.has(peerKey(h.publicKey)) && h.allowedIps.every((a) => this.inNetwork(a.split("/")[0]!))) {
        changes.push({ op: "del", peer: "", text: `peer ${h.publicKey.slice(0, 8)}…`, run: () => wgSet(this.sock, { peers: [{ publicKey: h.publicKey, remove: true }] }), entry: { kind: "peer", peer: h } });
      }
    }
    return { changes, peers: peers.length, skipped, wanted };
  }

  concerns(e: KernelEvent, dev: Link | undefined, wanted: Set<string>): boolean {
    if (e.kind === "link") return e.link.name === WG_DEVICE || (dev !== undefined && e.link.index === dev.index);
    if (e.kind !== "route" || !dev || e.route.oif !== dev.index || e.route.family !== 4) return false;
    if (e.op === "new" && wanted.has(subnetKey(e.route.dst))) return false;
    return e.route.protocol === GAUZE_ROUTE_PROTOCOL || wanted.has(subnetKey(e.route.dst));
  }

  uninstall(nl: Rtnl): void {
    // Deleting the device ends wireguard-go too (it exits when its interface goes).
    const [e] = nl.apply([delLink(WG_DEVICE)]);
    if (e && !e.notFound) throw e;
  }
}

registerBackend("wireguard", (o) => new WireguardBackend(o));
