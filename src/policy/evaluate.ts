// The one decision every consumer shares: may this connection open? A connection is allowed when
// egress from its source allows it (if the source is a pod isolated for egress) and ingress to
// its destination allows it (if the destination is a pod isolated for ingress). A pod is isolated
// in a direction when an enforcing policy selects it for that direction; then only a rule of such
// a policy can allow. Always allowed, whatever the policies: a pod to itself, and a pod to and
// from its own node (kubelet probes, host-network pods beside it).
//
// Where the API leaves a choice: an ipBlock matches any address, pod addresses included (the API
// allows either; upstream conformance's ipBlock cases expect pod IPs to match, and a dataplane
// that sees only addresses cannot tell them apart anyway). A named port resolves on the
// destination: the protected pod in ingress, the remote pod in egress, nothing outside the cluster.
//
// Audit-mode policies never change the outcome, neither deny nor allow (a dry run that could open
// traffic would not be dry); a verdict names them when they alone would have dropped it.
//
// `allows` is the yes/no path for many flows (no strings, no arrays); `evaluate` builds the full
// verdict with the rule that decided, the nearest miss, and with `trace` every rule looked at.
import { ruleOutcome, ruleScore } from "./why.ts";
import type { Direction, DirectionVerdict, PolicyWorld, Protocol, Query, Verdict, WalkStep } from "./types.ts";
import { checkQuery, compileWorld, NO_MATCH, PolicyIndex, type Endpoint, type PodDir } from "./world-index.ts";

export interface EvaluateOptions {
  /** Record every rule looked at (for `explain`), at the cost of a sentence per rule. */
  trace?: boolean;
}

function indexOf(w: PolicyWorld | PolicyIndex): PolicyIndex {
  return w instanceof PolicyIndex ? w : compileWorld(w);
}

export function evaluate(w: PolicyWorld | PolicyIndex, q: Query, opts: EvaluateOptions = {}): Verdict {
  const ix = indexOf(w);
  checkQuery(q.port, q.protocol);
  const family = ix.familyOf(q);
  const src = ix.endpoint(q.from, family);
  const dst = ix.endpoint(q.to, family);
  const trace = opts.trace === true;
  let egress: DirectionVerdict;
  let ingress: DirectionVerdict;
  if (src.pod >= 0 && src.pod === dst.pod) {
    egress = { allowed: true, isolated: isolatedFor(ix, "egress", src.pod), via: "loopback" };
    ingress = { allowed: true, isolated: isolatedFor(ix, "ingress", dst.pod), via: "loopback" };
  } else {
    egress = src.pod >= 0 ? judge(ix, "egress", src.pod, dst, q.port, q.protocol, trace) : unjudged(src);
    ingress = dst.pod >= 0 ? judge(ix, "ingress", dst.pod, src, q.port, q.protocol, trace) : unjudged(dst);
  }
  const allowed = egress.allowed && ingress.allowed;
  // Plain assignments, not spreads: this runs per query, and the agent asks millions.
  const v: Verdict = { allowed, from: src.desc, to: dst.desc, family, egress, ingress };
  if (allowed && (egress.audit || ingress.audit)) v.audit = true;
  return v;
}

/** Yes or no, for many queries against one index. */
export function allows(ix: PolicyIndex, q: Query): boolean {
  checkQuery(q.port, q.protocol);
  const family = ix.familyOf(q);
  return allowsBetween(ix, ix.endpoint(q.from, family), ix.endpoint(q.to, family), q.port, q.protocol);
}

/** The cheapest path: ends resolved once with `ix.endpoint`, then any number of ports and protocols. */
export function allowsBetween(ix: PolicyIndex, src: Endpoint, dst: Endpoint, port: number, protocol: Protocol): boolean {
  if (src.pod >= 0 && src.pod === dst.pod) return true;
  if (src.pod >= 0 && !directionAllows(ix, "egress", src.pod, dst, port, protocol)) return false;
  return dst.pod < 0 || directionAllows(ix, "ingress", dst.pod, src, port, protocol);
}

function directionAllows(ix: PolicyIndex, d: Direction, self: number, remote: Endpoint, port: number, protocol: Protocol): boolean {
  const pd = ix.podDir(d, self);
  if (pd.enforcing.length === 0 || pd.allowAllAt >= 0 || ix.ownNode(self, remote)) return true;
  for (const { cp, cr } of pd.rules) if (ix.ruleMatches(cp, cr, d, self, remote, port, protocol) !== NO_MATCH) return true;
  return false;
}

