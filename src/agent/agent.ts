// The node agent: leases this node's subnet, sets up the backend's device, writes the subnet
// file and then the conflist (the node turns Ready), masquerades, and keeps every other node's
// routes/neighbours/FDB in step with the registry (level-triggered: on each watch event and on
// a timer it re-lists and diffs against the kernel). A restart adopts what is already right and
// never tears the dataplane down; only --uninstall removes it.
import type { Logger } from "pino";
import { writeFileSync, mkdirSync } from "node:fs";
import { checkBrNetfilter } from "./prereq.ts";
import { dirname } from "node:path";
import { type IpLink, ipBatch } from "../kernel/ip.ts";
import { formatIP, nextIP, parseCIDR } from "../ipam/cidr.ts";
import { type Lease, type SubnetRegistry, resolveNetwork, type ResolvedNetwork } from "../store/registry.ts";
import { type Backend, type NodeLink, createBackend } from "../backend/backend.ts";
import "../backend/vxlan.ts";
import "../backend/host-gw.ts";
import { type NodePaths, installConflist, nodePaths, writeSubnetFile, removeNodeFiles } from "./node-files.ts";
import { ensureMasquerade, removeMasquerade } from "./masquerade.ts";
import { createMetrics, type AgentMetrics } from "./metrics.ts";
import { serveHealth, type Readiness } from "./http.ts";
import { formatPrefix } from "../ipam/cidr.ts";
import type { Server } from "node:http";

export interface AgentOptions {
  node: string;
  iface: string;
  registry: SubnetRegistry;
  /** Prefix for the node's paths ("" on a real node; the node's tree in the lab). */
  root: string;
  ipMasq: boolean;
  healthAddr: string;
  leaseTtlMs: number;
  resyncMs: number;
  bridge: string;
  log: Logger;
}

export interface AgentStatus {
  node: string;
  pid: number;
  ready: boolean;
  reason: string;
  nodeIp?: string;
  subnet?: string;
  network?: string;
  backend?: string;
  device?: string;
  vtepMac?: string;
  podMtu?: number;
  peers: number;
  leaseExpiresAt?: number;
  lastReconcile?: { at: number; ms: number; added: number; removed: number; spawns: number };
  /** The other nodes as this agent last saw them in the registry (doctor compares the kernel with it). */
  peerLeases?: { node: string; subnet: string; publicIp: string; vtepMac?: string }[];
  healthAddr?: string;
  iface?: string;
  vni?: number;
  port?: number;
  ipMasq?: boolean;
  updatedAt: number;
}

export function readNodeLink(iface: string): NodeLink {
  const [links] = ipBatch([["addr", "show", "dev", iface]]) as [IpLink[]];
  const l = links[0];
  const v4 = l?.addr_info?.find((a) => a.family === "inet");
  if (!l || !v4) throw new Error(`interface ${iface} has no IPv4 address: give the node's underlay interface with --iface`);
  return { iface, ip: v4.local, mtu: l.mtu };
}

export class Agent {
  private readonly paths: NodePaths;
  private readonly metrics: AgentMetrics;
  private backend?: Backend;
  private net?: ResolvedNetwork;
  private lease?: Lease;
  private link?: NodeLink;
  private podMtu = 0;
  private state: Readiness = { ready: false, reason: "starting" };
  private peers = 0;
  private lastReconcile?: AgentStatus["lastReconcile"];
  private stopWatch?: () => void;
  private timers: ReturnType<typeof setTimeout>[] = [];
  private server?: Server;
  private pending?: ReturnType<typeof setTimeout>;
  private stopped = false;
  private peerLeases: AgentStatus["peerLeases"] = [];
  private lastListMs = 0;

  constructor(private readonly o: AgentOptions) {
    this.paths = nodePaths(o.root);
    this.metrics = createMetrics(o.node);
  }

  async start(): Promise<void> {
    this.server = await serveHealth(this.o.healthAddr, this.metrics, () => this.readiness());
    await this.bringUp();
  }

