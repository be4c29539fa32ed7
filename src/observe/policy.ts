// `gauze policy explain` and `gauze policy what-if`: questions about NetworkPolicy answered
// offline from the Kubernetes API's current state (pods, namespaces, policies, listed with the
// official client), by the same evaluator the agents program their nodes from. explain walks
// each policy for one connection; what-if replays the flows the agents observed recently against
// the policies a file proposes and lists each connection whose verdict would change. What the API
// returns is input: a pod or policy that does not parse is skipped and named, as the agent would.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import type { KubeConfig } from "@kubernetes/client-node";
import { compileWorld, evaluate, explain, nsInfoFromV1, parsePolicy, podInfoFromV1, reasonLine } from "../policy/index.ts";
import type { ParsedPolicy, PodInfo, PolicyWorld, Protocol, Query, Verdict, NsInfo } from "../policy/index.ts";
import { parseIP } from "../net/cidr.ts";
import type { FlowEvent } from "../agent/flow-types.ts";
import { AgentUnreachable, get } from "./client.ts";
import type { AgentEndpoint } from "./source.ts";

export class PolicyQuestionError extends Error {}

export interface LoadedWorld {
  world: PolicyWorld;
  /** Policies the agents fail closed on, with why. */
  invalid: { policy: string; problems: string[] }[];
  resourceVersion?: string;
}

type K8s = typeof import("@kubernetes/client-node");

/** Everything NetworkPolicy depends on, from the API the kubeconfig names. */
export async function loadWorld(kubeconfig: string, context?: string): Promise<LoadedWorld> {
  const k8s: K8s = await import("@kubernetes/client-node");
  const kc: KubeConfig = new k8s.KubeConfig();
  try {
    kc.loadFromFile(kubeconfig);
    if (context) kc.setCurrentContext(context);
  } catch (e) {
    throw new PolicyQuestionError(`kubeconfig ${kubeconfig}: ${(e as Error).message}`);
  }
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const net = kc.makeApiClient(k8s.NetworkingV1Api);
  let lists;
  try {
    lists = await Promise.all([core.listPodForAllNamespaces(), core.listNamespace(), net.listNetworkPolicyForAllNamespaces()]);
  } catch (e) {
    throw new PolicyQuestionError(`the Kubernetes API at ${kc.getCurrentCluster()?.server ?? "?"} did not answer the lists of pods, namespaces and networkpolicies: ${(e as Error).message}`);
  }
  const [pods, namespaces, policies] = lists;
  const invalid: LoadedWorld["invalid"] = [];
  const parsed: ParsedPolicy[] = [];
  for (const obj of policies.items) {
    const r = parsePolicy(obj);
    if (r.problems.length) invalid.push({ policy: `${obj.metadata?.namespace ?? "?"}/${obj.metadata?.name ?? "?"}`, problems: r.problems.map((p) => `${p.path}: ${p.message}`) });
    if (r.policy) parsed.push(r.policy);
  }
  return {
    world: {
      pods: pods.items.map((p) => podInfoFromV1(p)).filter((p): p is PodInfo => !!p),
      namespaces: namespaces.items.map((n) => nsInfoFromV1(n)).filter((n): n is NsInfo => !!n),
      policies: parsed,
    },
    invalid,
    ...(policies.metadata?.resourceVersion ? { resourceVersion: policies.metadata.resourceVersion } : {}),
  };
}

/** A pod by `[namespace/]name`, or an address. */
export function peerOf(world: PolicyWorld, ref: string): Query["from"] {
  if (parseIP(ref)) return { ip: ref };
  const i = ref.indexOf("/");
  const [namespace, name] = i < 0 ? ["default", ref] : [ref.slice(0, i), ref.slice(i + 1)];
  if (!world.pods.some((p) => p.namespace === namespace && p.name === name)) {
    throw new PolicyQuestionError(`no pod ${namespace}/${name} in the API (pods: ${world.pods.map((p) => `${p.namespace}/${p.name}`).slice(0, 20).join(", ") || "none"}); or give an IP address`);
  }
  return { namespace, name };
}

export function explainQuestion(w: LoadedWorld, from: string, to: string, port: number, protocol: Protocol): { verdict: Verdict; text: string; query: Query } {
  const q: Query = { from: peerOf(w.world, from), to: peerOf(w.world, to), port, protocol };
  const v = evaluate(compileWorld(w.world), q, { trace: true });
  const failed = w.invalid.length ? `\n(failing closed, not parsed: ${w.invalid.map((x) => x.policy).join(", ")})` : "";
  return { verdict: v, text: explain(v, q) + failed, query: q };
}

