// NetworkPolicy on the classic datapath: the evaluator's per-pod allow tuples (policy/allow-rules.ts)
// compiled into one nftables table of gauze's own, `inet gauze-policy`. Its forward chain accepts
// what conntrack already knows (replies, and connections a policy allowed when they began), then
// sends a packet from an isolated local pod through that pod's egress chain and a packet to one
// through its ingress chain, each found in a verdict map by address: the cost of a packet does not
// grow with the number of pods, only with the rules of the two pods it concerns. Peers are named
// sets shared by every rule that selects the same pods, and a chain is shared by every pod the
// same rules judge (it is named by its content). A chain's allow rules `return` (the other
// direction is checked next); its last rule drops, or, for a pod only audit-mode policies select,
// counts what it would deny and lets it pass.
//
// The model is plain data; `script` writes the whole table, `changes` only what differs from the
// last model applied, as one nft transaction (atomic: a change is never half in force).
import { parseCIDR } from "../net/cidr.ts";

export const POLICY_TABLE = "gauze-policy";

/** What a rule's counter is for: the policy and rule that allow, or a chain's default deny. */
export interface RuleTag {
  policy: string;
  /** The rule's index in its direction, or "deny" / "audit-deny" for a chain's last rule. */
  rule: number | "deny" | "audit-deny";
  direction: "ingress" | "egress";
}

/** One pod and direction, as the evaluator sees it (policy/allow-rules.ts's PodAllowRules). */
export interface PodRules {
  pod: string;
  direction: "ingress" | "egress";
  isolated: boolean;
  isolatedBy: readonly string[];
  rules: readonly { policy: string; rule: number; peers: "any" | { readonly ips: readonly string[]; readonly cidrs: readonly { readonly cidr: string; readonly except: readonly string[] }[] }; ports: "any" | readonly { protocol: string; from: number; to: number }[] }[];
  always: { self: readonly string[]; nodeIps: readonly string[] };
  audit?: { isolatedBy: readonly string[]; rules: PodRules["rules"] };
}

export interface NftModel {
  /** Named address sets: name to (family, elements). */
  sets: Map<string, { family: 4 | 6; elements: string[] }>;
  /** Per-pod chains: name to rule lines. */
  chains: Map<string, string[]>;
  /** Verdict maps: address of a local pod to the chain that judges it. */
  maps: { in4: Map<string, string>; in6: Map<string, string>; out4: Map<string, string>; out6: Map<string, string> };
  /** What each counter's comment ("t<hash>", stable across compiles) stands for. */
  tags: Map<string, RuleTag>;
  /**
   * Local pods' own addresses, as "a . a" pairs: traffic from a pod to itself (a hairpin through
   * a Service) is allowed once in the base chain, so that a pod's chain holds only what its
   * policies say and the replicas of a Deployment share one chain.
   */
  self: { 4: Set<string>; 6: Set<string> };
  /**
   * Established connections after a policy change: "keep" (conntrack lets a connection allowed
   * when it began go on; replies always pass) or "recheck" (only replies pass on their own: every
   * packet of the opening direction meets the pod's rules again, so a change cuts what it denies).
   */
  established: "keep" | "recheck";
}

/** A short stable name from text (two 32-bit FNV-1a hashes): chain and set names stay within nft's limits. */
function hash(text: string): string {
  let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 13);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

const familyOf = (a: string): 4 | 6 => (a.includes(":") ? 6 : 4);
const PROTO: Record<string, string> = { TCP: "tcp", UDP: "udp", SCTP: "sctp" };

function portMatches(ports: PodRules["rules"][number]["ports"]): string[] {
  if (ports === "any") return [""];
  const byProto = new Map<string, string[]>();
  for (const p of ports) {
    const proto = PROTO[p.protocol];
    if (!proto) continue; // the evaluator only makes TCP, UDP and SCTP
    const list = byProto.get(proto) ?? byProto.set(proto, []).get(proto)!;
    if (p.from === 0 && p.to === 65535) list.push("*");
    else list.push(p.from === p.to ? String(p.from) : `${p.from}-${p.to}`);
  }
  // "th dport" reads the transport header's destination port for TCP, UDP and SCTP alike: an SCTP
  // rule matches SCTP only, never TCP.
  return [...byProto].map(([proto, list]) => (list.includes("*") ? `meta l4proto ${proto}` : `meta l4proto ${proto} th dport { ${[...new Set(list)].join(", ")} }`));
}