  /** Everything up to Ready; on a failure, says why and tries again with backoff. */
  private async bringUp(attempt = 0): Promise<void> {
    if (this.stopped) return;
    try {
      const t0 = performance.now();
      const brnf = checkBrNetfilter();
      if (brnf) throw new Error(brnf);
      this.net = resolveNetwork(await this.o.registry.getNetworkConfig());
      this.link = readNodeLink(this.o.iface);
      const network = formatPrefix(this.net.network);
      this.backend = createBackend(this.net.backendType, { link: this.link, network, vni: this.net.vni, port: this.net.port });
      const { backendData, podMtu } = this.backend.setup();
      this.podMtu = podMtu;
      this.lease = await this.o.registry.acquireLease({ node: this.o.node, publicIp: this.link.ip, backendType: this.backend.type, backendData }, this.o.leaseTtlMs);
      this.metrics.leaseExpiry.set(this.lease.expiresAt / 1000);
      this.backend.activate(this.lease);
      ensureMasquerade(network, this.o.ipMasq);
      // As flannel writes it: the subnet file's SUBNET is the gateway address with the length.
      const gw = formatIP(nextIP(parseCIDR(this.lease.subnet)!.prefix.ip));
      writeSubnetFile(this.paths, { network, subnet: `${gw}/${this.net.subnetLen}`, mtu: podMtu, ipMasq: this.o.ipMasq });
      installConflist(this.paths, this.o.bridge);
      this.setState({ ready: true, reason: "" });
      this.o.log.info({ subnet: this.lease.subnet, nodeIp: this.link.ip, backend: this.backend.type, device: this.backend.device, podMtu, ms: +(performance.now() - t0).toFixed(1) }, "ready: subnet leased, subnet file and conflist written");
      this.stopWatch = this.o.registry.watch(() => this.schedule());
      this.reconcile();
      this.loop();
    } catch (e) {
      this.metrics.registryErrors.inc();
      const reason = (e as Error).message;
      this.setState({ ready: false, reason });
      const delay = Math.min(30_000, 500 * 2 ** attempt);
      this.o.log.error({ err: reason, retryInMs: delay }, "not ready");
      this.timers.push(setTimeout(() => void this.bringUp(attempt + 1), delay));
    }
  }

