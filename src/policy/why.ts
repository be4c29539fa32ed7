// Why a rule did not match a connection, in words, and how near it came: the peer matched but the
// port did not, the namespace matched but a pod label was missing, the address fell in an except.
// Only verdicts that deny (or trace) pay for this; the yes/no path never builds a string.
import { inPrefix, prefixTest } from "./addr.ts";
import { describeSelector, matchesSelector, whyNotSelected } from "./selector.ts";
import type { Direction, PeerSpec, PortSpec, Protocol } from "./types.ts";
import { NO_MATCH, type CompiledPeer, type CompiledPolicy, type CompiledRule, type Endpoint, type PolicyIndex } from "./world-index.ts";

export interface RuleOutcome {
  matched: boolean;
  peer?: number;
  /** 0..4: 2 for the ports, 2 for the peers (1 for a peer half matched: namespace but not pod, CIDR but except). */
  score: number;
  why: string;
}

export function describePort(s: PortSpec): string {
  if (s.kind === "name") return `${s.name}/${s.protocol}`;
  if (s.from === undefined) return `any/${s.protocol}`;
  return s.from === s.to ? `${s.from}/${s.protocol}` : `${s.from}-${s.to}/${s.protocol}`;
}

export function describeEndpoint(e: Endpoint): string {
  return e.desc.pod ?? e.desc.ip ?? "?";
}

export function describePeer(spec: PeerSpec): string {
  if (spec.kind === "ipBlock") return `ipBlock ${spec.block.cidr}${spec.block.except.length ? ` except ${spec.block.except.map((e) => e.cidr).join(",")}` : ""}`;
  const parts: string[] = [];
  if (spec.namespaceSelector) parts.push(`namespaces ${describeSelector(spec.namespaceSelector)}`);
  if (spec.podSelector) parts.push(`pods ${describeSelector(spec.podSelector)}`);
  return parts.join(" and ");
}

export function ruleOutcome(ix: PolicyIndex, cp: CompiledPolicy, cr: CompiledRule, d: Direction, self: number, remote: Endpoint, port: number, protocol: Protocol): RuleOutcome {
  const hit = ix.ruleMatches(cp, cr, d, self, remote, port, protocol);
  if (hit !== NO_MATCH) {
    return { matched: true, ...(hit >= 0 ? { peer: hit } : {}), score: 4, why: hit >= 0 ? `matches (peer ${hit}: ${describePeer((cr.peers as CompiledPeer[])[hit]!.spec)})` : "matches (no peers: every source and destination)" };
  }
  const portWhy = portsWhy(ix, cr, d, self, remote, port, protocol);
  const peer = peersWhy(ix, cp, cr, remote);
  const why = [portWhy, peer.why].filter((w) => !!w).join("; ");
  return { matched: false, score: ruleScore(ix, cp, cr, d, self, remote, port, protocol), why };
}

/** How near a rule came (RuleOutcome.score), without building a sentence: to pick the nearest miss cheaply. */
export function ruleScore(ix: PolicyIndex, cp: CompiledPolicy, cr: CompiledRule, d: Direction, self: number, remote: Endpoint, port: number, protocol: Protocol): number {
  const ports = cr.rule.ports;
  const dest = d === "ingress" ? self : remote.pod;
  const score = ports === "any" || ports.some((s) => ix.portMatches(s, dest, port, protocol)) ? 2 : 0;
  if (cr.peers === "any") return score + 2;
  let best = 0;
  for (const p of cr.peers) best = Math.max(best, peerScore(ix, cp, p, remote));
  return score + best;
}

function peerScore(ix: PolicyIndex, cp: CompiledPolicy, p: CompiledPeer, remote: Endpoint): number {
  if (ix.peerMatches(cp, p, remote)) return 2;
  if (p.spec.kind === "ipBlock") return remote.addr && inPrefix(prefixTest(p.spec.block.prefix), remote.addr) ? 1 : 0;
  if (remote.pod < 0) return 0;
  const rec = ix.pods[remote.pod]!;
  const nsOk = p.spec.namespaceSelector ? matchesSelector(p.spec.namespaceSelector, rec.nsLabels) : rec.info.namespace === cp.policy.namespace;
  const podOk = !p.spec.podSelector || matchesSelector(p.spec.podSelector, rec.info.labels);
  return (nsOk ? 0.5 : 0) + (podOk ? 0.5 : 0);
}