/** Compiles the node's pods' rules (both directions) into the table's model. */
export function compilePolicy(pods: readonly PodRules[], o: { established?: "keep" | "recheck" } = {}): NftModel {
  const m: NftModel = { sets: new Map(), chains: new Map(), maps: { in4: new Map(), in6: new Map(), out4: new Map(), out6: new Map() }, tags: new Map(), self: { 4: new Set(), 6: new Set() }, established: o.established ?? "keep" };
  // A tag's name comes from what it stands for, so an unchanged chain compiles to the same text
  // (and keeps its counters) whatever else changed.
  const tag = (t: RuleTag) => {
    const id = `t${hash(`${t.direction}|${t.policy}|${t.rule}`)}`;
    m.tags.set(id, t);
    return `comment "${id}"`;
  };
  // Every address written into a rule came from the API: checked first (it is nft syntax too),
  // once per address per compile (a pod's address is in many peer lists).
  const checked = new Map<string, boolean>();
  const ok = (a: string) => { let v = checked.get(a); if (v === undefined) checked.set(a, v = validAddress(a)); return v; };
  // A rule's peers are one object shared by every pod the rule applies to: its set is made once.
  type Peers = Exclude<PodRules["rules"][number]["peers"], "any">;
  const named = new WeakMap<object, Map<4 | 6, { set?: string; excepts: string[] }>>();
  // Rules of different policies often allow the same peers: their lists are equal without being one object.
  const byContent = new Map<string, { set?: string; excepts: string[] }>();
  /** A peer list's match for one family: its plain addresses as one named set, and each CIDR with exceptions on its own. */
  const peerMatch = (peers: Peers, f: 4 | 6, field: string): { set?: string; excepts: string[] } => {
    const known = named.get(peers)?.get(f);
    if (known) return known;
    const content = `${f}|${field}|${peers.ips.join(",")}|${peers.cidrs.map((c) => `${c.cidr}-${c.except.join("-")}`).join(",")}`;
    const same = byContent.get(content);
    if (same) {
      (named.get(peers) ?? named.set(peers, new Map()).get(peers)!).set(f, same);
      return same;
    }
    const plain = [...peers.ips.filter((a) => ok(a) && familyOf(a) === f), ...peers.cidrs.filter((c) => ok(c.cidr) && familyOf(c.cidr) === f && c.except.length === 0).map((c) => c.cidr)];
    let set: string | undefined;
    if (plain.length) {
      const sorted = [...new Set(plain)].sort();
      set = `p${f}-${hash(sorted.join(","))}`;
      if (!m.sets.has(set)) m.sets.set(set, { family: f, elements: sorted });
    }
    const excepts = peers.cidrs.filter((x) => ok(x.cidr) && familyOf(x.cidr) === f && x.except.length > 0).map((c) => {
      const except = c.except.filter(ok);
      return `${field} ${c.cidr}${except.length ? ` ${field} != { ${except.join(", ")} }` : ""}`;
    });
    const out = { ...(set ? { set } : {}), excepts };
    (named.get(peers) ?? named.set(peers, new Map()).get(peers)!).set(f, out);
    byContent.set(content, out);
    return out;
  };
  for (const pr of pods) {
    const enforced = pr.isolated;
    const auditOnly = !enforced && !!pr.audit && pr.audit.isolatedBy.length > 0;
    if (!enforced && !auditOnly) continue;
    const rules = enforced ? pr.rules : pr.audit!.rules;
    const ingress = pr.direction === "ingress";
    const peerField = (f: 4 | 6) => `${f === 4 ? "ip" : "ip6"} ${ingress ? "saddr" : "daddr"}`;
    const lines: string[] = [];
    // Always allowed: the pod itself (in the base chain, by the self pairs), and its own node (kubelet's probes come from there).
    for (const a of pr.always.self) if (ok(a)) m.self[familyOf(a)].add(a);
    for (const f of [4, 6] as const) {
      const always = pr.always.nodeIps.filter((a) => ok(a) && familyOf(a) === f);
      if (always.length) lines.push(`${peerField(f)} { ${[...new Set(always)].join(", ")} } return`);
    }
    for (const r of rules) {
      const ports = portMatches(r.ports);
      for (const f of [4, 6] as const) {
        const peers: string[] = [];
        if (r.peers === "any") peers.push("");
        else {
          const pm = peerMatch(r.peers, f, peerField(f));
          if (pm.set) peers.push(`${peerField(f)} @${pm.set}`);
          peers.push(...pm.excepts);
        }
        // A rule for any peer is one rule for both families: written once, with the IPv4 pass.
        if (r.peers === "any" && f === 6) continue;
        for (const peer of peers) for (const port of ports) {
          lines.push(`${peer}${peer && port ? " " : ""}${port} counter return ${tag({ policy: r.policy, rule: r.rule, direction: pr.direction })}`.trim());
        }
      }
    }
    if (enforced) lines.push(`counter drop ${tag({ policy: pr.isolatedBy.join(","), rule: "deny", direction: pr.direction })}`);
    else lines.push(`counter return ${tag({ policy: pr.audit!.isolatedBy.join(","), rule: "audit-deny", direction: pr.direction })}`);
    // Named by its content: pods that the same rules judge (a Deployment's replicas) share one chain.
    const chain = `${ingress ? "in" : "out"}-${hash(lines.join("\n"))}`;
    m.chains.set(chain, lines);
    for (const a of pr.always.self.filter(ok)) {
      const f = familyOf(a);
      const map = ingress ? (f === 4 ? m.maps.in4 : m.maps.in6) : (f === 4 ? m.maps.out4 : m.maps.out6);
      map.set(a, chain);
    }
  }
  return m;
}

