// `gauze observe status`: what `hubble status` says for a cluster, per node and in total: whether
// its agent answers, what it observes with, flows tracked, events made, events lost, packets read,
// drops seen, sampling, and which features are off (why, and the fix).
import { AgentUnreachable, get } from "./client.ts";
import type { ClusterSource } from "./source.ts";

export interface NodeObserverStatus {
  node: string;
  reachable: boolean;
  /** Why not, when not reachable. */
  error?: string;
  observer?: string;
  flows?: number;
  events?: number;
  lost?: number;
  packets?: number;
  drops?: number;
  sampling?: number;
  featuresOff?: { feature: string; why: string; fix?: string }[];
}

export interface ObserveStatus {
  source: string;
  nodes: NodeObserverStatus[];
  totals: { nodes: number; reachable: number; flows: number; events: number; lost: number; packets: number; drops: number };
}

interface Stats { packets?: number; flows?: number; events?: number; lost?: number; dropsSeen?: number; sampling?: number; observer?: string; features?: Record<string, { on: boolean; why?: string; fix?: string }> }

export async function observeStatus(source: ClusterSource, node?: string): Promise<ObserveStatus> {
  const nodes = await Promise.all(source.agents(node).map(async (a): Promise<NodeObserverStatus> => {
    try {
      const st = JSON.parse(await get(a, "/v1/observer")) as Stats;
      const off = Object.entries(st.features ?? {}).filter(([, f]) => !f.on).map(([feature, f]) => ({ feature, why: f.why ?? "unavailable", ...(f.fix ? { fix: f.fix } : {}) }));
      return {
        node: a.node, reachable: true, ...(st.observer ? { observer: st.observer } : {}), flows: st.flows ?? 0, events: st.events ?? 0, lost: st.lost ?? 0,
        packets: st.packets ?? 0, drops: st.dropsSeen ?? 0, sampling: st.sampling ?? 1, ...(off.length ? { featuresOff: off } : {}),
      };
    } catch (e) {
      return { node: a.node, reachable: false, error: e instanceof AgentUnreachable ? e.message.replace(/^node \S+: /, "") : (e as Error).message };
    }
  }));
  const sum = (k: "flows" | "events" | "lost" | "packets" | "drops") => nodes.reduce((s, n) => s + (n[k] ?? 0), 0);
  return { source: source.label, nodes, totals: { nodes: nodes.length, reachable: nodes.filter((n) => n.reachable).length, flows: sum("flows"), events: sum("events"), lost: sum("lost"), packets: sum("packets"), drops: sum("drops") } };
}

export function formatObserveStatus(r: ObserveStatus): string {
  const t = r.totals;
  const out = [
    `${r.source}: ${t.reachable}/${t.nodes} nodes answer`,
    `flows ${t.flows}, events ${t.events} seen, ${t.lost} lost${t.events + t.lost ? ` (${((100 * t.lost) / (t.events + t.lost)).toFixed(2)}%)` : ""}, packets ${t.packets}, drops ${t.drops}`,
    "",
    "NODE".padEnd(28) + "OBSERVER".padEnd(10) + "FLOWS".padStart(8) + "EVENTS".padStart(10) + "LOST".padStart(8) + "PACKETS".padStart(12) + "DROPS".padStart(8) + "  SAMPLING",
  ];
  for (const n of r.nodes) {
    if (!n.reachable) { out.push(`${n.node.padEnd(28)}not reachable: ${n.error}`); continue; }
    out.push(n.node.padEnd(28) + (n.observer ?? "-").padEnd(10) + String(n.flows).padStart(8) + String(n.events).padStart(10) + String(n.lost).padStart(8) + String(n.packets).padStart(12) + String(n.drops).padStart(8) + `  ${n.sampling === 1 ? "every packet" : `1 in ${n.sampling}`}`);
    for (const f of n.featuresOff ?? []) out.push(`  ${f.feature} off: ${f.why}${f.fix ? `; fix: ${f.fix}` : ""}`);
  }
  return out.join("\n");
}
