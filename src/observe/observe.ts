// `gauze observe`: every node's flows, merged, filtered, one line each (or JSON lines), and with
// --follow the live streams of all nodes at once. Lost events are printed where they happened.
import type { FlowEvent } from "../agent/flow-types.ts";
import { AgentUnreachable, follow, get, podNames } from "./client.ts";
import { type FlowFilter, compact, flowJson, matches, named } from "./format.ts";
import { type AgentEndpoint, type ClusterSource, podRef } from "./source.ts";
import { type Filters, filtersMatch, hasFilters } from "./filters.ts";

export interface ObserveOptions extends FlowFilter {
  /** Only this node. */
  node?: string;
  last: number;
  follow: boolean;
  output: "compact" | "json";
  /** Hubble's filters (filters.ts): addresses, ports, namespaces, labels, a time window. */
  filters?: Filters;
  /** Ends --follow (besides SIGINT and SIGTERM): for a caller that runs observe in its own process. */
  signal?: AbortSignal;
}

export class ObserveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ObserveError";
  }
}

/** The options, checked: unknown values and pods are named with what exists. */
export function checkOptions(o: ObserveOptions, pods: Map<string, { pod: string }>, source: ClusterSource): void {
  if (o.protocol && !["icmp", "tcp", "udp"].includes(o.protocol)) throw new ObserveError(`--protocol ${o.protocol}: use icmp, tcp or udp`);
  if (o.verdict && !["forwarded", "dropped", "audit"].includes(o.verdict)) throw new ObserveError(`--verdict ${o.verdict}: use forwarded, dropped or audit (what an audit-mode NetworkPolicy would have dropped)`);
  if (!["compact", "json"].includes(o.output)) throw new ObserveError(`-o ${o.output}: use compact or json`);
  if (!Number.isInteger(o.last) || o.last < 0) throw new ObserveError(`--last ${o.last}: give a count, e.g. 20`);
  if (o.follow && o.filters?.until !== undefined) throw new ObserveError("--until ends the window, --follow has none: give one of them");
  const known = new Set([...pods.values()].map((p) => p.pod));
  for (const p of source.view().pods) known.add(podRef(p));
  for (const [flag, v] of [["--pod", o.pod], ["--from-pod", o.fromPod], ["--to-pod", o.toPod]] as const) {
    if (!v) continue;
    const full = v.includes("/") ? v : `default/${v}`;
    if (!known.has(full)) throw new ObserveError(`${flag} ${v}: no such pod (${known.size ? `pods: ${[...known].sort().join(", ")}` : "no pods on these nodes"})`);
  }
}

