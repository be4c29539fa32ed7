// The relay: every node's agent API (a unix socket in the node's /run/gauze), asked in parallel
// and merged. A node whose agent does not answer is named and left out; it never holds up the
// others (each request has a deadline; a live stream that ends is reported and the rest go on).
// Which nodes there are and where their agents listen comes from a source (source.ts); an
// endpoint that carries a transport (transport.ts: a cluster's agents through pods/exec) is asked
// through it, with the same deadlines and the same stream items.
import { request } from "node:http";
import { existsSync } from "node:fs";
import type { FlowEvent, Sighting } from "../agent/flow-types.ts";
import type { AgentEndpoint } from "./source.ts";
import { transportOf } from "./transport.ts";

export class AgentUnreachable extends Error {
  constructor(readonly node: string, why: string) {
    super(`node ${node}: agent not reachable (${why})`);
    this.name = "AgentUnreachable";
  }
}

function why(src: AgentEndpoint, e: Error & { code?: string }): string {
  if (!existsSync(src.socket) || e.code === "ENOENT") return `no API socket at ${src.socket}: the agent is not running (${src.startHint ?? "start it: gauze agent, or check the DaemonSet's pod on this node"})`;
  if (e.code === "ECONNREFUSED") return "its API socket refuses connections: the agent has stopped";
  return e.message;
}

/** One GET; the body as text. */
export function get(src: AgentEndpoint, path: string, timeoutMs = 2000): Promise<string> {
  const t = transportOf(src);
  if (t) {
    let body = "";
    return t(path, (d) => { body += d; }, { timeoutMs }).done.then(() => body, (e: Error) => { throw new AgentUnreachable(src.node, e.message); });
  }
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: src.socket, path, method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => { body += d; });
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new AgentUnreachable(src.node, `HTTP ${res.statusCode}: ${body.trim()}`))));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (e: Error & { code?: string }) => reject(e instanceof AgentUnreachable ? e : new AgentUnreachable(src.node, why(src, e))));
    req.end();
  });
}

export type StreamItem = { node: string; event: FlowEvent } | { node: string; lost: number } | { node: string; ended: string };

/** Live NDJSON from one node; calls back per line; resolves when the stream ends (or is cut). */
export function follow(src: AgentEndpoint, path: string, onItem: (i: StreamItem) => void): { done: Promise<void>; stop: () => void } {
  let stopped = false;
  const t = transportOf(src);
  if (t) {
    let rest = "";
    const call = t(path, (d) => {
      const lines = (rest + d).split("\n");
      rest = lines.pop() ?? "";
      for (const l of lines) {
        if (!l) continue;
        const v = JSON.parse(l) as FlowEvent | { lost: number };
        onItem("lost" in v ? { node: src.node, lost: v.lost } : { node: src.node, event: v });
      }
    }, {});
    const done = call.done.then(
      () => { if (!stopped) onItem({ node: src.node, ended: "the agent closed the stream (restarted or stopped)" }); },
      (e: Error) => { if (!stopped) onItem({ node: src.node, ended: e.message }); });
    return { done, stop: () => { stopped = true; call.stop(); } };
  }
  const req = request({ socketPath: src.socket, path, method: "GET" });
  const done = new Promise<void>((resolve) => {
    req.on("response", (res) => {
      if (res.statusCode !== 200) {
        let body = "";
        res.on("data", (d: Buffer) => { body += d.toString(); });
        res.on("end", () => { onItem({ node: src.node, ended: `HTTP ${res.statusCode}: ${body.trim()}` }); resolve(); });
        return;
      }
      let rest = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        const lines = (rest + d).split("\n");
        rest = lines.pop() ?? "";
        for (const l of lines) {
          if (!l) continue;
          const v = JSON.parse(l) as FlowEvent | { lost: number };
          onItem("lost" in v ? { node: src.node, lost: v.lost } : { node: src.node, event: v });
        }
      });
      res.on("end", () => { if (!stopped) onItem({ node: src.node, ended: "the agent closed the stream (restarted or stopped)" }); resolve(); });
      res.on("error", () => { if (!stopped) onItem({ node: src.node, ended: "the stream was cut (the agent is gone)" }); resolve(); });
    });
    req.on("error", (e: Error & { code?: string }) => { if (!stopped) onItem({ node: src.node, ended: why(src, e) }); resolve(); });
  });
  req.end();
  return { done, stop: () => { stopped = true; req.destroy(); } };
}

/** Every node's pods by address, merged (names of pods elsewhere come from their own node). */
export async function podNames(srcs: AgentEndpoint[]): Promise<Map<string, { pod: string; node: string }>> {
  const out = new Map<string, { pod: string; node: string }>();
  await Promise.all(srcs.map(async (s) => {
    try {
      for (const [ip, pod] of Object.entries(JSON.parse(await get(s, "/v1/pods")) as Record<string, string>)) out.set(ip, { pod, node: s.node });
    } catch {
      // an unreachable node's pods stay addresses
    }
  }));
  return out;
}

export async function sightings(src: AgentEndpoint, q: Record<string, string | number | undefined>): Promise<Sighting[]> {
  const qs = Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join("&");
  return JSON.parse(await get(src, `/v1/sightings?${qs}`)) as Sighting[];
}
