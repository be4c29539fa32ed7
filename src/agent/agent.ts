// The node agent: leases this node's subnet, sets up the backend's device, writes the subnet
// file and then the conflist (the node turns Ready), masquerades, and keeps every other node's
// routes/neighbours/FDB in step with the registry. Level-triggered: each pass reads what the
// backend owns (one netlink dump per kind), plans the difference and applies only that. Passes
// run on registry changes, on kernel events that touch what gauze owns (someone deleted a route
// by hand: it is back within milliseconds), and on a timer as a safety net. A restart adopts
// what is already right and never tears the dataplane down; only uninstall removes it.
// The lease (lease.ts), the status report (status.ts), the observer's wiring (observing.ts) and
// the node's link (node-link.ts) live beside this file; this one runs bring-up and the passes.
import type { Logger } from "pino";
import type { Server } from "node:http";
import { type FSWatcher, existsSync, watch } from "node:fs";
import { join } from "node:path";
import { checkBrNetfilter } from "./prereq.ts";
import { type Link, Rtnl } from "../kernel/netlink/index.ts";
import { type KernelEvent, type KernelWatch, watchKernel } from "../kernel/netlink/monitor.ts";
import { formatIP, formatPrefix, nextIP, parseCIDR } from "../net/cidr.ts";
import { type Lease, type SubnetRegistry, resolveNetwork, type ResolvedNetwork } from "../store/registry.ts";
import { type Backend, type KernelView, type NodeLink, type PodAttachment, applyPlan, viewAfter } from "../backend/backend.ts";
import { backendDevices, backendTypes, createNetworkBackend } from "../backend/registry.ts";
import { type InvalidLease, validateLeases } from "../store/validate.ts";
import { foreignConfig, installConflist, previousSubnet, removeConflist, writeSubnetFile } from "./node-files.ts";
import { type NodePaths, nodePaths } from "../node/paths.ts";
import { ensureMasquerade } from "./masquerade.ts";
import { createMetrics, type AgentMetrics } from "./metrics.ts";
import { serveHealth, type Readiness } from "./http.ts";
import type { FlowObserver } from "./flows.ts";
import { serveApi } from "./api.ts";
import type { SubnetEnv } from "../node/subnet-file.ts";
import { LeaseKeeper } from "./lease.ts";
import { readNodeLink, readNodeLink6 } from "./node-link.ts";
import { describeEvent, removeOtherDevices } from "./kernel-events.ts";
import { type AgentStatus, type Feature, degradedLine, writeStatusFile } from "./status.ts";
import { type ObserverMode, removeObserverPins, startObserving } from "./observing.ts";
import { PolicyEnforcer } from "./policy.ts";
import { DatapathKeeper, removeDatapathPins } from "./datapath.ts";
import { PIN_ROOT, pinDir } from "../kernel/bpf/pin.ts";

export interface AgentOptions {
  node: string;
  /** The underlay interface; absent: the one the IPv4 default route leaves through (as flannel picks it). */
  iface?: string;
  /** Pod MTU instead of the underlay's minus the backend's overhead (it may only be lower). */
  mtu?: number;
  registry: SubnetRegistry;
  /** Prefix for the node's paths ("" on a real node; the node's tree in the lab). */
  root: string;
  ipMasq: boolean;
  healthAddr: string;
  leaseTtlMs: number;
  resyncMs: number;
  bridge: string;
  log: Logger;
  /** Record flows and drops (default on): `--no-observe` turns it off. */
  observe?: boolean;
  /** What flows are observed with: eBPF, the packet ring, or eBPF where the kernel allows it (auto, the default). */
  observer?: ObserverMode;
  /** NetworkPolicy: "auto" (on where the Kubernetes API is reachable: a kubeconfig, or in a cluster), "on", "off". */
  networkPolicy?: "auto" | "on" | "off";
  /** What a policy change does to established connections: keep (default) or recheck. */
  policyEstablished?: "keep" | "recheck";
  /** The Kubernetes API's kubeconfig (absent: the in-cluster config). */
  kubeconfig?: string;
  /** The datapath over the network config's Datapath (`--datapath`). */
  datapath?: "classic" | "ebpf";
}

type Trigger = "start" | "registry" | "timer" | "kernel";

