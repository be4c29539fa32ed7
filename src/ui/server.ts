// `gauze ui`: one page, served with every asset by gauze itself (no internet), over the lab's
// agents: nodes (Ready, subnet, VTEP), their pods, the tunnels between nodes; live flows on the
// edges with packets/s and bytes/s, inner against outer bytes and the overhead; dropped flows
// in red with the kernel's reason; a flow's last packets dissected layer by layer; doctor per
// node. Live updates through server-sent events: flows as they come, edge rates every second,
// the lab's state every two.
//
// Who may ask: the page shows who talks to whom, which the agents' root-only sockets keep from
// other users, so the ui keeps it too. Only GET; only Host headers that name the ui's own
// address (a web page elsewhere cannot read it through DNS rebinding); a token made for each
// run, printed in the URL as Jupyter does, on every API route (other local users and other
// origins get 403). Each live client has a bounded backlog (behind: its events are dropped and
// counted, it is told how many), the clients are capped, and doctor runs one at a time with a
// deadline, off the event loop.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FlowEvent } from "../agent/flow-types.ts";
import { follow, get, podNames } from "../observe/client.ts";
import { named } from "../observe/format.ts";
import type { AgentEndpoint, ClusterSource } from "../observe/source.ts";
import { PAGE } from "./page.ts";

export interface UiOptions {
  port: number;
  host: string;
  /** A `gauze lab bench --plot` chart to show next to the live view. */
  benchSvg?: string;
}

interface EdgeStat { a: string; b: string; packets: number; innerBytes: number; outerBytes: number; drops: number }

/** The cluster as the page draws it. */
function pageState(source: ClusterSource) {
  const v = source.view();
  return {
    lab: v.name, backend: v.backend, podCidr: v.podCidr, nodes: v.nodes,
    pods: v.pods.map((p) => ({ name: p.name, node: p.node, ip: p.ip ?? null, phase: p.phase })),
    // Every pair of nodes has a path: a tunnel (vxlan, wireguard) or a route (host-gw, macvlan).
    edges: v.nodes.flatMap((x, i) => v.nodes.slice(i + 1).map((y) => ({ a: x.name, b: y.name, kind: v.backend }))),
  };
}

export interface Ui { server: Server; url: string; token: string; close(): void }

/** Live pages one ui serves at once, and the bytes one may fall behind before its events are dropped. */
export const MAX_CLIENTS = 32;
const MAX_BACKLOG = 1 << 20;

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/** Host header values that name this ui: its loopback names (or the address it was told to listen on) with its port. */
function allowedHosts(host: string, port: number): Set<string> {
  const names = LOOPBACK.has(host) || host === "0.0.0.0" || host === "::" ? [...LOOPBACK] : [host];
  if (host === "0.0.0.0" || host === "::") names.push(host);
  return new Set(names.map((n) => `${n.includes(":") ? `[${n}]` : n}:${port}`));
}

