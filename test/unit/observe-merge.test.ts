// observe's merge across many nodes, with fake agents (HTTP on unix sockets, as the agents'
// API is): 50 nodes, one of which accepts connections and never answers. The history comes back
// merged in time order from the 49 within the request deadline, the hung node named; live, every
// answering node's events arrive while the hung one waits, and a node's lost events are said for
// that node. (The agents' own limits are tested against real agents in test/e2e/hardening.)
import { test, expect, afterAll } from "bun:test";
import { createServer, type Server, type ServerResponse } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runObserve } from "../../src/observe/observe.ts";
import type { AgentEndpoint, ClusterSource } from "../../src/observe/source.ts";
import type { FlowEvent } from "../../src/agent/flow-types.ts";

const N = 50, HUNG = 13, LOSSY = 7;
const dir = mkdtempSync("/tmp/gauze-merge-");
const servers: Server[] = [];
const live = new Set<ServerResponse>();
const base = Date.now() - 60_000;

const event = (i: number, k: number): FlowEvent => ({
  time: base + k * 1000 + i, node: `node-${i}`, source: { ip: `10.244.${i}.2` }, destination: { ip: "10.244.0.2" }, protocol: "icmp",
  verdict: "forwarded", observationPoint: "from-pod", interface: { index: 3, name: "gz0" }, packets: 1, bytes: 98, ipLen: 84,
} as FlowEvent);

const agents: AgentEndpoint[] = [];
for (let i = 0; i < N; i++) {
  const socket = join(dir, `node-${i}.sock`);
  const s = createServer((req, res) => {
    if (i === HUNG) return; // accepted, never answered
    const url = new URL(req.url ?? "/", "http://agent");
    if (url.pathname === "/v1/pods") return void res.end(JSON.stringify({ [`10.244.${i}.2`]: `default/p-${i}` }));
    if (url.pathname !== "/v1/flows") return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    if (url.searchParams.get("follow") !== "1") return void res.end([0, 1, 2].map((k) => JSON.stringify(event(i, k))).join("\n") + "\n");
    live.add(res);
    res.write(JSON.stringify({ ...event(i, 3), time: Date.now() }) + "\n");
    if (i === LOSSY) res.write(JSON.stringify({ lost: 5 }) + "\n");
  });
  s.listen(socket);
  servers.push(s);
  agents.push({ node: `node-${i}`, socket });
}

const source = {
  label: "fake cluster", agents: () => agents,
  view: () => ({ name: "fake", backend: "vxlan", podCidr: "10.244.0.0/16", nodes: [], pods: [] }),
} as unknown as ClusterSource;
const opts = { last: 500, follow: false, output: "json" as const };

afterAll(() => {
  for (const r of live) r.destroy();
  for (const s of servers) { s.closeAllConnections?.(); s.close(); }
  rmSync(dir, { recursive: true, force: true });
});

test("history from 50 nodes: merged in time order from the 49 that answer, within the deadline; the hung node named", async () => {
  const lines: string[] = [], warned: string[] = [];
  const t0 = Date.now();
  const code = await runObserve(source, opts, (l) => lines.push(l), (w) => warned.push(w));
  const took = Date.now() - t0;
  expect(code).toBe(0);
  expect(took).toBeLessThan(6000); // two requests a node, each with a 2 s deadline, the nodes asked at once
  const events = lines.map((l) => JSON.parse(l) as { node: string; time: string; source: { pod?: string } });
  expect(events.length).toBe((N - 1) * 3);
  expect(new Set(events.map((e) => e.node)).has(`node-${HUNG}`)).toBe(false);
  const times = events.map((e) => Date.parse(e.time));
  expect(times).toEqual([...times].sort((a, b) => a - b));
  expect(events.find((e) => e.node === "node-1")!.source.pod).toBe("default/p-1");
  expect(warned.some((w) => w.includes(`node node-${HUNG}: agent not reachable (no answer within 2000 ms)`))).toBe(true);
  expect(warned.length).toBe(1);
}, 15_000);

test("live from 50 nodes: each answering node's events while the hung one waits; lost events said for their node", async () => {
  const lines: string[] = [];
  const ctl = new AbortController();
  const done = runObserve(source, { ...opts, last: 0, follow: true, signal: ctl.signal }, (l) => lines.push(l), () => undefined);
  const until = Date.now() + 8000;
  const nodesSeen = () => new Set(lines.map((l) => (JSON.parse(l) as { node: string }).node));
  while (nodesSeen().size < N - 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  ctl.abort();
  await done;
  const seen = nodesSeen();
  expect(seen.size).toBe(N - 1);
  expect(seen.has(`node-${HUNG}`)).toBe(false);
  expect(lines.map((l) => JSON.parse(l) as { node: string; lost?: number }).filter((x) => x.lost !== undefined)).toEqual([{ node: `node-${LOSSY}`, lost: 5 }]);
}, 20_000);
