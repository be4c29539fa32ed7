// The agent's local API, on a unix socket in the node's /run/gauze (root only: flows say who
// talks to whom): what `gauze observe`, `gauze trace` and `gauze ui` read from every node.
//   GET /v1/flows?last=N&since=MS[&follow=1][&features=1]   recent flow events, then (follow) live
//                                              ones; NDJSON, with {"lost": n} lines when events were
//                                              pushed out, first a {"features": ...} line when asked
//   GET /v1/sightings?src=&dst=&proto=&srcPort=&icmpId=&since=   one packet's sightings (trace)
//   GET /v1/packets?src=&dst=&proto=&point=&last=3   a flow's last packets, dissected (packet-in-packet)
//   GET /v1/pods                               this node's pods by address
//   GET /v1/observer                           the observer's counters, and which features are off (why, fix)
//   GET /v1/policy                             NetworkPolicy on this node: generation programmed, rules, failed-closed policies
//   GET /v1/policy/judge?src=&dst=&proto=&port= what this node's policies say of one connection (trace asks after a netfilter drop)
//   GET /v1/datapath/decide?src=&dst=&hook=     what the eBPF datapath's program at that hook does with such a packet (trace names the redirect)
import { createServer, type Server } from "node:http";
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { FlowObserver } from "./flows.ts";
import type { Feature } from "./status.ts";
import type { Judgement, PolicyStatus } from "./policy.ts";
import type { DatapathHook, Decision } from "../dataplane/ebpf-datapath.ts";

/** Live streams one agent serves at once. */
export const MAX_FOLLOWERS = 16;

export interface Api {
  server: Server;
  /** Ends the live streams (their readers see the stream end and follow again later) and stops listening. */
  close(): void;
}

/** What the API reads from the agent, each when a request asks. */
export interface ApiSources {
  observer: () => FlowObserver | undefined;
  /** Why flows are not observed (while `observer` gives none). */
  unavailable: () => string;
  features: () => Record<string, Feature>;
  policy: () => PolicyStatus | undefined;
  judge: (src: string, dst: string, proto: number, port: number) => Judgement | undefined;
  /** The eBPF datapath's decision for one packet at one hook, from the maps in the kernel; undefined while it is off. */
  decide: (hook: DatapathHook, src: string, dst: string) => Decision | undefined;
}

export function serveApi(path: string, a: ApiSources): Promise<Api> {
  const { observer, unavailable, features, policy, judge } = a;
  mkdirSync(dirname(path), { recursive: true });
  rmSync(path, { force: true });
  const live = new Set<import("node:http").ServerResponse>();
  const server = createServer({ maxHeaderSize: 8192, requestTimeout: 0 }, (req, res) => {
    const url = new URL(req.url ?? "/", "http://agent");
    const q = (k: string) => url.searchParams.get(k) ?? undefined;
    const num = (k: string) => (q(k) !== undefined && Number.isFinite(Number(q(k))) ? Number(q(k)) : undefined);
    if (req.method !== "GET") return void res.writeHead(405, { allow: "GET" }).end("GET only\n");
    if (url.pathname === "/v1/policy/judge") {
      const src = q("src"), dst = q("dst"), proto = num("proto"), port = num("port") ?? 0;
      if (!src || !dst || proto === undefined) return void res.writeHead(400, { "content-type": "text/plain" }).end("give src, dst and proto (and port)\n");
      if (!policy()) return void res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "NetworkPolicy is not enforced by this agent" }));
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(judge(src, dst, proto, port) ?? { verdict: "allowed", reason: "no policy concerns it" }));
    }
    if (url.pathname === "/v1/datapath/decide") {
      const src = q("src"), dst = q("dst"), hook = q("hook") ?? "from-pod";
      if (!src || !dst || (hook !== "from-pod" && hook !== "from-net")) return void res.writeHead(400, { "content-type": "text/plain" }).end("give src, dst and hook (from-pod or from-net)\n");
      const d = a.decide(hook, src, dst);
      return void res.writeHead(d ? 200 : 404, { "content-type": "application/json" }).end(JSON.stringify(d ?? { error: "the eBPF datapath is not running on this node" }));
    }
    if (url.pathname === "/v1/policy") {
      const p = policy();
      return void res.writeHead(p ? 200 : 404, { "content-type": "application/json" }).end(JSON.stringify(p ?? { error: "NetworkPolicy is not enforced by this agent (no Kubernetes API, or --network-policy off)" }));
    }
    const o = observer();
    if (!o) return void res.writeHead(503, { "content-type": "text/plain" }).end(`flows are not observed on this node: ${unavailable()}\n`);
    switch (url.pathname) {
      case "/v1/flows": {
        const follow = q("follow") === "1";
        // A bounded number of followers, each with a bounded backlog (flows.ts: a reader that
        // does not read loses events, counted in its stream, and never grows the agent).
        if (follow && live.size >= MAX_FOLLOWERS) return void res.writeHead(503, { "content-type": "text/plain" }).end(`too many live readers on this node (${MAX_FOLLOWERS}): stop one (gauze observe --follow, gauze ui)\n`);
        res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
        // &features=1: first a {"features"} line (what is off, why, the fix), so a reader needs one request, not two.
        if (q("features") === "1") res.write(JSON.stringify({ features: features() }) + "\n");
        for (const e of o.recent(Math.min(num("last") ?? 20, 10_000), num("since") ?? 0)) res.write(JSON.stringify(e) + "\n");
        if (!follow) return void res.end();
        const stop = o.listen({ write: (t) => { res.write(t); }, backlog: () => res.writableLength });
        live.add(res);
        req.on("close", () => { stop(); live.delete(res); });
        return;
      }
      case "/v1/sightings": {
        const s = o.sightingsOf({
          ...(q("src") ? { src: q("src")! } : {}), ...(q("dst") ? { dst: q("dst")! } : {}), ...(num("proto") !== undefined ? { proto: num("proto")! } : {}),
          ...(num("srcPort") !== undefined ? { srcPort: num("srcPort")! } : {}), ...(num("icmpId") !== undefined ? { icmpId: num("icmpId")! } : {}), ...(num("since") !== undefined ? { since: num("since")! } : {}),
        });
        return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(s));
      }
      case "/v1/packets": {
        const v = o.packets({
          ...(q("src") ? { src: q("src")! } : {}), ...(q("dst") ? { dst: q("dst")! } : {}), ...(num("proto") !== undefined ? { proto: num("proto")! } : {}),
          ...(num("srcPort") !== undefined ? { srcPort: num("srcPort")! } : {}), ...(num("dstPort") !== undefined ? { dstPort: num("dstPort")! } : {}),
          ...(q("point") ? { point: q("point")! } : {}), last: Math.min(num("last") ?? 3, 20),
        });
        return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(v));
      }
      case "/v1/pods":
        return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(o.podNames()));
      case "/v1/observer":
        return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ...o.stats, features: features() }));
      default:
        return void res.writeHead(404, { "content-type": "text/plain" }).end("unknown path: /v1/flows, /v1/sightings, /v1/packets, /v1/pods, /v1/observer\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      chmodSync(path, 0o600);
      resolve({ server, close: () => { for (const r of live) r.end(); server.close(); rmSync(path, { force: true }); } });
    });
  });
}