export async function serveUi(source: ClusterSource, o: UiOptions, log: (line: string) => void): Promise<Ui> {
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`--port ${o.port}: give a port from 1 to 65535`);
  const bench = o.benchSvg ? readFileSync(o.benchSvg, "utf8") : undefined;
  if (bench !== undefined && !bench.trimStart().startsWith("<svg")) throw new Error(`--bench ${o.benchSvg} is not an SVG (make one with gauze lab bench --plot bench.svg)`);
  const srcs: AgentEndpoint[] = source.agents();
  const token = randomBytes(24).toString("hex");
  const hosts = allowedHosts(o.host, o.port);
  /** Each live page, and how many events it missed while it was behind. */
  const clients = new Map<ServerResponse, { lost: number }>();
  let pods = await podNames(srcs);
  const edges = new Map<string, EdgeStat>();
  const nodeOfIp = () => {
    const v = source.view();
    return new Map<string, string>([...v.nodes.map((n) => [n.ip, n.name] as [string, string]), ...v.pods.filter((p) => p.ip).map((p) => [p.ip!, p.node] as [string, string])]);
  };
  let ipNode = nodeOfIp();
  const send = (event: string, data: unknown) => {
    if (clients.size === 0) return;
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const [c, st] of clients) {
      if (c.writableLength > MAX_BACKLOG) { st.lost++; continue; } // a page that does not read
      if (st.lost) { c.write(`event: lost\ndata: ${JSON.stringify({ node: "this page", lost: st.lost })}\n\n`); st.lost = 0; }
      c.write(text);
    }
  };
  // One stream per node, for as long as the UI runs; a node whose agent goes away is shown so
  // and followed again a second later.
  const streams: { stop: () => void }[] = [];
  let stopping = false;
  const followNode = (src: AgentEndpoint) => {
    const f = follow(src, "/v1/flows?last=0&follow=1", (i) => {
      if ("event" in i) {
        const e = named(i.event, pods);
        send("flow", e);
        countEdge(e);
      } else if ("lost" in i) send("lost", { node: i.node, lost: i.lost });
      else send("node-down", { node: i.node, why: i.ended });
    });
    streams.push(f);
    void f.done.then(() => { if (!stopping) setTimeout(() => followNode(src), 1000); });
  };
  const countEdge = (e: FlowEvent) => {
    // The wire: a flow leaving its node for another, counted once (where it leaves).
    if (e.observationPoint !== "to-network" && !(e.verdict === "dropped")) return;
    const peer = e.tunnel ? ipNode.get(e.tunnel.outer.destination) : ipNode.get(e.destination.ip);
    const from = e.verdict === "dropped" ? ipNode.get(e.source.ip) : e.node;
    const to = e.verdict === "dropped" ? ipNode.get(e.destination.ip) : peer;
    if (!from || !to || from === to) return;
    const [a, b] = [from, to].sort() as [string, string];
    const k = `${a}|${b}`;
    const st = edges.get(k) ?? { a, b, packets: 0, innerBytes: 0, outerBytes: 0, drops: 0 };
    if (e.verdict === "dropped") st.drops += e.packets;
    else {
      st.packets += e.packets;
      // Bytes on the wire (the frame as sent) and what the pods sent inside it.
      st.outerBytes += e.bytes;
      st.innerBytes += e.bytes - e.packets * (e.tunnel?.overheadBytes ?? 0);
    }
    edges.set(k, st);
  };
  for (const s of srcs) followNode(s);
  const timers = [
    setInterval(() => {
      send("edges", [...edges.values()]);
      edges.clear();
    }, 1000),
    setInterval(() => {
      try {
        ipNode = nodeOfIp();
        send("state", pageState(source));
      } catch (e) {
        send("error", { message: (e as Error).message });
      }
      void podNames(srcs).then((p) => { pods = p; });
    }, 2000),
  ];

  const tokenOk = (given: string | null) => !!given && given.length === token.length && timingSafeEqual(Buffer.from(given), Buffer.from(token));
  let doctorBusy = false;
  const server = createServer({ maxHeaderSize: 8192, headersTimeout: 10_000, requestTimeout: 0 }, async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://ui");
    const refuse = (code: number, why: string) => void res.writeHead(code, { "content-type": "text/plain", ...(code === 405 ? { allow: "GET" } : {}) }).end(`${why}\n`);
    if (req.method !== "GET") return refuse(405, "GET only");
    if (!hosts.has(String(req.headers.host ?? ""))) return refuse(403, `Host ${JSON.stringify(String(req.headers.host ?? ""))} is not this ui's address: open the URL gauze ui printed`);
    // The page itself holds nothing; everything else needs the run's token.
    if (url.pathname !== "/" && !tokenOk(url.searchParams.get("token"))) return refuse(403, "no valid token: open the URL gauze ui printed (it carries this run's token)");
    try {
      if (url.pathname === "/") return void res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "x-frame-options": "DENY", "referrer-policy": "no-referrer" }).end(PAGE);
      if (url.pathname === "/api/state") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(pageState(source)));
      if (url.pathname === "/bench.svg") {
        if (bench === undefined) return void res.writeHead(404, { "content-type": "text/plain" }).end("no bench chart: gauze ui --bench bench.svg\n");
        return void res.writeHead(200, { "content-type": "image/svg+xml" }).end(bench);
      }
      if (url.pathname === "/api/events") {
        if (clients.size >= MAX_CLIENTS) return refuse(503, `too many pages open on this ui (${MAX_CLIENTS}): close one`);
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
        res.write(`event: state\ndata: ${JSON.stringify({ ...pageState(source), bench: bench !== undefined })}\n\n`);
        clients.set(res, { lost: 0 });
        req.on("close", () => clients.delete(res));
        return;
      }
      if (url.pathname === "/api/packets") {
        const node = url.searchParams.get("node") ?? "";
        const src = srcs.find((s) => s.node === node);
        if (!src) return void res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: `no node ${node}` }));
        const q = ["src", "dst", "proto", "point", "srcPort", "dstPort"].filter((k) => url.searchParams.get(k)).map((k) => `${k}=${encodeURIComponent(url.searchParams.get(k)!)}`).join("&");
        return void res.writeHead(200, { "content-type": "application/json" }).end(await get(src, `/v1/packets?${q}&last=3`));
      }
      if (url.pathname === "/api/doctor") {
        const node = url.searchParams.get("node") ?? "";
        if (!srcs.some((s) => s.node === node)) return void res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: `no node ${node}` }));
        // One doctor at a time (each runs every check on a node), off the event loop, with a deadline.
        if (doctorBusy) return void res.writeHead(429, { "content-type": "application/json", "retry-after": "2" }).end(JSON.stringify({ error: "doctor is running for another request: try again in a moment" }));
        doctorBusy = true;
        try {
          return void res.writeHead(200, { "content-type": "application/json" }).end(await source.doctorJson(node, 20_000));
        } finally {
          doctorBusy = false;
        }
      }
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    } catch (e) {
      res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ error: (e as Error).message }));
    }
  });
  const close = () => {
    stopping = true;
    for (const t of timers) clearInterval(t);
    for (const s of streams) s.stop();
    for (const c of clients.keys()) c.end();
    server.close();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(o.port, o.host, () => resolve());
    });
  } catch (e) {
    close(); // the agents' streams and the timers would keep the process alive
    throw new Error(`cannot listen on ${o.host}:${o.port}: ${(e as Error).message}${(e as NodeJS.ErrnoException).code === "EADDRINUSE" ? " (another process has it: pick another --port)" : ""}`);
  }
  const shown = o.host.includes(":") ? `[${o.host}]` : o.host;
  const url = `http://${shown}:${o.port}/?token=${token}`;
  if (!LOOPBACK.has(o.host)) log(`warning: gauze ui listens on ${o.host}, not loopback: anyone who can reach it and has the URL's token sees every flow`);
  log(`gauze ui for ${source.label}: ${url}`);
  return { server, url, token, close };
}
