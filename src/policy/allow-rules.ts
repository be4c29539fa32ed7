// What a dataplane compiler needs, per pod and direction: whether the pod is isolated, and the
// allowed (peer addresses, port ranges) tuples with the policy and rule each came from. The union
// of the tuples is exactly what `evaluate` allows (its unit test checks that); always allowed on
// top, and left to the dataplane to accept first: the pod to itself and to and from its node.
//
// Named ports resolve on the destination: in ingress on the pod itself, so they become numbers
// here; in egress on each remote pod, so a rule with named ports yields one tuple per group of
// remote pods that resolve the names alike (and nothing for addresses outside the cluster).
import { formatPrefix } from "../net/cidr.ts";
import { inBlock } from "./addr.ts";
import type { Direction, PolicyWorld, PortSpec, Protocol } from "./types.ts";
import { compileWorld, PolicyIndex, PolicyQueryError, type CompiledPolicy, type CompiledRule } from "./world-index.ts";

export interface PortRange {
  protocol: Protocol;
  from: number;
  to: number;
}

/** Shared by every pod the rule applies to, so frozen: copy before changing. */
export interface AllowPeers {
  /** Addresses of the pods the rule's selectors pick (every family). */
  readonly ips: readonly string[];
  readonly cidrs: readonly { readonly cidr: string; readonly except: readonly string[] }[];
}

export interface AllowTuple {
  policy: string;
  rule: number;
  /** "any": every address, inside the cluster or not. */
  peers: AllowPeers | "any";
  ports: PortRange[] | "any";
}

export interface PodAllowRules {
  pod: string;
  direction: Direction;
  /** False: no enforcing policy selects the pod in this direction, so everything is allowed. */
  isolated: boolean;
  isolatedBy: string[];
  failedClosed: string[];
  rules: AllowTuple[];
  /** Allowed whatever the rules: the pod's own addresses (loopback) and its node's. */
  always: { self: string[]; nodeIps: string[] };
  /** What isolation and tuples would be with the audit-mode policies enforced too. */
  audit?: { isolatedBy: string[]; rules: AllowTuple[] };
}

const ALL_PORTS = { from: 0, to: 65535 };

export function allowRules(w: PolicyWorld | PolicyIndex, pod: { namespace: string; name: string }, direction: Direction): PodAllowRules {
  const ix = w instanceof PolicyIndex ? w : compileWorld(w);
  const self = ix.podIndex(pod.namespace, pod.name);
  if (self < 0) throw new PolicyQueryError(`no pod ${pod.namespace}/${pod.name} in the world`);
  const rec = ix.pods[self]!;
  const out: PodAllowRules = {
    pod: rec.key,
    direction,
    isolated: false,
    isolatedBy: [],
    failedClosed: [],
    rules: [],
    always: { self: rec.addrs.map((a) => a.text), nodeIps: [...rec.nodeAddrs] },
  };
  if (rec.host) return out;
  const pols = ix.selecting(direction, self).map((pi) => ix.policies[pi]!);
  const enforcing = pols.filter((cp) => !cp.audit);
  out.isolated = enforcing.length > 0;
  out.isolatedBy = enforcing.map((cp) => cp.policy.key);
  out.failedClosed = enforcing.filter((cp) => cp.policy.failed[direction]).map((cp) => cp.policy.key);
  out.rules = enforcing.flatMap((cp) => cp.rules[direction].flatMap((cr) => tuples(ix, cp, cr, direction, self)));
  if (pols.some((cp) => cp.audit)) {
    out.audit = { isolatedBy: pols.map((cp) => cp.policy.key), rules: pols.flatMap((cp) => cp.rules[direction].flatMap((cr) => tuples(ix, cp, cr, direction, self))) };
  }
  return out;
}

/** Both directions for every pod on `node`: what one agent compiles. */
export function nodeAllowRules(w: PolicyWorld | PolicyIndex, node: string): PodAllowRules[] {
  const ix = w instanceof PolicyIndex ? w : compileWorld(w);
  return ix.pods.filter((p) => p.info.node === node).flatMap((p) => (["ingress", "egress"] as const).map((d) => allowRules(ix, p.info, d)));
}

// Peer sets and egress name groups depend on the rule only, not on the pod it protects: computed
// once per rule and shared by every pod the policy selects (a policy often selects hundreds).
interface RuleCache {
  peers: AllowPeers | "any";
  egressNamed?: { peers: AllowPeers; ports: PortRange[] }[];
}
const caches = new WeakMap<CompiledRule, RuleCache>();