export class Agent {
  private readonly paths: NodePaths;
  private readonly metrics: AgentMetrics;
  private nl?: Rtnl;
  private backend?: Backend;
  private net?: ResolvedNetwork;
  private readonly keeper: LeaseKeeper;
  private link?: NodeLink;
  /** Dual-stack: the underlay link with its IPv6 address. */
  private link6?: NodeLink;
  private podMtu = 0;
  /** macvlan: how pods attach (in the conflist and the subnet file); absent: the bridge. */
  private attachment?: PodAttachment;
  private state: Readiness = { ready: false, reason: "starting" };
  private peers = 0;
  private leases: Lease[] = [];
  private device?: Link;
  /**
   * What the backend owns in the kernel, as of the last pass and the changes it made: a pass
   * the registry starts plans against it instead of reading the kernel again. Any kernel event
   * the last plan did not ask for (someone else's change), a lost event, or the timer drops it.
   */
  private view?: KernelView;
  private wanted = new Set<string>();
  private invalid: InvalidLease[] = [];
  private lastReconcile?: AgentStatus["lastReconcile"];
  private repairs: NonNullable<AgentStatus["repairs"]> = { count: 0 };
  private stopWatch?: () => void;
  private kernelWatch?: KernelWatch;
  /** net.d: a config another CNI drops there can take over the node; noticed at once. */
  private confWatch?: FSWatcher;
  private timers: ReturnType<typeof setTimeout>[] = [];
  private server?: Server;
  private api?: import("./api.ts").Api;
  private observer?: FlowObserver;
  private policy?: PolicyEnforcer;
  /** The eBPF datapath, when the network config or --datapath asks for it and it could load. */
  private datapath?: DatapathKeeper;
  private observeProblem?: string;
  /** What the agent does beyond the dataplane (flows, drops), on or off with why. */
  private features: Record<string, Feature> = {};
  private pending?: { timer: ReturnType<typeof setTimeout>; trigger: Trigger; event?: string; at: number };
  private running = false;
  private stopped = false;
  private lastListMs = 0;

  constructor(private readonly o: AgentOptions) {
    this.paths = nodePaths(o.root);
    this.metrics = createMetrics(o.node);
    this.keeper = new LeaseKeeper({
      registry: o.registry, node: o.node, ttlMs: o.leaseTtlMs, metrics: this.metrics, log: o.log,
      onRegained: (got) => {
        this.backend!.activate(this.nl!, got);
        const gw = formatIP(nextIP(parseCIDR(got.subnet)!.prefix.ip));
        writeSubnetFile(this.paths, this.subnetEnv(gw));
        this.view = undefined;
        installConflist(this.paths, this.o.bridge, this.attachment, this.datapath?.pluginConfig());
      },
      // No subnet of its own: no new pod may get an address here (it could be another node's).
      // Taking the conflist away turns the node NotReady for the runtime; the next pass retries.
      onLost: (reason) => {
        removeConflist(this.paths);
        this.setState({ ready: false, reason });
      },
    });
  }

  private get lease(): Lease | undefined {
    return this.keeper.lease;
  }