  /** Debounces bursts of watch events (many nodes joining at once) into one pass. */
  private schedule(): void {
    if (this.pending || this.stopped) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.resync();
    }, 5);
  }

  private loop(): void {
    const t = setInterval(() => void this.resync(), this.o.resyncMs);
    this.timers.push(t as unknown as ReturnType<typeof setTimeout>);
  }

  /** A full pass: renew the lease when half of it is gone, re-acquire it if it vanished, reconcile. */
  private async resync(): Promise<void> {
    if (this.stopped || !this.lease || !this.backend) return;
    try {
      if (this.lease.expiresAt - Date.now() < this.o.leaseTtlMs / 2) {
        this.lease = await this.o.registry.renewLease(this.lease, this.o.leaseTtlMs);
        this.metrics.leaseExpiry.set(this.lease.expiresAt / 1000);
      }
      const tList = performance.now();
      const leases = await this.o.registry.listLeases();
      this.lastListMs = performance.now() - tList;
      this.reconcile(leases);
      const brnf = checkBrNetfilter();
      if (brnf) this.setState({ ready: false, reason: brnf });
      else if (!this.state.ready) this.setState({ ready: true, reason: "" });
    } catch (e) {
      this.metrics.registryErrors.inc();
      // The dataplane stays as it is; the next event or timer tries again.
      this.setState({ ready: false, reason: `registry unreachable: ${(e as Error).message}` });
      this.o.log.warn({ err: (e as Error).message }, "resync failed; dataplane left as it is");
    }
  }

  reconcile(leases?: Lease[]): void {
    if (!leases) {
      void this.o.registry.listLeases().then((l) => this.reconcile(l), (e: Error) => this.o.log.warn({ err: e.message }, "list failed"));
      return;
    }
    const mine = leases.find((l) => l.node === this.o.node);
    if (!mine && this.lease) {
      // Someone removed our lease: take it again (same subnet if still free).
      void this.o.registry.acquireLease({ node: this.o.node, publicIp: this.lease.publicIp, backendType: this.lease.backendType, backendData: this.lease.backendData }, this.o.leaseTtlMs)
        .then((l) => { this.lease = l; this.o.log.warn({ subnet: l.subnet }, "lease was gone; re-acquired"); });
    }
    const peers = leases.filter((l) => l.node !== this.o.node);
    this.peerLeases = peers.map((l) => ({ node: l.node, subnet: l.subnet, publicIp: l.publicIp, ...(l.backendData.vtepMac ? { vtepMac: l.backendData.vtepMac } : {}) }));
    const t0 = performance.now();
    try {
      const s = this.backend!.reconcile(peers);
      const ms = performance.now() - t0;
      this.peers = s.peers;
      this.metrics.peers.set(s.peers);
      this.metrics.reconciles.inc({ result: "ok" });
      this.metrics.reconcileSeconds.observe(ms / 1000);
      this.metrics.kernelChanges.inc({ op: "add" }, s.added);
      this.metrics.kernelChanges.inc({ op: "del" }, s.removed);
      this.metrics.spawns.inc(s.spawns);
      this.lastReconcile = { at: Date.now(), ms: +ms.toFixed(2), added: s.added, removed: s.removed, spawns: s.spawns };
      if (s.added || s.removed) this.o.log.info({ peers: s.peers, added: s.added, removed: s.removed, ms: +ms.toFixed(2), readMs: +(s.readMs ?? 0).toFixed(2), listMs: +this.lastListMs.toFixed(2) }, "reconciled");
      this.writeStatus();
    } catch (e) {
      this.metrics.reconciles.inc({ result: "error" });
      this.o.log.error({ err: (e as Error).message }, "reconcile failed");
    }
  }

  /** /readyz: the last known state, and the kernel prerequisite checked live. */
  private readiness(): Readiness {
    const brnf = checkBrNetfilter();
    if (brnf) return { ready: false, reason: brnf };
    return this.state;
  }

  private setState(s: Readiness): void {
    this.state = s;
    this.metrics.ready.set(s.ready ? 1 : 0);
    this.writeStatus();
  }

  status(): AgentStatus {
    return {
      node: this.o.node, pid: process.pid, ready: this.state.ready, reason: this.state.reason,
      nodeIp: this.link?.ip, subnet: this.lease?.subnet, network: this.net ? formatPrefix(this.net.network) : undefined,
      backend: this.backend?.type, device: this.backend?.device, vtepMac: this.lease?.backendData.vtepMac, podMtu: this.podMtu || undefined,
      peers: this.peers, leaseExpiresAt: this.lease?.expiresAt, lastReconcile: this.lastReconcile, peerLeases: this.peerLeases,
      healthAddr: this.o.healthAddr, iface: this.o.iface, vni: this.net?.vni, port: this.net?.port, ipMasq: this.o.ipMasq, updatedAt: Date.now(),
    };
  }

  /** For `gauze lab status` and doctor: the agent's view, on the node's disk. */
  private writeStatus(): void {
    try {
      mkdirSync(dirname(this.paths.statusFile), { recursive: true });
      writeFileSync(this.paths.statusFile, JSON.stringify(this.status(), null, 2) + "\n");
    } catch {
      // status is informational
    }
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
    for (const t of this.timers) clearTimeout(t);
    if (this.pending) clearTimeout(this.pending);
    this.server?.close();
    this.o.registry.close();
  }
}

/** `gauze agent --uninstall`: everything the agent made on this node goes; the lease is released. */
export async function uninstallAgent(o: Pick<AgentOptions, "node" | "iface" | "registry" | "root" | "log">): Promise<void> {
  const paths = nodePaths(o.root);
  removeNodeFiles(paths);
  removeMasquerade();
  const leases = await o.registry.listLeases().catch(() => [] as Lease[]);
  const mine = leases.find((l) => l.node === o.node);
  if (mine) await o.registry.releaseLease(mine.subnet);
  let net: ResolvedNetwork | undefined;
  try {
    net = resolveNetwork(await o.registry.getNetworkConfig());
  } catch {
    // no config: remove the default device anyway
  }
  const link = (() => { try { return readNodeLink(o.iface); } catch { return { iface: o.iface, ip: "0.0.0.0", mtu: 1500 }; } })();
  const backend = createBackend(net?.backendType ?? "vxlan", { link, network: net ? formatPrefix(net.network) : "10.244.0.0/16", vni: net?.vni ?? 1, port: net?.port ?? 8472 });
  backend.uninstall();
  o.log.info({ released: mine?.subnet }, "uninstalled");
}