const MAPS = [["in4", "ipv4_addr"], ["in6", "ipv6_addr"], ["out4", "ipv4_addr"], ["out6", "ipv6_addr"]] as const;

function baseChain(established: NftModel["established"]): string[] {
  return [
    `add chain inet ${POLICY_TABLE} forward { type filter hook forward priority filter - 10; policy accept; }`,
    // keep: replies, and connections allowed when they began (a policy change does not cut them).
    // recheck: replies and ICMP errors about a connection only; its opening direction is judged again.
    ...(established === "keep" ? [`add rule inet ${POLICY_TABLE} forward ct state established,related accept`]
      : [`add rule inet ${POLICY_TABLE} forward ct state established ct direction reply accept`, `add rule inet ${POLICY_TABLE} forward ct state related accept`]),
    // IPv6 neighbour discovery between pods on one bridge is never a policy's business.
    `add rule inet ${POLICY_TABLE} forward icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert, nd-redirect } accept`,
    `add rule inet ${POLICY_TABLE} forward ip saddr . ip daddr @self4 accept`,
    `add rule inet ${POLICY_TABLE} forward ip6 saddr . ip6 daddr @self6 accept`,
    `add rule inet ${POLICY_TABLE} forward ip saddr vmap @out4`,
    `add rule inet ${POLICY_TABLE} forward ip6 saddr vmap @out6`,
    `add rule inet ${POLICY_TABLE} forward ip daddr vmap @in4`,
    `add rule inet ${POLICY_TABLE} forward ip6 daddr vmap @in6`,
  ];
}

const setDecl = (name: string, family: 4 | 6) => `add set inet ${POLICY_TABLE} ${name} { type ${family === 4 ? "ipv4_addr" : "ipv6_addr"}; flags interval; auto-merge; }`;
const elements = (list: string[]) => list.join(", ");

function setElements(name: string, s: { elements: string[] }): string[] {
  return s.elements.length ? [`add element inet ${POLICY_TABLE} ${name} { ${elements(s.elements)} }`] : [];
}