function cacheOf(ix: PolicyIndex, cp: CompiledPolicy, cr: CompiledRule): RuleCache {
  let c = caches.get(cr);
  if (!c) caches.set(cr, (c = { peers: peersOf(ix, cp, cr) }));
  return c;
}

function tuples(ix: PolicyIndex, cp: CompiledPolicy, cr: CompiledRule, d: Direction, self: number): AllowTuple[] {
  const base = { policy: cp.policy.key, rule: cr.rule.index };
  const cache = cacheOf(ix, cp, cr);
  const peers = cache.peers;
  const specs = cr.rule.ports;
  if (specs === "any") return [{ ...base, peers, ports: "any" }];
  const numeric = dedupe(specs.flatMap((s) => (s.kind === "number" ? [{ protocol: s.protocol, ...(s.from === undefined ? ALL_PORTS : { from: s.from, to: s.to! }) }] : [])));
  const named = specs.filter((s) => s.kind === "name");
  const out: AllowTuple[] = [];
  if (d === "ingress") {
    const resolved = dedupe([...numeric, ...resolve(ix, named, self)]);
    if (resolved.length) out.push({ ...base, peers, ports: resolved });
    return out;
  }
  if (numeric.length) out.push({ ...base, peers, ports: numeric });
  if (named.length === 0) return out;
  cache.egressNamed ??= egressGroups(ix, cp, cr, named);
  for (const g of cache.egressNamed) out.push({ ...base, peers: g.peers, ports: g.ports.map((r) => ({ ...r })) });
  return out;
}

/** Egress names: per remote pod the rule's peers reach, grouped by what the names resolve to. */
function egressGroups(ix: PolicyIndex, cp: CompiledPolicy, cr: CompiledRule, named: PortSpec[]): { peers: AllowPeers; ports: PortRange[] }[] {
  const groups = new Map<string, { ports: PortRange[]; ips: string[] }>();
  for (const r of ix.pods) {
    if (r.host || r.addrs.length === 0) continue;
    const list = cr.peers;
    const ips = r.addrs.filter((a) => list === "any" || list.some((p) => (p.block ? inBlock(p.block, a) : ix.peerSelects(cp, p, r.idx)))).map((a) => a.text);
    if (ips.length === 0) continue;
    const ports = dedupe(resolve(ix, named, r.idx));
    if (ports.length === 0) continue;
    const key = JSON.stringify(ports);
    const g = groups.get(key) ?? groups.set(key, { ports, ips: [] }).get(key)!;
    g.ips.push(...ips);
  }
  return [...groups.values()].map((g) => ({ peers: frozen(g.ips, []), ports: g.ports }));
}

function peersOf(ix: PolicyIndex, cp: CompiledPolicy, cr: CompiledRule): AllowPeers | "any" {
  if (cr.peers === "any") return "any";
  const ips = new Set<string>();
  const cidrs: { cidr: string; except: string[] }[] = [];
  for (const p of cr.peers) {
    if (p.spec.kind === "ipBlock") {
      cidrs.push({ cidr: formatPrefix(p.spec.block.prefix), except: p.spec.block.except.map((e) => formatPrefix(e.prefix)) });
      continue;
    }
    for (const r of ix.pods) if (!r.host && ix.peerSelects(cp, p, r.idx)) for (const a of r.addrs) ips.add(a.text);
  }
  return frozen([...ips], cidrs);
}

function frozen(ips: string[], cidrs: { cidr: string; except: string[] }[]): AllowPeers {
  return Object.freeze({ ips: Object.freeze(ips), cidrs: Object.freeze(cidrs.map((c) => Object.freeze({ cidr: c.cidr, except: Object.freeze(c.except) }))) });
}

function resolve(ix: PolicyIndex, named: PortSpec[], pod: number): PortRange[] {
  const out: PortRange[] = [];
  for (const s of named) {
    if (s.kind !== "name") continue;
    for (const c of ix.pods[pod]!.info.ports) if (c.name === s.name && c.protocol === s.protocol) out.push({ protocol: s.protocol, from: c.port, to: c.port });
  }
  return out;
}

function dedupe(ranges: PortRange[]): PortRange[] {
  const seen = new Set<string>();
  return ranges
    .filter((r) => { const k = `${r.protocol}/${r.from}/${r.to}`; return seen.has(k) ? false : (seen.add(k), true); })
    .sort((a, b) => a.protocol.localeCompare(b.protocol) || a.from - b.from || a.to - b.to);
}
