// A world indexed for many queries: which policies select each pod in each direction (computed
// once, so a query costs O(policies selecting its two pods)), pods by name and by address, and
// per selector peer a lazily filled pod bitmap so a peer's selectors run once per pod, not once
// per query, and per pod and direction its policies' rules flattened on its first query. Nothing
// here is ever invalidated: the node agent builds a new index on every change of the world.
//
// Host-network pods are node traffic: their addresses are their node's, no policy selects them,
// pod and namespace selectors never match them, only ipBlocks do. A bare address that is a pod's
// is read as that pod, because the dataplane only ever sees addresses.
import { blockTest, inBlock, toAddr, type Addr, type BlockTest } from "./addr.ts";
import { NAMESPACE_NAME_LABEL } from "./objects.ts";
import { matchesSelector } from "./selector.ts";
import { PROTOCOLS, type Direction, type EndpointDesc, type Labels, type ParsedPolicy, type Peer, type PeerSpec, type PodInfo, type PolicyWorld, type PortSpec, type Protocol, type Query, type Rule } from "./types.ts";

export class PolicyQueryError extends Error {
  override readonly name = "PolicyQueryError";
}

export interface PodRec {
  idx: number;
  info: PodInfo;
  key: string;
  addrs: Addr[];
  nodeAddrs: Set<string>;
  host: boolean;
  nsLabels: Labels;
}

export interface CompiledPeer {
  index: number;
  spec: PeerSpec;
  block?: BlockTest;
  /** Selector peers, per pod: 0 not yet known, 1 selected, 2 not; allocated on first use. */
  cache?: Uint8Array;
}

export interface CompiledRule {
  rule: Rule;
  peers: CompiledPeer[] | "any";
}

export interface CompiledPolicy {
  idx: number;
  policy: ParsedPolicy;
  audit: boolean;
  rules: Record<Direction, CompiledRule[]>;
}

/** A resolved end of a connection: `pod` is the index of a regular pod, -1 for anything else. */
export interface Endpoint {
  pod: number;
  addr?: Addr;
  /** The node of a host-network pod, whose traffic is its node's. */
  hostNode?: string;
  desc: EndpointDesc;
}

/** What ruleMatches returns when nothing matched; -1 means matched by a rule without peers. */
export const NO_MATCH = -2;

/** One pod in one direction: what every query about it needs, computed on its first query. */
export interface PodDir {
  enforcing: CompiledPolicy[];
  auditing: CompiledPolicy[];
  isolatedBy: readonly string[];
  failedClosed: readonly string[];
  /** The enforcing policies' rules, flattened in order. */
  rules: { cp: CompiledPolicy; cr: CompiledRule }[];
  /** Index in `rules` of the first rule with neither peers nor ports (it allows everything), or -1. */
  allowAllAt: number;
}

/** Resolved ends kept per index; bounded, since bare addresses come from traffic. */
const ENDPOINT_CACHE_MAX = 1 << 16;

export class PolicyIndex {
  readonly pods: PodRec[] = [];
  readonly policies: CompiledPolicy[] = [];
  private readonly byKey = new Map<string, number>();
  private readonly byIp = new Map<string, number>();
  private readonly hostByIp = new Map<string, number>();
  private readonly selected: Record<Direction, number[][]> = { ingress: [], egress: [] };
  private readonly dirs: Record<Direction, (PodDir | undefined)[]> = { ingress: [], egress: [] };
  private readonly endpoints = new Map<string, Endpoint>();