function isolatedFor(ix: PolicyIndex, d: Direction, pod: number): boolean {
  return ix.podDir(d, pod).enforcing.length > 0;
}

/** An end that is not a regular pod has no policies of its own (outside the cluster, or a node). */
function unjudged(e: Endpoint): DirectionVerdict {
  return { allowed: true, isolated: false, via: e.desc.hostNetwork ? "host-network" : "not-a-pod" };
}

function judge(ix: PolicyIndex, d: Direction, self: number, remote: Endpoint, port: number, protocol: Protocol, trace: boolean): DirectionVerdict {
  const pd = ix.podDir(d, self);
  const isolated = pd.enforcing.length > 0;
  const v: DirectionVerdict = { allowed: true, isolated, via: "rule" };
  if (isolated) v.isolatedBy = pd.isolatedBy;
  if (pd.failedClosed.length) v.failedClosed = pd.failedClosed;
  if (ix.ownNode(self, remote)) {
    v.via = "own-node";
    return v;
  }
  const walk: WalkStep[] = [];
  if (trace) v.walk = walk;
  const rules = pd.rules;
  // Without a trace, nothing after the first allow-everything rule can change the answer.
  const last = !trace && pd.allowAllAt >= 0 ? pd.allowAllAt : rules.length - 1;
  for (let i = 0; i <= last; i++) {
    const { cp, cr } = rules[i]!;
    if (trace) {
      const o = ruleOutcome(ix, cp, cr, d, self, remote, port, protocol);
      walk.push({ policy: cp.policy.key, rule: cr.rule.index, matched: o.matched, why: o.why });
      if (o.matched && !v.allowedBy) v.allowedBy = ruleRef(cp.policy.key, cr.rule.index, o.peer ?? -1);
      continue;
    }
    const hit = ix.ruleMatches(cp, cr, d, self, remote, port, protocol);
    if (hit === NO_MATCH) continue;
    v.allowedBy = ruleRef(cp.policy.key, cr.rule.index, hit);
    break;
  }
  if (!isolated) {
    v.via = "not-isolated";
    const audit = auditWouldDrop(ix, pd.auditing, d, self, remote, port, protocol, trace ? walk : undefined);
    if (audit) v.audit = audit;
    return v;
  }
  if (v.allowedBy) return v;
  v.allowed = false;
  v.via = "denied";
  v.deniedBy = { policies: pd.isolatedBy };
  // The nearest miss: scored without words, and only the winner put into words.
  let best: PodDir["rules"][number] | undefined;
  let bestScore = -1;
  for (const r of pd.rules) {
    const score = ruleScore(ix, r.cp, r.cr, d, self, remote, port, protocol);
    if (score > bestScore) { best = r; bestScore = score; }
  }
  if (best) v.closest = { policy: best.cp.policy.key, rule: best.cr.rule.index, why: ruleOutcome(ix, best.cp, best.cr, d, self, remote, port, protocol).why };
  return v;
}

function ruleRef(policy: string, rule: number, peer: number): NonNullable<DirectionVerdict["allowedBy"]> {
  const r: NonNullable<DirectionVerdict["allowedBy"]> = { policy, rule };
  if (peer >= 0) r.peer = peer;
  return r;
}

/** Only asked when no enforcing policy isolates: would the audit policies, enforced, drop it? */
function auditWouldDrop(ix: PolicyIndex, auditing: PolicyIndex["policies"], d: Direction, self: number, remote: Endpoint, port: number, protocol: Protocol, walk?: WalkStep[]): { policies: string[] } | undefined {
  if (auditing.length === 0) return undefined;
  let allowed = false;
  for (const cp of auditing) for (const cr of cp.rules[d]) {
    if (walk) {
      const o = ruleOutcome(ix, cp, cr, d, self, remote, port, protocol);
      walk.push({ policy: cp.policy.key, rule: cr.rule.index, matched: o.matched, why: o.why, audit: true });
      allowed ||= o.matched;
    } else if (!allowed && ix.ruleMatches(cp, cr, d, self, remote, port, protocol) !== NO_MATCH) allowed = true;
  }
  return allowed ? undefined : { policies: auditing.map((cp) => cp.policy.key) };
}
