// The agent's side of the eBPF datapath (`"Datapath": "ebpf"`): loads bpf/datapath.c at
// bring-up under /sys/fs/bpf/gauze/<node>/datapath (adopting what a previous run pinned, so a
// restart loses no packet), attaches from_net to the underlay link and the VXLAN devices, and
// keeps both maps level-triggered: `remotes` from the leases each pass, `endpoints` from the pod
// records the plugin leaves (the plugin writes its own entry at ADD; the agent puts back what
// drifted and removes what no attachment has). A 1 s sweep re-attaches a detached program and
// repairs a stale or missing map entry. A node where the datapath cannot load (no tcx and no
// clsact, the verifier refuses, no bpffs) stays on the classic datapath: said once in the log,
// as a feature that is off, and the conflist carries no datapath block, so pods attach the
// classic way and are never without networking.
//
// NAT: an nftables rule (DNAT_MARK_NFT) marks the packets of DNATed connections after NAT, and
// watch_nat at the egress of the underlay, tunnel and bridge devices records their replies'
// tuples, which the programs then leave to conntrack (the classic path) to translate back.
//
// Policy: `classic()` names the addresses whose pods a NetworkPolicy isolates (or "all" while
// the policies are not known yet): their entries carry the classic flag, so their packets go
// through nftables both ways and the program never bypasses a policy.
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import { existsSync, rmSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import type { Rtnl } from "../kernel/netlink/index.ts";
import { BpfDatapath, DNAT_MARK_NFT, DNAT_MARK_TABLE, EP_CLASSIC, type Endpoint } from "../kernel/bpf/datapath.ts";
import { nftApply, nftDeleteTable, nftHasTable } from "../kernel/nft.ts";
import { PIN_ROOT, bpffsMounted, pinDir } from "../kernel/bpf/pin.ts";
import { tcPrograms } from "../kernel/bpf/features.ts";
import { type DatapathHook, type DatapathKind, type Decision, decide, endpointsFor, planMap, remotesFor } from "../dataplane/ebpf-datapath.ts";
import { podRecordDir, readPodRecords } from "../node/pod-record.ts";
import type { NodePaths } from "../node/paths.ts";
import type { Lease } from "../store/registry.ts";
import type { Feature } from "./status.ts";

export interface DatapathDevices {
  backend: string;
  directRouting: boolean;
  underlay: { iface: string; index: number; ip: string; prefixLen?: number };
  underlay6?: { ip: string; prefixLen?: number };
  /** The backend's devices (gauze.1, gauze6.1 for VXLAN). */
  tunnels: string[];
}

export interface DatapathKeeperOptions {
  node: string;
  /** /sys/fs/bpf/gauze/<node> (the observer's directory); the datapath's is <it>/datapath. */
  nodePinDir: string;
  paths: NodePaths;
  bridge: string;
  log: Logger;
  /** Addresses to send the classic way (isolated by a policy), or "all". */
  classic: () => ReadonlySet<string> | "all";
  /** The agent's metrics registry: the programs' decisions and the maps' sizes are read at each scrape. */
  registry?: Registry;
}

export const DATAPATH_FIX = "run the agent as root (CAP_BPF and CAP_NET_ADMIN) on Linux 6.6 or later (tcx) with bpffs mounted at /sys/fs/bpf, or set \"Datapath\": \"classic\"";

/** Checks a value as a datapath name (flags, config files): a clear error otherwise. */
export function parseDatapathFlag(v: string): DatapathKind {
  if (v === "classic" || v === "ebpf") return v;
  throw new Error(`--datapath ${JSON.stringify(v)}: use classic (the bridge and the node's routing) or ebpf (pod packets redirected by eBPF)`);
}

/** The keeper's report (status file, metrics, doctor). */
export interface DatapathReport {
  on: boolean; why?: string; pinDir: string; stats?: Record<string, number>; endpoints?: number; remotes?: number; repairs: number; links?: string[];
  /** tcx or clsact. */
  mode?: "tcx" | "clsact";
  /** The devices from_net belongs on (underlay, tunnels). */
  netDevices?: string[];
}

export class DatapathKeeper {
  private dp?: BpfDatapath;
  private nl?: Rtnl;
  private devices?: DatapathDevices;
  private leases: readonly Lease[] = [];
  private sweep?: ReturnType<typeof setInterval>;
  readonly pinDir: string;
  feature: Feature = { on: false, why: "not started" };
  /** Repairs made by the sweep (re-attached programs, map entries put back). */
  repairs = 0;

  constructor(private readonly o: DatapathKeeperOptions) {
    this.pinDir = join(o.nodePinDir, "datapath");
    if (o.registry) {
      // Read from the kernel's per-CPU counters when scraped: nothing is counted in userspace.
      const keeper = () => this;
      new Gauge({
        name: "gauze_datapath_packets", help: "packets bpf/datapath.c decided about since its maps were made, by decision (local, direct, tunnel, inbound: redirected; pass, classic, ttl, spoof, nat: left to the classic path)",
        labelNames: ["decision"], registers: [o.registry],
        collect() { const s = keeper().report().stats; if (s) for (const [k, v] of Object.entries(s)) this.set({ decision: k }, v); },
      });
      new Gauge({
        name: "gauze_datapath_entries", help: "entries in the eBPF datapath's maps (endpoints: this node's pod addresses; remotes: other nodes' subnets)",
        labelNames: ["map"], registers: [o.registry],
        collect() { const r = keeper().report(); this.set({ map: "endpoints" }, r.endpoints ?? 0); this.set({ map: "remotes" }, r.remotes ?? 0); },
      });
      new Gauge({ name: "gauze_datapath_repairs", help: "drift the eBPF datapath's sweep put back (detached programs, changed map entries)", registers: [o.registry], collect() { this.set(keeper().repairs); } });
    }
  }

  get running(): boolean {
    return !!this.dp;
  }

  /** Loads and attaches; false (the node stays classic, the feature says why) when it cannot. */
  start(nl: Rtnl, devices: DatapathDevices): boolean {
    this.nl = nl;
    this.devices = devices;
    if (this.dp) return true;
    const tc = tcPrograms();
    const why = !tc.ok ? `tc programs: ${tc.why}` : !bpffsMounted(this.pinDir) ? `bpffs is not mounted at ${this.pinDir}` : undefined;
    if (why) return this.off(why);
    try {
      this.dp = BpfDatapath.open({ pinDir: this.pinDir });
      for (const w of this.dp.warnings) this.o.log.warn({ warning: w }, "eBPF datapath loaded with a warning");
      // Without the mark, a DNATed connection's replies would be redirected past conntrack.
      nftApply(DNAT_MARK_NFT);
      this.reconcile();
    } catch (e) {
      this.dp?.close();
      this.dp = undefined;
      return this.off((e as Error).message);
    }
    this.feature = { on: true };
    this.sweep = setInterval(() => this.reconcile(true), 1000);
    this.o.log.info({ pinDir: this.pinDir, mode: this.dp.mode }, "eBPF datapath on: pod packets are redirected past the bridge and netfilter");
    return true;
  }

  private off(why: string): false {
    this.feature = { on: false, why, fix: DATAPATH_FIX };
    this.o.log.error({ err: why }, "eBPF datapath unavailable: this node stays on the classic datapath");
    return false;
  }

  /** The conflist's datapath block for the plugin (only while the datapath runs). */
  pluginConfig(): { type: "ebpf"; pinDir: string } | undefined {
    return this.dp ? { type: "ebpf", pinDir: this.pinDir } : undefined;
  }

  /** The leases of a pass: the remotes map follows them. */
  setLeases(leases: readonly Lease[]): void {
    this.leases = leases;
    // The mark rule, checked on each pass (it costs a process): put back when someone flushed it.
    if (this.dp) {
      try {
        if (!nftHasTable(DNAT_MARK_TABLE)) {
          nftApply(DNAT_MARK_NFT);
          this.o.log.warn({ table: DNAT_MARK_TABLE }, "eBPF datapath: the DNAT mark table was gone; put back");
        }
      } catch (e) {
        this.o.log.error({ err: (e as Error).message }, "eBPF datapath: cannot set the DNAT mark rule; replies of Service connections may bypass conntrack");
      }
    }
    this.reconcile();
  }

  /** Attachments and maps as they should be; `sweep`: count what had to be put back. */
  reconcile(sweep = false): void {
    const dp = this.dp, nl = this.nl, d = this.devices;
    if (!dp || !nl || !d) return;
    let fixed = 0;
    try {
      for (const dev of [d.underlay.iface, ...d.tunnels, this.o.bridge]) {
        const l = nl.link(dev);
        if (!l) continue; // the bridge: made by the first pod's ADD
        if (dev !== this.o.bridge && !dp.netAttached(l.index)) {
          dp.attachNet(dev, l.index);
          fixed++;
        }
        if (!dp.watchAttached(l.index)) {
          dp.attachWatch(dev, l.index);
          if (dev !== this.o.bridge) fixed++; // the bridge's first one is no repair
        }
      }
      const tunnel = (name: string | undefined) => (name ? nl.link(name)?.index : undefined);
      const t4 = tunnel(d.tunnels[0]), t6 = tunnel(d.tunnels[1]);
      const wantRemotes = remotesFor(this.leases, this.o.node, {
        backend: d.backend, directRouting: d.directRouting,
        underlay: {
          ifindex: d.underlay.index,
          ...(d.underlay.prefixLen !== undefined ? { subnet: `${d.underlay.ip}/${d.underlay.prefixLen}` } : {}),
          ...(d.underlay6?.prefixLen !== undefined ? { subnet6: `${d.underlay6.ip}/${d.underlay6.prefixLen}` } : {}),
        },
        ...(t4 !== undefined ? { tunnel: t4 } : {}), ...(t6 !== undefined ? { tunnel6: t6 } : {}),
      });
      fixed += this.apply(dp.remotes(), wantRemotes);
      fixed += this.syncEndpoints(dp, nl);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, "eBPF datapath: a pass failed; the next one tries again");
      return;
    }
    if (sweep && fixed) {
      this.repairs += fixed;
      this.o.log.warn({ repaired: fixed }, "eBPF datapath drifted (a program detached or a map entry changed by hand): put back");
    }
  }

  private apply<V extends object>(m: { entries(): Iterable<[string, V]>; update(k: string, v: V): void; delete(k: string): boolean }, want: Map<string, V>): number {
    const plan = planMap(new Map(m.entries()), want);
    for (const [k, v] of plan.put) m.update(k, v);
    for (const k of plan.del) m.delete(k);
    return plan.put.length + plan.del.length;
  }

  private syncEndpoints(dp: BpfDatapath, nl: Rtnl): number {
    const gwMac = nl.link(this.o.bridge)?.mac;
    const have = new Map(dp.endpoints().entries());
    const classic = this.o.classic();
    let fixed = 0;
    const pods: Parameters<typeof endpointsFor>[0][number][] = [];
    const veths = new Set<string>();
    for (const r of readPodRecords(podRecordDir(this.o.paths.subnetFile))) {
      if (!r.hostIface) continue;
      const veth = nl.link(r.hostIface);
      if (!veth) continue; // a record whose veth is gone: GC takes it
      veths.add(r.hostIface);
      const ips = r.ips.map((a) => (a.includes("/") ? a.slice(0, a.indexOf("/")) : a));
      const mac = r.podMac ?? ips.map((ip) => have.get(ip)?.mac).find((m) => !!m);
      if (!mac || !gwMac) continue; // the plugin's own entry stands until the record says more
      pods.push({ ips, ifindex: veth.index, mac, gwMac, classic: classic === "all" || ips.some((ip) => classic.has(ip)) });
      if (!BpfDatapath.podAttached({ pinDir: this.pinDir, mode: dp.mode }, veth.index)) {
        BpfDatapath.attachPod({ pinDir: this.pinDir, mode: dp.mode }, r.hostIface, veth.index);
        fixed++;
      }
    }
    fixed += this.apply(dp.endpoints(), endpointsFor(pods));
    // Pins of links whose pod veth is gone (DEL without the plugin, a crash): unpinned.
    for (const rel of dp.pinnedLinks()) {
      if (rel.startsWith("pod-") && !veths.has(rel.slice(4)) && !nl.link(rel.slice(4))) BpfDatapath.detachPod({ pinDir: this.pinDir, mode: dp.mode }, rel.slice(4));
    }
    return fixed;
  }

  /** For status, metrics and doctor: counters, entries and what is attached. */
  report(): DatapathReport {
    if (!this.dp) return { on: false, ...(this.feature.why ? { why: this.feature.why } : {}), pinDir: this.pinDir, repairs: this.repairs };
    const eps: [string, Endpoint][] = [...this.dp.endpoints().entries()];
    return {
      on: true, pinDir: this.pinDir, stats: this.dp.stats(), endpoints: eps.length, remotes: [...this.dp.remotes().keys()].length, repairs: this.repairs,
      links: this.dp.pinnedLinks(), mode: this.dp.mode,
      ...(this.devices ? { netDevices: [this.devices.underlay.iface, ...this.devices.tunnels] } : {}),
    };
  }

  /** What the programs do with one packet, from the maps in the kernel (trace's redirect hop). */
  decide(hook: DatapathHook, src: string, dst: string): Decision | undefined {
    if (!this.dp) return undefined;
    return decide(hook, src, dst, new Map(this.dp.endpoints().entries()), new Map(this.dp.remotes().entries()));
  }

  /** Endpoints the classic flag sends through the node. */
  classicCount(): number {
    return this.dp ? [...this.dp.endpoints().entries()].filter(([, e]) => e.flags & EP_CLASSIC).length : 0;
  }

  /** The agent stops: the pins stay (programs keep running, the next agent adopts them). */
  stop(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.dp?.close();
    this.dp = undefined;
  }

  /** Uninstall or a switch to classic: every link, program, map and pin goes. */
  static remove(nodePinDir: string, netns?: string): string[] {
    return BpfDatapath.remove(join(nodePinDir, "datapath"), netns);
  }
}