function portsWhy(ix: PolicyIndex, cr: CompiledRule, d: Direction, self: number, remote: Endpoint, port: number, protocol: Protocol): string | undefined {
  const ports = cr.rule.ports;
  if (ports === "any") return undefined;
  const dest = d === "ingress" ? self : remote.pod;
  if (ports.some((s) => ix.portMatches(s, dest, port, protocol))) return undefined;
  const same = ports.filter((s) => s.protocol === protocol);
  if (same.length === 0) return `protocol ${protocol} not allowed (rule allows ${[...new Set(ports.map((s) => s.protocol))].join(", ")} only)`;
  const named = same.filter((s): s is Extract<PortSpec, { kind: "name" }> => s.kind === "name").map((s) => {
    if (dest < 0) return `named port ${s.name} cannot resolve on ${describeEndpoint(remote)} (not a pod)`;
    const rec = ix.pods[dest]!;
    const found = rec.info.ports.filter((c) => c.name === s.name && c.protocol === protocol);
    return found.length === 0 ? `${rec.key} has no ${protocol} port named ${s.name}` : `${s.name} is ${found.map((c) => c.port).join(",")}/${protocol} on ${rec.key}`;
  });
  return `port ${port}/${protocol} not in ${same.map(describePort).join(", ")}${named.length ? ` (${named.join("; ")})` : ""}`;
}

function peersWhy(ix: PolicyIndex, cp: CompiledPolicy, cr: CompiledRule, remote: Endpoint): { why?: string } {
  if (cr.peers === "any") return {};
  if (cr.peers.some((p) => ix.peerMatches(cp, p, remote))) return {};
  let best = { score: -1, why: "" };
  for (const p of cr.peers) {
    const o = peerWhy(ix, cp, p, remote);
    const why = cr.peers.length > 1 ? `peer ${p.index}: ${o.why}` : o.why;
    if (o.score > best.score) best = { score: o.score, why };
  }
  return best;
}

function peerWhy(ix: PolicyIndex, cp: CompiledPolicy, p: CompiledPeer, remote: Endpoint): { score: number; why: string } {
  const who = describeEndpoint(remote);
  if (p.spec.kind === "ipBlock") {
    const b = p.spec.block;
    if (!remote.addr) return { score: 0, why: `${who} has no address of this family for ipBlock ${b.cidr}` };
    if (!inPrefix(prefixTest(b.prefix), remote.addr)) return { score: 0, why: `${remote.addr.text} not in ipBlock ${b.cidr}` };
    const e = b.except.find((x) => inPrefix(prefixTest(x.prefix), remote.addr!));
    return { score: 1, why: `${remote.addr.text} is in except ${e?.cidr ?? "?"} of ipBlock ${b.cidr}` };
  }
  if (remote.pod < 0) {
    return { score: 0, why: `${who} is ${remote.desc.hostNetwork ? "a host-network pod (node traffic)" : "not a pod"}; pod and namespace selectors match pods only` };
  }
  const rec = ix.pods[remote.pod]!;
  const spec = p.spec;
  const reasons: string[] = [];
  let score = 0;
  if (spec.namespaceSelector) {
    const w = matchesSelector(spec.namespaceSelector, rec.nsLabels) ? undefined : whyNotSelected(spec.namespaceSelector, rec.nsLabels);
    if (w) reasons.push(`namespace ${rec.info.namespace} not selected by namespace selector ${describeSelector(spec.namespaceSelector)} (${w})`);
    else score += 0.5;
  } else if (rec.info.namespace !== cp.policy.namespace) {
    reasons.push(`${rec.key} is not in the policy's namespace ${cp.policy.namespace} (the peer has no namespaceSelector)`);
  } else score += 0.5;
  if (spec.podSelector) {
    const w = matchesSelector(spec.podSelector, rec.info.labels) ? undefined : whyNotSelected(spec.podSelector, rec.info.labels);
    if (w) reasons.push(`pod ${rec.key} not selected by pod selector ${describeSelector(spec.podSelector)} (${w})`);
    else score += 0.5;
  } else score += 0.5;
  return { score, why: reasons.join(" and ") };
}