export async function runObserve(source: ClusterSource, o: ObserveOptions, write: (line: string) => void, warn: (line: string) => void): Promise<number> {
  const srcs = source.agents(o.node);
  const pods = await podNames(srcs);
  checkOptions(o, pods, source);
  const f = o.filters ?? {};
  const filtered = o.pod || o.fromPod || o.toPod || o.protocol || o.verdict || hasFilters(f);
  // Labels are the source's (the agents know addresses and names only), looked up by namespace/name.
  let labels = new Map<string, Record<string, string>>();
  const readLabels = () => { if (f.labels) labels = new Map(source.view().pods.filter((p) => p.labels).map((p) => [podRef(p), p.labels!])); };
  readLabels();
  const pass = (e: FlowEvent) => matches(e, o) && filtersMatch(e, f, (pod) => labels.get(pod));
  const print = (e: FlowEvent) => write(o.output === "json" ? JSON.stringify(flowJson(e)) : compact(e));
  let answered = 0;
  const lists = await Promise.all(srcs.map(async (s) => {
    try {
      // One request a node: the features that are off come first in the same answer.
      const items = (await get(s, `/v1/flows?last=${filtered ? 10_000 : o.last}&features=1`)).split("\n").filter(Boolean).map((l) => JSON.parse(l) as FlowEvent | { lost: number } | { features: Features });
      for (const x of items) if ("features" in x) warnFeaturesOff(s.node, x.features, warn);
      const got = items.filter((x): x is FlowEvent => !("lost" in x) && !("features" in x));
      answered++;
      return got;
    } catch (e) {
      warn(e instanceof AgentUnreachable ? e.message : `node ${s.node}: ${(e as Error).message}`);
      return [];
    }
  }));
  const recent = lists.flat().map((e) => named(e, pods)).filter(pass).sort((a, b) => a.time - b.time).slice(-o.last || undefined);
  if (o.last > 0) for (const e of recent) print(e);
  // Nothing answered: no flows is not an answer (a script must not read an empty list as a quiet cluster).
  if (!o.follow && srcs.length > 0 && answered === 0) {
    warn(`no node's agent answered (${srcs.length} asked): nothing is observed`);
    return 1;
  }
  if (!o.follow) return 0;
  let names = pods;
  let refreshed = Date.now();
  // One stream per node; a node whose agent goes away (restarted, stopped) is said once and
  // followed again every second until it is back.
  let stopping = false;
  const streams: { stop: () => void }[] = [];
  const down = new Set<string>();
  const followNode = (src: AgentEndpoint): Promise<void> => {
    const f = follow(src, "/v1/flows?last=0&follow=1", (i) => {
      if ("event" in i) {
        if (down.delete(i.node)) {
          warn(`node ${i.node}: following again`);
          // Its pods may have changed while it was away: names now, not at the next refresh.
          refreshed = Date.now();
          void podNames(srcs).then((p) => { names = p; });
        }
        if (Date.now() - refreshed > 2000) {
          refreshed = Date.now();
          void podNames(srcs).then((p) => { names = p; });
          readLabels();
        }
        const e = named(i.event, names);
        if (pass(e)) print(e);
      } else if ("lost" in i) {
        write(o.output === "json" ? JSON.stringify({ node: i.node, lost: i.lost }) : `EVENTS LOST: ${i.lost} on ${i.node} (the agent's buffers were full)`);
      } else if (!down.has(i.node)) {
        down.add(i.node);
        warn(`node ${i.node}: ${i.ended}; trying again every second`);
      }
    });
    streams.push(f);
    return f.done.then(async () => {
      if (stopping) return;
      await new Promise((r) => setTimeout(r, 1000));
      if (stopping) return;
      // A node the source no longer has (removed from the lab or the cluster) is said once and let go.
      if (!member(src.node)) {
        following.delete(src.node);
        warn(`node ${src.node}: no longer in the ${source.label}; not followed`);
        return;
      }
      await followNode(src);
    });
  };
  const member = (node: string) => { try { return source.agents(o.node).some((a) => a.node === node); } catch { return true; } };
  // Nodes that join while following are followed too (the source's list, every 2 s).
  const following = new Set(srcs.map((s) => s.node));
  const joined: Promise<void>[] = [];
  const membership = setInterval(() => {
    let now: AgentEndpoint[];
    try { now = source.agents(o.node); } catch { return; }
    for (const s of now) {
      if (following.has(s.node) || stopping) continue;
      following.add(s.node);
      warn(`node ${s.node}: joined; following it`);
      void podNames(now).then((p) => { names = p; });
      joined.push(followNode(s));
    }
  }, 2000);
  const stop = () => { stopping = true; clearInterval(membership); for (const s of streams) s.stop(); };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  o.signal?.addEventListener("abort", stop, { once: true });
  try {
    await Promise.all(srcs.map(followNode));
    await Promise.all(joined);
  } finally {
    clearInterval(membership);
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  return 0;
}

/** Says, once per node, what its agent cannot observe (drops without tracefs, say) and the fix. */
type Features = Record<string, { on: boolean; why?: string; fix?: string }>;

function warnFeaturesOff(node: string, features: Features, warn: (line: string) => void): void {
  for (const [name, f] of Object.entries(features)) {
    if (!f.on) warn(`node ${node}: ${name} off: ${f.why ?? "unavailable"}${f.fix ? `; fix: ${f.fix}` : ""}`);
  }
}