/** The file's NetworkPolicies (and Namespaces' labels) applied to a world, as an apply would. */
export function proposedWorld(world: PolicyWorld, file: string, text = readFileSync(file, "utf8")): { world: PolicyWorld; changed: string[]; problems: string[] } {
  let policies = [...world.policies];
  let namespaces = [...world.namespaces];
  const changed: string[] = [];
  const problems: string[] = [];
  parseAllDocuments(text).forEach((d, i) => {
    if (d.errors.length) throw new PolicyQuestionError(`${file}: document ${i + 1}: ${d.errors[0]!.message.split("\n")[0]}`);
    const o = d.toJS() as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown; labels?: unknown } } | null;
    if (!o) return;
    if (o.kind === "Namespace" && typeof o.metadata?.name === "string") {
      const name = o.metadata.name;
      const labels = { ...(o.metadata.labels as Record<string, string> | undefined ?? {}), "kubernetes.io/metadata.name": name };
      namespaces = [...namespaces.filter((n) => n.name !== name), { name, labels }];
      changed.push(`namespace ${name}`);
      return;
    }
    if (o.kind !== "NetworkPolicy") throw new PolicyQuestionError(`${file}: document ${i + 1}: what-if takes NetworkPolicies and Namespaces, not ${String(o.kind)}`);
    const doc = { ...o, metadata: { ...o.metadata, namespace: typeof o.metadata?.namespace === "string" ? o.metadata.namespace : "default" } };
    const r = parsePolicy(doc);
    if (r.problems.length) problems.push(...r.problems.map((p) => `${p.path}: ${p.message}`));
    if (!r.policy) throw new PolicyQuestionError(`${file}: document ${i + 1}: ${r.problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
    policies = [...policies.filter((p) => p.key !== r.policy!.key), r.policy];
    changed.push(`networkpolicy ${r.policy.key}`);
  });
  if (!changed.length) throw new PolicyQuestionError(`${file}: no NetworkPolicy or Namespace in it`);
  return { world: { ...world, policies, namespaces }, changed, problems };
}

export interface WhatIfChange {
  from: string;
  to: string;
  port: number;
  protocol: Protocol;
  /** How often the agents saw it (packets), and last when. */
  packets: number;
  lastSeen: number;
  now: "allowed" | "denied";
  proposed: "allowed" | "denied";
  reason: string;
}

const PROTO: Record<string, Protocol> = { tcp: "TCP", udp: "UDP", sctp: "SCTP" };

/** The connections the agents saw recently, one per (source, destination, port, protocol), replies left out. */
export async function recentConnections(agents: AgentEndpoint[], warn: (line: string) => void, last = 10_000): Promise<Map<string, { q: Query; from: string; to: string; packets: number; lastSeen: number }>> {
  type Seen = { q: Query; from: string; to: string; packets: number; lastSeen: number; first: number; srcPort: number; reply: boolean };
  const all = new Map<string, Seen>();
  await Promise.all(agents.map(async (a) => {
    let text: string;
    try {
      text = await get(a, `/v1/flows?last=${last}`);
    } catch (e) {
      warn(e instanceof AgentUnreachable ? e.message : `node ${a.node}: ${(e as Error).message}`);
      return;
    }
    for (const line of text.split("\n")) {
      if (!line) continue;
      let e: FlowEvent;
      try { e = JSON.parse(line) as FlowEvent; } catch { continue; }
      if (typeof e.source?.ip !== "string" || typeof e.destination?.ip !== "string" || typeof e.time !== "number") continue;
      const icmp = e.protocol === "icmp" || e.protocol === "icmp6";
      // ICMP has no port: judged as the agents judge it, TCP port 0 (only a rule without ports allows it).
      const protocol = PROTO[e.protocol] ?? (icmp ? "TCP" : undefined);
      if (!protocol) continue;
      const port = icmp ? 0 : e.destination.port ?? 0, srcPort = icmp ? 0 : e.source.port ?? 0;
      // Replies pass by conntrack whatever the policies say: an echo reply, a SYN-ACK or later segment of a connection seen starting the other way.
      const reply = icmp ? e.icmp?.type === 0 || e.icmp?.type === 129 : !!(e.tcpFlags?.includes("SYN") && e.tcpFlags.includes("ACK"));
      const k = `${e.source.ip}:${srcPort}>${e.destination.ip}:${port}/${e.protocol}`;
      const cur = all.get(k);
      if (cur) { cur.packets += e.packets ?? 1; cur.lastSeen = Math.max(cur.lastSeen, e.time); cur.first = Math.min(cur.first, e.time); cur.reply ||= reply; continue; }
      all.set(k, { q: { from: { ip: e.source.ip }, to: { ip: e.destination.ip }, port, protocol }, from: e.source.pod ?? e.source.ip, to: e.destination.pod ?? e.destination.ip, packets: e.packets ?? 1, lastSeen: e.time, first: e.time, srcPort, reply });
    }
  }));
  const out = new Map<string, { q: Query; from: string; to: string; packets: number; lastSeen: number }>();
  for (const [k, s] of all) {
    if (s.reply) continue;
    const ip = (p: Query["from"]) => ("ip" in p ? p.ip : "");
    const proto = k.slice(k.lastIndexOf("/") + 1);
    const back = all.get(`${ip(s.q.to)}:${s.q.port}>${ip(s.q.from)}:${s.srcPort}/${proto}`);
    if (back && back.first < s.first) continue; // the other way came first: this is its reply
    const key = `${ip(s.q.from)}>${ip(s.q.to)}:${s.q.port}/${s.q.protocol}`;
    const cur = out.get(key);
    if (cur) { cur.packets += s.packets; cur.lastSeen = Math.max(cur.lastSeen, s.lastSeen); continue; }
    out.set(key, { q: s.q, from: s.from, to: s.to, packets: s.packets, lastSeen: s.lastSeen });
  }
  return out;
}

/** Each observed connection whose verdict the proposed world changes. */
export function whatIf(now: PolicyWorld, proposed: PolicyWorld, seen: Map<string, { q: Query; from: string; to: string; packets: number; lastSeen: number }>): { checked: number; changes: WhatIfChange[] } {
  const a = compileWorld(now), b = compileWorld(proposed);
  // The agents name only their own node's pods: the API names every pod.
  const names = new Map(now.pods.flatMap((p) => p.ips.map((ip) => [ip, `${p.namespace}/${p.name}`] as const)));
  const name = (who: string) => names.get(who) ?? who;
  const changes: WhatIfChange[] = [];
  let checked = 0;
  for (const s of seen.values()) {
    let va: Verdict, vb: Verdict;
    try {
      va = evaluate(a, s.q);
      vb = evaluate(b, s.q);
    } catch {
      continue; // an address the world cannot place (another family): nothing to say
    }
    checked++;
    if (va.allowed === vb.allowed) continue;
    changes.push({ from: name(s.from), to: name(s.to), port: s.q.port, protocol: s.q.protocol, packets: s.packets, lastSeen: s.lastSeen, now: va.allowed ? "allowed" : "denied", proposed: vb.allowed ? "allowed" : "denied", reason: reasonLine(vb, s.q) });
  }
  changes.sort((x, y) => y.packets - x.packets);
  return { checked, changes };
}

export interface PolicyRollout {
  /** The newest resourceVersion among the pods, namespaces and policies the API holds. */
  generation: number;
  nodes: { node: string; generation?: number; programmed: boolean; isolatedPods?: number; invalid?: number; error?: string }[];
  programmed: number;
}

/** Whether every node's agent has programmed the API's current state ("generation N programmed on n/n nodes"). */
export async function policyRollout(kubeconfig: string, agents: AgentEndpoint[], context?: string): Promise<PolicyRollout> {
  const k8s: K8s = await import("@kubernetes/client-node");
  const kc: KubeConfig = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  if (context) kc.setCurrentContext(context);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const net = kc.makeApiClient(k8s.NetworkingV1Api);
  const lists = await Promise.all([core.listPodForAllNamespaces(), core.listNamespace(), net.listNetworkPolicyForAllNamespaces()]);
  let generation = 0;
  for (const l of lists) for (const o of l.items as { metadata?: { resourceVersion?: string } }[]) generation = Math.max(generation, Number(o.metadata?.resourceVersion) || 0);
  const nodes = await Promise.all(agents.map(async (a) => {
    try {
      const p = JSON.parse(await get(a, "/v1/policy")) as { generation?: unknown; isolatedPods?: unknown; invalid?: unknown[]; error?: unknown };
      const g = typeof p.generation === "number" ? p.generation : undefined;
      return { node: a.node, ...(g !== undefined ? { generation: g } : {}), programmed: g !== undefined && g >= generation && !p.error,
        ...(typeof p.isolatedPods === "number" ? { isolatedPods: p.isolatedPods } : {}), ...(Array.isArray(p.invalid) ? { invalid: p.invalid.length } : {}), ...(typeof p.error === "string" ? { error: p.error } : {}) };
    } catch (e) {
      return { node: a.node, programmed: false, error: (e as Error).message };
    }
  }));
  return { generation, nodes, programmed: nodes.filter((n) => n.programmed).length };
}
