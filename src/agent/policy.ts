// NetworkPolicy on this node: the agent watches NetworkPolicies, Namespaces and Pods through the
// Kubernetes API (the official client's informers: list, then watch from the resourceVersion,
// re-list on 410 Gone), and after every change (debounced) computes what its own pods allow with
// the one evaluator (policy/), compiles it (dataplane/policy-nft.ts) and applies only what changed
// as one nftables transaction. A policy it cannot parse fails closed for the pods it selects and
// is named in the log, /metrics, the status file and doctor; it never opens traffic and never
// stops the others. The same evaluator names the policy behind a dropped packet and gives an
// AUDIT verdict for what an audit-mode policy would deny (the observer asks `judge`).
//
// Established connections: by default conntrack lets a connection that was allowed when it began
// go on after a policy changes (Calico's choice; the API leaves it to the implementation);
// `--policy-established recheck` judges every packet of a connection's opening direction again,
// so a change cuts what it now denies (replies still pass on conntrack alone).
import type { Logger } from "pino";
import type { KubeConfig, V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { Histogram, Gauge, Counter, type Registry } from "prom-client";
import { NftError, nftApply, nftDeleteTable, nftHasTable, nftTableJson } from "../kernel/nft.ts";
import { POLICY_TABLE, type NftModel, changes, compilePolicy, script } from "../dataplane/policy-nft.ts";
import { compileWorld, evaluate, nodeAllowRules, nsInfoFromV1, parsePolicy, podInfoFromV1, reasonLine } from "../policy/index.ts";
import type { ParsedPolicy, PolicyIndex, Protocol, Query } from "../policy/index.ts";

export interface PolicyOptions {
  node: string;
  /** Absent: the in-cluster config (a DaemonSet pod's service account). */
  kubeconfig?: string;
  log: Logger;
  registry: Registry;
  /** This node's own addresses (underlay, bridge gateway): traffic between a pod and them is always allowed. */
  nodeIps: () => string[];
  /** Where the rules go: the kernel's nftables (default), or a stand-in for a test that only watches. */
  nft?: { apply(text: string): void; has(table: string): boolean };
  /** Called once the rules are in, before the generation is published: the eBPF datapath moves newly isolated pods onto the classic path here. */
  programmed?: () => void;
  /** What a policy change does to established connections (dataplane/policy-nft.ts); default keep. */
  established?: "keep" | "recheck";
}

export interface PolicyStatus {
  /** The highest resourceVersion of the objects the programmed rules were computed from. */
  generation: number;
  programmedAt?: number;
  /** Milliseconds from the change arriving to the rules being in force, last time. */
  lastMs?: number;
  localPods: number;
  isolatedPods: number;
  chains: number;
  rules: number;
  policies: number;
  invalid: { policy: string; problems: string[] }[];
  error?: string;
}

export interface Judgement {
  verdict: "denied" | "audit" | "allowed";
  policy?: string;
  reason: string;
}

type K8s = typeof import("@kubernetes/client-node");
type Informer<T> = { list(): T[]; start(): Promise<void>; stop(): Promise<void>; on(verb: string, cb: (o?: T) => void): void };

const PROTO: Record<number, Protocol> = { 6: "TCP", 17: "UDP", 132: "SCTP" };

export class PolicyEnforcer {
  private informers: Informer<unknown>[] = [];
  private applied?: NftModel;
  private index?: PolicyIndex;
  private timer?: ReturnType<typeof setTimeout>;
  private changedAt = 0;
  private stopped = false;
  private maxRv = 0;
  private synced = new Set<string>();
  readonly status: PolicyStatus = { generation: 0, localPods: 0, isolatedPods: 0, chains: 0, rules: 0, policies: 0, invalid: [] };
  private readonly m;

  constructor(private readonly o: PolicyOptions) {
    const r = [o.registry];
    this.m = {
      generation: new Gauge({ name: "gauze_policy_generation", help: "highest resourceVersion of the NetworkPolicies, Namespaces and Pods the programmed rules were computed from", registers: r }),
      program: new Histogram({ name: "gauze_policy_program_seconds", help: "from a policy, namespace or pod change arriving to the node's rules in force", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: r }),
      invalid: new Gauge({ name: "gauze_policy_invalid", help: "NetworkPolicies that could not be parsed: they fail closed for the pods they select (see the log and doctor)", registers: r }),
      isolated: new Gauge({ name: "gauze_policy_isolated_pods", help: "this node's pods isolated in a direction by an enforcing policy", labelNames: ["direction"], registers: r }),
      rules: new Gauge({ name: "gauze_policy_rules", help: "nftables rules gauze's policy table holds on this node", registers: r }),
      errors: new Counter({ name: "gauze_policy_program_errors_total", help: "policy transactions nft refused (the previous rules stay in force)", registers: r }),
      flows: new Counter({ name: "gauze_policy_flows_total", help: "flows the observer saw at this node's pods, judged by the evaluator: denied (by policy), audit (an audit-mode policy would deny)", labelNames: ["policy", "verdict"], registers: r }),
      packets: new Gauge({
        name: "gauze_policy_rule_packets", help: "packets each rule of gauze's policy table matched (rule: a rule's index, or deny / audit-deny for a pod's default)", labelNames: ["policy", "rule", "direction"], registers: r,
        collect: () => this.collectCounters(),
      }),
    };
  }

  async start(): Promise<void> {
    const k8s: K8s = await import("@kubernetes/client-node");
    const kc: KubeConfig = new k8s.KubeConfig();
    try {
      if (this.o.kubeconfig) kc.loadFromFile(this.o.kubeconfig);
      else kc.loadFromCluster();
    } catch (e) {
      throw new Error(`NetworkPolicy: cannot load ${this.o.kubeconfig ? `kubeconfig ${this.o.kubeconfig}` : "the in-cluster config"}: ${(e as Error).message}`);
    }
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const net = kc.makeApiClient(k8s.NetworkingV1Api);
    const watch = <T>(path: string, list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>) => {
      const inf = k8s.makeInformer(kc, path, async () => {
        const l = await list();
        this.seeRv(l.metadata?.resourceVersion);
        // The informer adds the listed items right after this returns; the debounced pass sees them.
        this.synced.add(path);
        this.changed();
        return l as never;
      }) as unknown as Informer<T>;
      for (const verb of ["add", "update", "delete"]) inf.on(verb, (obj) => { this.seeRv((obj as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion); this.changed(); });
      // A dropped watch ends the informer with an error: start it again (it resumes, or re-lists after 410 Gone).
      inf.on("error", (e) => {
        this.o.log.warn({ path, err: (e as unknown as Error)?.message }, "NetworkPolicy watch failed; starting it again");
        if (!this.stopped) setTimeout(() => { if (!this.stopped) void inf.start().catch(() => undefined); }, 500);
      });
      this.informers.push(inf as Informer<unknown>);
      void inf.start().catch((e: Error) => { this.status.error = `watching ${path}: ${e.message}`; });
      return inf;
    };
    this.pods = watch<V1Pod>("/api/v1/pods", () => core.listPodForAllNamespaces());
    this.namespaces = watch<V1Namespace>("/api/v1/namespaces", () => core.listNamespace());
    this.policies = watch<V1NetworkPolicy>("/apis/networking.k8s.io/v1/networkpolicies", () => net.listNetworkPolicyForAllNamespaces());
  }

  private pods?: Informer<V1Pod>;
  private namespaces?: Informer<V1Namespace>;
  private policies?: Informer<V1NetworkPolicy>;

  private seeRv(rv: string | undefined): void {
    const n = Number(rv);
    if (Number.isFinite(n) && n > this.maxRv) this.maxRv = n;
  }

  /** Debounces bursts (an apply of many objects, a list) into one programming pass. */
  private changed(): void {
    if (this.stopped) return;
    if (!this.changedAt) this.changedAt = performance.now();
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.program(); }, 20);
  }

  /** Computes the node's rules from the informers' caches and applies what changed. */
  program(): void {
    // Until every list has arrived, a partial world would drop what a missing policy allows.
    if (this.synced.size < 3) return;
    const t0 = performance.now();
    const generation = this.maxRv;
    const started = this.changedAt || t0;
    this.changedAt = 0;
    try {
      const invalid: PolicyStatus["invalid"] = [];
      const policies: ParsedPolicy[] = [];
      const seen = new Set<string>();
      for (const obj of this.policies!.list()) {
        const r = this.parsed(obj, seen);
        const key = `${obj.metadata?.namespace ?? "?"}/${obj.metadata?.name ?? "?"}`;
        if (r.problems.length) invalid.push({ policy: key, problems: r.problems.map((p) => `${p.path}: ${p.message}`) });
        if (r.policy) policies.push(r.policy);
      }
      const mine = new Set(this.o.nodeIps());
      for (const k of this.parseCache.keys()) if (!seen.has(k)) this.parseCache.delete(k);
      const pods = this.pods!.list().map((p) => podInfoFromV1(p)).filter((p): p is NonNullable<typeof p> => !!p)
        // This node's own addresses, as the agent knows them (a stand-in may not set hostIPs).
        .map((p) => (p.node === this.o.node ? { ...p, nodeIps: [...new Set([...(p.nodeIps ?? []), ...mine])] } : p));
      const namespaces = this.namespaces!.list().map((n) => nsInfoFromV1(n)).filter((n): n is NonNullable<typeof n> => !!n);
      const ix = compileWorld({ namespaces, pods, policies });
      const rules = nodeAllowRules(ix, this.o.node);
      const model = compilePolicy(rules, { established: this.o.established ?? "keep" });
      const nft = this.o.nft ?? { apply: nftApply, has: nftHasTable };
      const text = this.applied ? changes(this.applied, model) : script(model, nft.has(POLICY_TABLE));
      if (text) nft.apply(text);
      this.applied = model;
      this.index = ix;
      this.isolatedIps = new Set(rules.filter((r) => r.isolated || !!r.audit?.isolatedBy.length).flatMap((r) => r.always.self));
      // A generation counts as programmed only once every path a packet can take honours it.
      this.o.programmed?.();
      for (const x of invalid) if (!this.status.invalid.some((y) => y.policy === x.policy)) this.o.log.error({ policy: x.policy, problems: x.problems }, "NetworkPolicy cannot be parsed: it fails closed for the pods it selects");
      const ms = performance.now() - t0;
      Object.assign(this.status, {
        generation, programmedAt: Date.now(), lastMs: +(performance.now() - started).toFixed(1), localPods: rules.length / 2,
        isolatedPods: rules.filter((r) => r.isolated).length, chains: model.chains.size, rules: [...model.chains.values()].reduce((a, c) => a + c.length, 0),
        policies: policies.length, invalid,
      });
      delete this.status.error;
      this.m.generation.set(generation);
      this.m.program.observe((performance.now() - started) / 1000);
      this.m.invalid.set(invalid.length);
      for (const d of ["ingress", "egress"] as const) this.m.isolated.set({ direction: d }, rules.filter((r) => r.direction === d && r.isolated).length);
      this.m.rules.set(this.status.rules);
      if (text) this.o.log.info({ generation, ms: +ms.toFixed(1), bytes: text.length, chains: model.chains.size, isolated: this.status.isolatedPods }, "NetworkPolicy programmed");
    } catch (e) {
      this.m.errors.inc();
      this.status.error = (e as Error).message;
      // Whatever nft holds now is unknown: the next pass writes the whole table again.
      if (e instanceof NftError) this.applied = undefined;
      this.o.log.error({ err: (e as Error).message }, "NetworkPolicy not programmed; the previous rules stay");
    }
  }

  /**
   * For the eBPF datapath: the addresses of this node's pods a policy isolates (either way, audit
   * included), whose packets must take the classic path through this table; "all" until the
   * policies are programmed the first time (fail closed).
   */
  classicIps(): ReadonlySet<string> | "all" {
    return this.applied ? this.isolatedIps : "all";
  }

  private isolatedIps: ReadonlySet<string> = new Set();

  /** Parsed policies by uid, kept while their resourceVersion holds: a change re-parses only what changed. */
  private parseCache = new Map<string, { rv: string; result: ReturnType<typeof parsePolicy> }>();

  private parsed(obj: V1NetworkPolicy, seen: Set<string>): ReturnType<typeof parsePolicy> {
    const m = obj.metadata;
    const key = m?.uid ?? `${m?.namespace}/${m?.name}`;
    seen.add(key);
    const hit = this.parseCache.get(key);
    if (hit && m?.resourceVersion && hit.rv === m.resourceVersion) return hit.result;
    const result = parsePolicy(obj);
    if (m?.resourceVersion) this.parseCache.set(key, { rv: m.resourceVersion, result });
    return result;
  }

  /** The table is gone or was changed by hand (the agent's timer asks): written whole again. */
  verify(): void {
    if (this.applied && !(this.o.nft?.has ?? nftHasTable)(POLICY_TABLE)) {
      this.o.log.warn("gauze's NetworkPolicy table was removed; putting it back");
      this.applied = undefined;
      this.program();
    }
  }

  /**
   * What the evaluator says of a flow the observer saw (addresses, protocol, destination port):
   * undefined when no policy concerns it.
   */
  judge(src: string, dst: string, proto: number, dstPort: number, o: { count?: boolean } = {}): Judgement | undefined {
    const ix = this.index;
    if (!ix) return undefined;
    // ICMP has no port: asked as TCP port 0, which only a rule without ports allows (as in the table).
    const q: Query = { from: { ip: src }, to: { ip: dst }, port: PROTO[proto] ? dstPort : 0, protocol: PROTO[proto] ?? "TCP" };
    let v;
    try {
      v = evaluate(ix, q);
    } catch {
      return undefined; // an address of another family, say: nothing to say
    }
    if (!v.egress.isolated && !v.ingress.isolated && !v.audit) return undefined;
    if (!v.allowed) {
      const policy = [...(v.egress.allowed ? [] : v.egress.deniedBy?.policies ?? []), ...(v.ingress.allowed ? [] : v.ingress.deniedBy?.policies ?? [])][0];
      if (o.count !== false) this.m.flows.inc({ policy: policy ?? "", verdict: "denied" });
      return { verdict: "denied", ...(policy ? { policy } : {}), reason: reasonLine(v, q) };
    }
    if (v.audit) {
      const policy = [...(v.egress.audit?.policies ?? []), ...(v.ingress.audit?.policies ?? [])][0];
      if (o.count !== false) this.m.flows.inc({ policy: policy ?? "", verdict: "audit" });
      return { verdict: "audit", ...(policy ? { policy } : {}), reason: reasonLine(v, q) };
    }
    return { verdict: "allowed", reason: reasonLine(v, q) };
  }

  /** Counters of the table's rules, read when /metrics is asked (nft's JSON is input: checked). */
  private collectCounters(): void {
    if (!this.applied) return;
    const j = nftTableJson(POLICY_TABLE) as { nftables?: unknown[] } | undefined;
    const sums = new Map<string, number>();
    for (const item of Array.isArray(j?.nftables) ? j!.nftables : []) {
      const rule = (item as { rule?: { comment?: unknown; expr?: unknown[] } }).rule;
      if (!rule || typeof rule.comment !== "string" || !Array.isArray(rule.expr)) continue;
      const c = rule.expr.map((x) => (x as { counter?: { packets?: unknown } }).counter).find((x) => x && typeof x.packets === "number");
      if (c) sums.set(rule.comment, (sums.get(rule.comment) ?? 0) + (c.packets as number));
    }
    this.m.packets.reset();
    for (const [id, packets] of sums) {
      const t = this.applied.tags.get(id);
      if (t) this.m.packets.inc({ policy: t.policy, rule: String(t.rule), direction: t.direction }, packets);
    }
  }

  /** Stops watching; the rules stay (pods stay protected while the agent restarts). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const i of this.informers) void i.stop().catch(() => undefined);
  }

  /** `gauze uninstall`: gauze's policy table goes. */
  static uninstall(): boolean {
    return nftDeleteTable(POLICY_TABLE);
  }
}