  async start(): Promise<void> {
    this.server = await serveHealth(this.o.healthAddr, this.metrics, () => this.readiness());
    if (this.o.observe === false) {
      this.observeProblem = "the agent runs with --no-observe";
      // An earlier agent's pinned programs would go on observing (and costing) with nobody reading them: off is off.
      try {
        for (const r of removeObserverPins(this.o.node)) this.o.log.info({ removed: r }, "--no-observe: removed an earlier agent's eBPF observer");
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, "--no-observe: an earlier agent's eBPF observer could not be removed");
      }
    }
    try {
      this.api = await serveApi(this.paths.apiSocket, {
        observer: () => this.observer, unavailable: () => this.observeProblem ?? "the agent is starting", features: () => this.features, policy: () => this.policy?.status,
        judge: (src, dst, proto, port) => this.policy?.judge(src, dst, proto, port, { count: false }),
        decide: (hook, src, dst) => this.datapath?.decide(hook, src, dst),
      });
    } catch (e) {
      this.o.log.warn({ socket: this.paths.apiSocket, err: (e as Error).message }, "no local API: gauze observe cannot read this node");
    }
    await this.bringUp();
  }

  /** Everything up to Ready; on a failure, says why and tries again with backoff. */
  private async bringUp(attempt = 0): Promise<void> {
    if (this.stopped) return;
    try {
      const t0 = performance.now();
      const phases: Record<string, number> = {};
      const phase = (name: string) => { phases[name] = +(performance.now() - t0).toFixed(1); };
      const brnf = checkBrNetfilter();
      if (brnf) throw new Error(brnf);
      this.nl ??= Rtnl.open();
      this.net = resolveNetwork(await this.o.registry.getNetworkConfig());
      phase("config");
      this.link = readNodeLink(this.nl, this.o.iface);
      const network = formatPrefix(this.net.network);
      this.link6 = this.net.ipv6 ? readNodeLink6(this.nl, this.link) : undefined;
      this.backend = createNetworkBackend({
        type: this.net.backendType, link: this.link, network: this.net.network, config: this.net.backendConfig, root: this.o.root,
        ...(this.net.ipv6 && this.link6 ? { ipv6: { ...this.net.ipv6, self: this.o.node, link: this.link6 } } : {}),
      });
      removeOtherDevices(this.nl, backendDevices(this.backend), this.o.log);
      const { backendData, podMtu: maxMtu } = this.backend.setup(this.nl);
      if (this.o.mtu !== undefined && this.o.mtu > maxMtu) throw new Error(`--mtu ${this.o.mtu} is more than ${this.backend.type} over ${this.link.iface} allows (${maxMtu}): give at most ${maxMtu}`);
      const podMtu = this.o.mtu ?? maxMtu;
      this.podMtu = podMtu;
      this.attachment = this.backend.podAttachment?.();
      phase("device");
      // The subnet this node had before (flannel does the same from its subnet.env): kept when
      // the lease expired while the agent was away and nobody took it, so running pods stay valid.
      const lease = await this.keeper.acquire({ node: this.o.node, publicIp: this.link.ip, ...(this.link6 ? { publicIpv6: this.link6.ip } : {}), backendType: this.backend.type, backendData }, previousSubnet(this.paths));
      phase("lease");
      this.backend.activate(this.nl, lease);
      // macvlan pods leave through the underlay's router, not through this node: nothing to masquerade.
      await this.startPolicy();
      this.startObserver();
      this.startDatapath();
      ensureMasquerade(network, this.o.ipMasq && !this.attachment, this.o.bridge);
      if (this.net.ipv6) ensureMasquerade(formatPrefix(this.net.ipv6.network), this.o.ipMasq, this.o.bridge, undefined, 6);
      phase("rules");
      // As flannel writes it: the subnet file's SUBNET is the gateway address with the length.
      const gw = formatIP(nextIP(parseCIDR(lease.subnet)!.prefix.ip));
      writeSubnetFile(this.paths, this.subnetEnv(gw));
      installConflist(this.paths, this.o.bridge, this.attachment, this.datapath?.pluginConfig());
      this.stopWatch = this.o.registry.watch(() => this.schedule("registry"));
      try {
        this.confWatch = watch(this.paths.confDir, () => this.schedule("timer"));
      } catch {
        // no inotify here: the timer's passes notice it
      }
      this.kernelWatch = watchKernel({
        onEvents: (events) => this.onKernelEvents(events),
        onOverrun: () => { this.view = undefined; this.o.log.warn("kernel events were lost (socket buffer full); full pass"); this.schedule("kernel", "event overrun"); },
        onError: (e) => this.o.log.warn({ err: e.message }, "kernel event socket"),
      });
      // The first pass programs the peers and reports ready: the status file never says ready
      // without the peers it was ready with.
      phase("files");
      await this.resync("start");
      phase("first pass");
      this.o.log.info({ subnet: lease.subnet, nodeIp: this.link.ip, backend: this.backend.type, device: this.backend.device, podMtu, peers: this.peers, ms: +(performance.now() - t0).toFixed(1), phases }, "ready: subnet leased, subnet file and conflist written, peers programmed");
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

  /** Flows and drops on this node (once: what is off is said in the API, the log, /readyz and the status). */
  private startObserver(): void {
    if (this.observer || this.o.observe === false || !this.link) return;
    const port = (this.backend?.options as { port?: number } | undefined)?.port ?? 8472;
    const r = startObserving({
      node: this.o.node, underlay: this.link.iface, bridge: this.o.bridge, vxlanPort: port, paths: this.paths, log: this.o.log, metrics: this.metrics, nl: this.nl!,
      judge: (src, dst, proto, dstPort) => this.policy?.judge(src, dst, proto, dstPort), ...(this.o.observer ? { mode: this.o.observer } : {}),
    });
    this.observer = r.observer;
    this.observeProblem = r.problem;
    this.features = { ...this.features, ...r.features };
  }

  /**
   * The eBPF datapath (once): loaded and attached to the underlay and the tunnel devices, or
   * off with why (the node stays classic: the conflist then has no datapath block).
   */
  private startDatapath(): void {
    if (this.datapath || !this.link || !this.backend) return;
    if ((this.o.datapath ?? this.net?.datapath) !== "ebpf") {
      // A switch to classic (or a node that ran ebpf before): nothing of the other datapath stays,
      // or the old programs would go on redirecting pods past the bridge this node now uses.
      // Only where it ran: the pins are its trace (the nft table alone would cost a spawn on every start).
      if (existsSync(join(pinDir(this.o.node, PIN_ROOT), "datapath"))) {
        for (const r of removeDatapathPins(this.o.node)) this.o.log.info({ removed: r }, "classic datapath: removed what the eBPF datapath had left");
      }
      return;
    }
    const k = new DatapathKeeper({
      node: this.o.node, nodePinDir: pinDir(this.o.node, PIN_ROOT), paths: this.paths, bridge: this.o.bridge, log: this.o.log, registry: this.metrics.registry,
      // Fail closed: while the policies are not programmed yet, every pod goes the classic way.
      classic: () => (this.policy ? this.policy.classicIps() : new Set<string>()),
    });
    const opts = this.backend.options as { directRouting?: boolean };
    const on = k.start(this.nl!, {
      backend: this.backend.type, directRouting: opts.directRouting === true, tunnels: this.backend.type === "vxlan" ? backendDevices(this.backend) : [],
      underlay: { iface: this.link.iface, index: this.link.index, ip: this.link.ip, ...(this.link.prefixLen !== undefined ? { prefixLen: this.link.prefixLen } : {}) },
      ...(this.link6 ? { underlay6: { ip: this.link6.ip, ...(this.link6.prefixLen !== undefined ? { prefixLen: this.link6.prefixLen } : {}) } } : {}),
    });
    this.features.datapath = k.feature;
    this.metrics.feature.set({ feature: "datapath" }, on ? 1 : 0);
    if (on) this.datapath = k;
    else if (existsSync(k.pinDir)) {
      // A predecessor's programs would go on redirecting with maps nobody keeps (a pod made now
      // is not in them, an address handed out again points at the old veth): all of the node
      // goes the classic way, as its conflist now says.
      try {
        for (const r of removeDatapathPins(this.o.node)) this.o.log.warn({ removed: r }, "eBPF datapath unavailable: removed an earlier agent's datapath, which nobody could keep up to date");
      } catch (e) {
        this.o.log.error({ err: (e as Error).message }, "eBPF datapath unavailable, and an earlier agent's programs could not be removed: gauze agent --uninstall on this node, then start the agent again");
      }
    }
  }

  /**
   * NetworkPolicy on this node's pods, where the Kubernetes API is reachable (once: a failure
   * says why, as a feature that is off, and the agent goes on forwarding).
   */
  private async startPolicy(): Promise<void> {
    const mode = this.o.networkPolicy ?? "auto";
    if (this.policy || mode === "off") return;
    // Without an API there are no policies to enforce: not a feature that is off, just none.
    if (mode === "auto" && !this.o.kubeconfig && !process.env.KUBERNETES_SERVICE_HOST) return;
    const p = new PolicyEnforcer({
      node: this.o.node, ...(this.o.kubeconfig ? { kubeconfig: this.o.kubeconfig } : {}), log: this.o.log, registry: this.metrics.registry,
      nodeIps: () => [this.link?.ip, this.link6?.ip, ...this.gatewayIps()].filter((x): x is string => !!x),
      programmed: () => this.datapath?.reconcile(),
      ...(this.o.policyEstablished ? { established: this.o.policyEstablished } : {}),
    });
    try {
      await p.start();
      this.policy = p;
      this.features.networkPolicy = { on: true };
    } catch (e) {
      this.features.networkPolicy = { on: false, why: (e as Error).message, fix: "give the agent a kubeconfig it can read (--kubeconfig), with get/list/watch on pods, namespaces and networkpolicies" };
      this.o.log.error({ err: (e as Error).message }, "NetworkPolicy is not enforced on this node");
    }
  }

  /** The pod bridge's gateway addresses (the subnets' first addresses): the node, as its pods see it. */
  private gatewayIps(): string[] {
    const out: string[] = [];
    for (const s of [this.lease?.subnet, this.lease?.ipv6Subnet]) {
      const c = s ? parseCIDR(s) : undefined;
      if (c) out.push(formatIP(nextIP(c.prefix.ip)));
    }
    return out;
  }

  /** Kernel events about what the backend owns, that differ from the last plan, start a repair pass. */
  private onKernelEvents(events: KernelEvent[]): void {
    if (this.stopped) return;
    // A link that came or went (a pod's veth): the eBPF observer attaches to it at once.
    if (events.some((e) => e.kind === "link")) this.observer?.linksChanged();
    if (!this.backend) return;
    const hit = events.find((e) => this.backend!.concerns(e, this.device, this.wanted));
    if (hit) {
      this.view = undefined;
      this.schedule("kernel", describeEvent(hit));
    }
  }

  /** Debounces bursts (many nodes joining at once, a flush of many routes) into one pass. */
  private schedule(trigger: Trigger, event?: string): void {
    if (this.stopped) return;
    if (this.pending) {
      // A registry change needs the re-list; a kernel event alone does not.
      if (trigger === "registry") this.pending.trigger = "registry";
      return;
    }
    this.pending = {
      trigger, at: performance.now(), ...(event ? { event } : {}),
      timer: setTimeout(() => {
        const p = this.pending!;
        this.pending = undefined;
        void this.resync(p.trigger, p);
      }, 1),
    };
  }

  private loop(): void {
    const t = setInterval(() => this.schedule("timer"), this.o.resyncMs);
    this.timers.push(t as unknown as ReturnType<typeof setTimeout>);
  }

  /** A pass: renew the lease when half of it is gone, re-list (unless only the kernel changed), reconcile. */
  private async resync(trigger: Trigger, pending?: { event?: string; at: number }): Promise<void> {
    if (this.stopped || !this.lease || !this.backend) return;
    if (trigger === "timer") this.policy?.verify();
    if (this.running) {
      // One pass at a time; this one runs again right after.
      this.schedule(trigger, pending?.event);
      return;
    }
    this.running = true;
    try {
      if (trigger !== "kernel") {
        if (!(await this.keeper.renewIfDue())) return;
        const tList = performance.now();
        this.leases = await this.o.registry.listLeases();
        this.lastListMs = performance.now() - tList;
        if (!this.keeper.listedIn(this.leases)) {
          if (!(await this.keeper.regain(`${this.lease.subnet} is gone from the registry`))) return;
          this.leases = await this.o.registry.listLeases();
        }
      }
      this.reconcile(trigger, pending ? performance.now() - pending.at : 0);
      if (trigger === "kernel" && pending) {
        const ms = +(performance.now() - pending.at).toFixed(2);
        this.repairs = { count: this.repairs.count + 1, last: { at: Date.now(), event: pending.event ?? "", ms } };
        this.metrics.repairs.inc();
      }
      // net.d is read again only when it may have changed (its watch, the timer, the registry):
      // a kernel repair pass does not pay for it.
      const blocker = checkBrNetfilter() ?? (trigger === "kernel" ? this.lastShadow : this.shadowed());
      if (blocker) this.setState({ ready: false, reason: blocker });
      else if (!this.state.ready) this.setState({ ready: true, reason: "" });
    } catch (e) {
      this.metrics.registryErrors.inc();
      // The dataplane stays as it is; the next event or timer tries again.
      this.setState({ ready: false, reason: `registry unreachable: ${(e as Error).message}` });
      this.o.log.warn({ err: (e as Error).message }, "resync failed; dataplane left as it is");
    } finally {
      this.running = false;
    }
  }

  /** `queuedMs`: from the event that asked for the pass to the pass starting (debounce, the lease renewal, the listing). */
  /** The peers last programmed, by subnet: what an unreadable record is taken to still mean. */
  private lastGood = new Map<string, Lease>();

  private reconcile(trigger: Trigger, queuedMs = 0): void {
    const backend = this.backend!;
    const nl = this.nl!;
    const peers = this.leases.filter((l) => l.node !== this.o.node);
    const t0 = performance.now();
    try {
      // Only a registry change may plan against the kept view; every other pass reads the kernel.
      let view = trigger === "registry" && this.view ? this.view : backend.read(nl);
      this.view = undefined;
      if (backend.needsSetup(view)) {
        // The device was deleted, set down or changed by hand: make it again, then the peers.
        this.o.log.warn({ device: backend.device }, "overlay device missing or changed; setting it up again");
        backend.setup(nl);
        backend.activate(nl, this.lease!);
        view = backend.read(nl);
      }
      const readMs = performance.now() - t0;
      // Leases are input: each is checked before anything is programmed from it.
      const checked = validateLeases(peers, {
        network: this.net!.network, subnetLen: this.net!.subnetLen, self: this.o.node, ...(this.lease ? { selfSubnet: this.lease.subnet } : {}),
        underlayFamily: 4, backendTypes: backendTypes(),
      });
      // A record that became unreadable (garbled, cut short) says nothing new about its node: the
      // peer stays as last seen, until its record is valid again or gone (deleted, or its TTL
      // ran out). The record is still refused and reported. A record that reads fine but says
      // something wrong is not covered: that peer is removed.
      const programmed = [...checked.valid];
      for (const l of peers) {
        const last = l.problem ? this.lastGood.get(l.subnet) : undefined;
        if (last && !programmed.some((v) => v.subnet === last.subnet)) programmed.push(last);
      }
      this.lastGood = new Map(programmed.map((l) => [l.subnet, l]));
      this.datapath?.setLeases(programmed);
      const plan = backend.plan(view, programmed);
      const planMs = performance.now() - t0 - readMs;
      this.device = view.device;
      this.wanted = plan.wanted;
      this.noteInvalid([...checked.invalid, ...plan.skipped.map((x) => ({ key: peers.find((p) => p.node === x.node && p.subnet === x.subnet)?.key ?? x.subnet, node: x.node, subnet: x.subnet, why: x.why }))]);
      const r = applyPlan(nl, plan, (c, message) => this.o.log.warn({ peer: c.peer || undefined, change: c.text, err: message }, "kernel refused a change"));
      const ms = performance.now() - t0;
      // A refusal leaves the kernel unknown: the next pass reads it again.
      if (r.failed === 0) this.view = viewAfter(view, r.done);
      this.peers = plan.peers;
      this.metrics.peers.set(plan.peers);
      this.metrics.invalidLeases.set(this.invalid.length);
      this.metrics.reconciles.inc({ result: r.failed ? "partial" : "ok" });
      this.metrics.reconcileSeconds.observe(ms / 1000);
      this.metrics.kernelChanges.inc({ op: "add" }, r.added);
      this.metrics.kernelChanges.inc({ op: "del" }, r.removed);
      this.metrics.kernelRefusals.inc(r.failed);
      this.lastReconcile = { at: Date.now(), ms: +ms.toFixed(2), readMs: +readMs.toFixed(2), added: r.added, removed: r.removed, failed: r.failed, trigger };
      if (r.added || r.removed || r.failed) {
        this.o.log.info({ trigger, peers: plan.peers, added: r.added, removed: r.removed, failed: r.failed, ms: +ms.toFixed(2), readMs: +readMs.toFixed(2), planMs: +planMs.toFixed(2), listMs: +this.lastListMs.toFixed(2), queuedMs: +queuedMs.toFixed(2) }, "reconciled");
      }
      this.writeStatus();
    } catch (e) {
      this.metrics.reconciles.inc({ result: "error" });
      this.o.log.error({ err: (e as Error).message }, "reconcile failed");
    }
  }

  /** Keeps the refused leases for status and doctor; logs each one once, when it first appears. */
  private noteInvalid(now: InvalidLease[]): void {
    const before = new Set(this.invalid.map((x) => `${x.key}\u0000${x.why}`));
    for (const x of now) {
      if (!before.has(`${x.key}\u0000${x.why}`)) this.o.log.warn({ key: x.key, node: x.node, subnet: x.subnet, why: x.why }, "lease refused: not programmed");
    }
    this.invalid = now;
  }

  private lastShadow?: string;

  /** The subnet file's contents for this node (the lease's gateway address given). */
  private subnetEnv(gw: string): SubnetEnv {
    const v6 = this.net!.ipv6 && this.lease?.ipv6Subnet ? parseCIDR(this.lease.ipv6Subnet) : undefined;
    return {
      network: formatPrefix(this.net!.network), subnet: `${gw}/${this.net!.subnetLen}`, mtu: this.podMtu, ipMasq: this.o.ipMasq && !this.attachment,
      ...(this.attachment ? { underlay: this.attachment.underlay, underlayGateway: this.attachment.underlayGateway } : {}),
      ...(v6 ? { ipv6Network: formatPrefix(this.net!.ipv6!.network), ipv6Subnet: `${formatIP(nextIP(v6.prefix.ip))}/${v6.prefix.bits}` } : {}),
    };
  }

  /** A foreign config that wins over gauze's in net.d: said once in the log, and the node is not ready. */
  private shadowed(): string | undefined {
    const why = foreignConfig(this.paths);
    if (why && why !== this.lastShadow) this.o.log.error({ confDir: this.paths.confDir }, why);
    this.lastShadow = why;
    return why;
  }

  /** /readyz: the last known state, the kernel prerequisite checked live, and what is off (ready, but degraded). */
  private readiness(): Readiness {
    const brnf = checkBrNetfilter();
    if (brnf) return { ready: false, reason: brnf };
    const degraded = degradedLine(this.features);
    return degraded && this.state.ready ? { ...this.state, degraded } : this.state;
  }

  private setState(s: Readiness): void {
    this.state = s;
    this.metrics.ready.set(s.ready ? 1 : 0);
    this.writeStatus();
  }

  status(): AgentStatus {
    const opts = this.backend?.options as { vni?: number; port?: number } | undefined;
    return {
      node: this.o.node, pid: process.pid, ready: this.state.ready, reason: this.state.reason,
      nodeIp: this.link?.ip, subnet: this.lease?.subnet, network: this.net ? formatPrefix(this.net.network) : undefined,
      backend: this.backend?.type, backendOptions: this.backend?.options, ...(this.net ? { backendConfig: this.net.backendConfig } : {}), overhead: this.backend?.overhead, device: this.backend?.device,
      vtepMac: this.lease?.backendData.vtepMac, podMtu: this.podMtu || undefined,
      ...(this.net?.ipv6 ? {
        ipv6Network: formatPrefix(this.net.ipv6.network), nodeIpv6: this.link6?.ip, ipv6Subnet: this.lease?.ipv6Subnet,
        ...(this.backend ? { device6: backendDevices(this.backend)[1] } : {}), v6VtepMac: this.lease?.backendData.v6VtepMac,
      } : {}),
      peers: this.peers, leaseExpiresAt: this.lease?.expiresAt, lastReconcile: this.lastReconcile, repairs: this.repairs,
      peerLeases: this.leases.filter((l) => l.node !== this.o.node && !l.problem && !this.invalid.some((x) => x.key === (l.key ?? l.subnet)))
        .map((l) => ({
          node: l.node, subnet: l.subnet, publicIp: l.publicIp, backendType: l.backendType, ...(l.backendData.vtepMac ? { vtepMac: l.backendData.vtepMac } : {}), ...(l.backendData.publicKey ? { publicKey: l.backendData.publicKey } : {}),
          ...(l.ipv6Subnet ? { ipv6Subnet: l.ipv6Subnet } : {}), ...(l.publicIpv6 ? { publicIpv6: l.publicIpv6 } : {}), ...(l.backendData.v6VtepMac ? { v6VtepMac: l.backendData.v6VtepMac } : {}),
        })),
      invalidLeases: this.invalid, healthAddr: this.o.healthAddr, iface: this.link?.iface ?? this.o.iface, vni: opts?.vni, port: opts?.port, ipMasq: this.o.ipMasq, bridge: this.o.bridge,
      ...(Object.keys(this.features).length ? { features: this.features } : {}), ...(this.policy ? { policy: this.policy.status } : {}),
      ...(this.datapath ? { datapath: (({ stats: _s, ...r }) => r)(this.datapath.report()) } : {}), updatedAt: Date.now(),
    };
  }

  /** For `gauze lab status` and doctor: the agent's view, on the node's disk. */
  private writeStatus(): void {
    writeStatusFile(this.paths.statusFile, this.status());
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
    this.kernelWatch?.stop();
    this.confWatch?.close();
    for (const t of this.timers) clearTimeout(t);
    if (this.pending) clearTimeout(this.pending.timer);
    this.server?.close();
    this.observer?.stop();
    this.datapath?.stop();
    this.policy?.stop();
    this.api?.close();
    this.o.registry.close();
    this.nl?.close();
  }
}