/**
 * `--uninstall` and the lab's down: the node's datapath (links detached, pins removed; a node
 * namespace already gone took the attachments with it, only the pins are left), then the node's
 * pin directory when nothing else of gauze's is in it. What was removed, in words.
 */
export function removeDatapathPins(node: string, netns?: string): string[] {
  const nodeDir = pinDir(node, PIN_ROOT);
  const dir = join(nodeDir, "datapath");
  const out: string[] = [];
  try {
    if (nftDeleteTable(DNAT_MARK_TABLE, netns ? { netns } : {})) out.push(`nftables table inet ${DNAT_MARK_TABLE}`);
  } catch { /* no nft: no table */ }
  if (!existsSync(dir) || !bpffsMounted(dir)) return out;
  try {
    out.push(...BpfDatapath.remove(dir, netns));
  } catch {
    try {
      out.push(...BpfDatapath.remove(dir)); // the namespace is gone: no clsact filters left to find in it
    } catch (e) {
      // bpf() refused (an agent without CAP_BPF): the pins are files all the same. A tcx link
      // whose last pin goes and that no process holds is released, and detached with it.
      rmSync(dir, { recursive: true, force: true });
      out.push(`pins under ${dir}, unlinked (bpf() refused: ${(e as Error).message})`);
    }
  }
  try { rmdirSync(nodeDir); } catch { /* not empty (the observer's), or not there */ }
  return out;
}