  constructor(world: PolicyWorld) {
    const nsLabels = new Map<string, Labels>();
    for (const ns of world.namespaces) if (!nsLabels.has(ns.name)) nsLabels.set(ns.name, { ...ns.labels, [NAMESPACE_NAME_LABEL]: ns.name });
    const byNs = new Map<string, number[]>();
    for (const info of world.pods) {
      const key = `${info.namespace}/${info.name}`;
      if (this.byKey.has(key)) continue;
      const idx = this.pods.length;
      const addrs = info.ips.map(toAddr).filter((a): a is Addr => !!a);
      const rec: PodRec = {
        idx, info, key, addrs,
        nodeAddrs: new Set((info.nodeIps ?? []).map((t) => toAddr(t)?.text).filter((t): t is string => !!t)),
        host: info.hostNetwork === true,
        // An unknown namespace still has the label the API server puts on every namespace.
        nsLabels: nsLabels.get(info.namespace) ?? { [NAMESPACE_NAME_LABEL]: info.namespace },
      };
      this.pods.push(rec);
      this.byKey.set(key, idx);
      for (const a of addrs) {
        const map = rec.host ? this.hostByIp : this.byIp;
        if (!map.has(a.text)) map.set(a.text, idx);
      }
      if (!rec.host) (byNs.get(info.namespace) ?? byNs.set(info.namespace, []).get(info.namespace)!).push(idx);
      this.selected.ingress.push([]);
      this.selected.egress.push([]);
    }
    for (const policy of world.policies) {
      const idx = this.policies.length;
      const compile = (rules: Rule[]): CompiledRule[] => rules.map((rule) => ({
        rule,
        peers: rule.peers === "any" ? "any" : rule.peers.map((spec, index) => spec.kind === "ipBlock"
          ? { index, spec, block: blockTest(spec.block) }
          : { index, spec }),
      }));
      this.policies.push({ idx, policy, audit: policy.mode === "audit", rules: { ingress: compile(policy.ingress), egress: compile(policy.egress) } });
      for (const p of byNs.get(policy.namespace) ?? []) {
        // An unreadable podSelector selects every pod of the namespace: the policy fails closed.
        if (policy.podSelector && !matchesSelector(policy.podSelector, this.pods[p]!.info.labels)) continue;
        if (policy.types.ingress) this.selected.ingress[p]!.push(idx);
        if (policy.types.egress) this.selected.egress[p]!.push(idx);
      }
    }
  }

  podIndex(namespace: string, name: string): number {
    return this.byKey.get(`${namespace}/${name}`) ?? -1;
  }

  /** The policies (enforcing and audit) that select the pod in direction d, in world order. */
  selecting(d: Direction, pod: number): readonly number[] {
    return this.selected[d][pod] ?? [];
  }

  podDir(d: Direction, pod: number): PodDir {
    const known = this.dirs[d][pod];
    if (known) return known;
    const pols = this.selecting(d, pod).map((pi) => this.policies[pi]!);
    const enforcing = pols.filter((cp) => !cp.audit);
    const rules = enforcing.flatMap((cp) => cp.rules[d].map((cr) => ({ cp, cr })));
    const made: PodDir = {
      enforcing,
      auditing: pols.filter((cp) => cp.audit),
      isolatedBy: Object.freeze(enforcing.map((cp) => cp.policy.key)),
      failedClosed: Object.freeze(enforcing.filter((cp) => cp.policy.failed[d]).map((cp) => cp.policy.key)),
      rules,
      allowAllAt: rules.findIndex(({ cr }) => cr.peers === "any" && cr.rule.ports === "any"),
    };
    this.dirs[d][pod] = made;
    return made;
  }

  /** The family of a query's addresses (see Query.family). */
  familyOf(q: Query): 4 | 6 {
    if (q.family === 4 || q.family === 6) return q.family;
    for (const p of [q.from, q.to]) {
      if ("ip" in p) {
        const a = toAddr(p.ip);
        if (a) return a.family;
      }
    }
    const fams = [q.from, q.to].map((p) => ("ip" in p ? [] : this.pods[this.podIndex(p.namespace, p.name)]?.addrs.map((a) => a.family) ?? []));
    if (fams.every((f) => f.includes(4))) return 4;
    if (fams.every((f) => f.includes(6))) return 6;
    return fams[0]?.[0] ?? 4;
  }

  /** A query's end resolved; the same object for the same end, so treat it as read-only. */
  endpoint(peer: Peer, family: 4 | 6): Endpoint {
    const key = "ip" in peer ? `${family}|${String(peer.ip)}` : `${family}|${peer.namespace}/${peer.name}`;
    const known = this.endpoints.get(key);
    if (known) return known;
    const made = this.resolve(peer, family);
    if (this.endpoints.size >= ENDPOINT_CACHE_MAX) this.endpoints.clear();
    this.endpoints.set(key, made);
    return made;
  }