function selfElements(verb: "add" | "delete", f: 4 | 6, addrs: string[]): string[] {
  return addrs.length ? [`${verb} element inet ${POLICY_TABLE} self${f} { ${addrs.map((a) => `${a} . ${a}`).join(", ")} }`] : [];
}

function mapElements(name: string, map: Map<string, string>): string[] {
  return map.size ? [`add element inet ${POLICY_TABLE} ${name} { ${[...map].map(([a, c]) => `${a} : jump ${c}`).join(", ")} }`] : [];
}

/** The whole table from nothing (after `delete table`, if it existed), as one transaction. */
export function script(m: NftModel, exists: boolean): string {
  const out: string[] = [];
  if (exists) out.push(`delete table inet ${POLICY_TABLE}`);
  out.push(`add table inet ${POLICY_TABLE}`);
  for (const [name, s] of m.sets) out.push(setDecl(name, s.family), ...setElements(name, s));
  for (const [name, lines] of m.chains) {
    out.push(`add chain inet ${POLICY_TABLE} ${name}`);
    for (const l of lines) out.push(`add rule inet ${POLICY_TABLE} ${name} ${l}`);
  }
  for (const [name, type] of MAPS) out.push(`add map inet ${POLICY_TABLE} ${name} { type ${type} : verdict; }`, ...mapElements(name, m.maps[name]));
  for (const f of [4, 6] as const) out.push(`add set inet ${POLICY_TABLE} self${f} { type ${f === 4 ? "ipv4_addr . ipv4_addr" : "ipv6_addr . ipv6_addr"}; }`, ...selfElements("add", f, [...m.self[f]]));
  out.push(...baseChain(m.established));
  return out.join("\n") + "\n";
}

/**
 * What turns the applied model into the next one, as one transaction: new sets and chains
 * first, changed chains rewritten, the verdict maps refilled, then what nothing references any
 * more removed. Empty when nothing changed.
 */
export function changes(prev: NftModel, next: NftModel): string {
  const out: string[] = [];
  if (prev.established !== next.established) return script(next, true);
  for (const [name, s] of next.sets) if (!prev.sets.has(name)) out.push(setDecl(name, s.family), ...setElements(name, s));
  for (const [name, lines] of next.chains) {
    const old = prev.chains.get(name);
    if (old && old.length === lines.length && old.every((l, i) => l === lines[i])) continue;
    out.push(old ? `flush chain inet ${POLICY_TABLE} ${name}` : `add chain inet ${POLICY_TABLE} ${name}`);
    for (const l of lines) out.push(`add rule inet ${POLICY_TABLE} ${name} ${l}`);
  }
  // Only the entries that changed: a pod whose chain changed is repointed, its neighbours untouched.
  for (const [name] of MAPS) {
    const a = prev.maps[name], b = next.maps[name];
    const gone = [...a.keys()].filter((k) => b.get(k) !== a.get(k));
    const added = [...b].filter(([k, v]) => a.get(k) !== v);
    if (gone.length) out.push(`delete element inet ${POLICY_TABLE} ${name} { ${gone.join(", ")} }`);
    if (added.length) out.push(`add element inet ${POLICY_TABLE} ${name} { ${added.map(([k, v]) => `${k} : jump ${v}`).join(", ")} }`);
  }
  for (const f of [4, 6] as const) {
    out.push(...selfElements("add", f, [...next.self[f]].filter((a) => !prev.self[f].has(a))));
    out.push(...selfElements("delete", f, [...prev.self[f]].filter((a) => !next.self[f].has(a))));
  }
  for (const name of prev.chains.keys()) if (!next.chains.has(name)) out.push(`delete chain inet ${POLICY_TABLE} ${name}`);
  for (const name of prev.sets.keys()) if (!next.sets.has(name)) out.push(`delete set inet ${POLICY_TABLE} ${name}`);
  return out.length ? out.join("\n") + "\n" : "";
}

/** An address or CIDR the compiler writes into a rule: checked, since it came from the API. */
export function validAddress(a: string): boolean {
  return /^[0-9a-fA-F.:/]+$/.test(a) && !!parseCIDR(a.includes("/") ? a : `${a}/${a.includes(":") ? 128 : 32}`);
}