  private resolve(peer: Peer, family: 4 | 6): Endpoint {
    if ("ip" in peer) {
      const addr = typeof peer.ip === "string" ? toAddr(peer.ip) : undefined;
      if (!addr) throw new PolicyQueryError(`${JSON.stringify(peer.ip)} is not an IP address`);
      if (addr.family !== family) throw new PolicyQueryError(`${addr.text} is not an IPv${family} address`);
      const pod = this.byIp.get(addr.text);
      if (pod !== undefined) return this.podEndpoint(pod, family);
      const host = this.hostByIp.get(addr.text);
      if (host !== undefined) return this.podEndpoint(host, family, addr);
      return { pod: -1, addr, desc: Object.freeze({ ip: addr.text }) };
    }
    const idx = this.podIndex(peer.namespace, peer.name);
    if (idx < 0) throw new PolicyQueryError(`no pod ${peer.namespace}/${peer.name} in the world`);
    return this.podEndpoint(idx, family);
  }

  private podEndpoint(idx: number, family: 4 | 6, seen?: Addr): Endpoint {
    const rec = this.pods[idx]!;
    const addr = seen ?? rec.addrs.find((a) => a.family === family);
    const desc: EndpointDesc = { pod: rec.key, ...(addr ? { ip: addr.text } : {}), ...(rec.info.node ? { node: rec.info.node } : {}) };
    if (!rec.host) return { pod: idx, ...(addr ? { addr } : {}), desc: Object.freeze(desc) };
    return { pod: -1, ...(addr ? { addr } : {}), ...(rec.info.node ? { hostNode: rec.info.node } : {}), desc: Object.freeze({ ...desc, hostNetwork: true }) };
  }

  /** Traffic between a pod and its own node (kubelet probes, host-network pods beside it). */
  ownNode(self: number, remote: Endpoint): boolean {
    if (remote.pod >= 0) return false;
    const rec = this.pods[self]!;
    if (remote.addr && rec.nodeAddrs.has(remote.addr.text)) return true;
    return remote.hostNode !== undefined && remote.hostNode === rec.info.node;
  }

  /** Whether a selector peer of policy cp selects regular pod `pod`. */
  peerSelects(cp: CompiledPolicy, peer: CompiledPeer, pod: number): boolean {
    const cache = (peer.cache ??= new Uint8Array(this.pods.length));
    const known = cache[pod];
    if (known) return known === 1;
    const spec = peer.spec as Extract<PeerSpec, { kind: "selector" }>;
    const rec = this.pods[pod]!;
    const nsOk = spec.namespaceSelector ? matchesSelector(spec.namespaceSelector, rec.nsLabels) : rec.info.namespace === cp.policy.namespace;
    const ok = nsOk && (!spec.podSelector || matchesSelector(spec.podSelector, rec.info.labels));
    cache[pod] = ok ? 1 : 2;
    return ok;
  }

  peerMatches(cp: CompiledPolicy, peer: CompiledPeer, remote: Endpoint): boolean {
    if (peer.block) return !!remote.addr && inBlock(peer.block, remote.addr);
    return remote.pod >= 0 && this.peerSelects(cp, peer, remote.pod);
  }

  /** A named port resolves on the destination pod only: a name it does not serve matches nothing. */
  portMatches(spec: PortSpec, destPod: number, port: number, protocol: Protocol): boolean {
    if (spec.protocol !== protocol) return false;
    if (spec.kind === "number") return spec.from === undefined || (port >= spec.from && port <= spec.to!);
    if (destPod < 0) return false;
    for (const c of this.pods[destPod]!.info.ports) if (c.name === spec.name && c.protocol === protocol && c.port === port) return true;
    return false;
  }

  /** The index of the matching peer, -1 when the rule has no peers, NO_MATCH when it does not match. */
  ruleMatches(cp: CompiledPolicy, cr: CompiledRule, d: Direction, self: number, remote: Endpoint, port: number, protocol: Protocol): number {
    const ports = cr.rule.ports;
    if (ports !== "any") {
      const dest = d === "ingress" ? self : remote.pod;
      let ok = false;
      for (const s of ports) if (this.portMatches(s, dest, port, protocol)) { ok = true; break; }
      if (!ok) return NO_MATCH;
    }
    if (cr.peers === "any") return -1;
    for (const peer of cr.peers) if (this.peerMatches(cp, peer, remote)) return peer.index;
    return NO_MATCH;
  }
}

export function compileWorld(world: PolicyWorld): PolicyIndex {
  return new PolicyIndex(world);
}

export function checkQuery(port: number, protocol: Protocol): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PolicyQueryError(`${port} is not a port number`);
  if (!PROTOCOLS.includes(protocol)) throw new PolicyQueryError(`${String(protocol)} is not TCP, UDP or SCTP`);
}
