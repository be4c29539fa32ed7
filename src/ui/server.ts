// `gauze ui`: one page, served with every asset by gauze itself (no internet), over the lab's
// agents: nodes (Ready, subnet, VTEP), their pods, the tunnels between nodes; live flows on the
// edges with packets/s and bytes/s, inner against outer bytes and the overhead; dropped flows
// in red with the kernel's reason; a flow's last packets dissected layer by layer; doctor per
// node. Live updates through server-sent events: flows as they come, edge rates every second,
// the lab's state every two.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import type { FlowEvent } from "../agent/flows.ts";
import { runSync } from "../kernel/spawn.ts";
import { agentStatus, nodeView } from "../lab/lab.ts";
import { gauzeExecutable } from "../lab/processes.ts";
import { loadLab, pickLab } from "../lab/state.ts";
import { type NodeSource, follow, get, podNames, sources } from "../observe/client.ts";
import { named } from "../observe/format.ts";
import { PAGE } from "./page.ts";

export interface UiOptions {
  name?: string;
  port: number;
  host: string;
  /** A `gauze lab bench --plot` chart to show next to the live view. */
  benchSvg?: string;
}

interface EdgeStat { a: string; b: string; packets: number; innerBytes: number; outerBytes: number; drops: number }

/** The lab as the page draws it. */
function labState(lab: string) {
  const s = loadLab(lab);
  const nodes = s.nodes.map((n) => {
    const v = nodeView(s, n);
    const a = agentStatus(n);
    return { name: n.name, ip: n.ip, ready: v.ready, reason: v.reason ?? v.agent?.reason ?? "", subnet: v.subnet ?? null, vtepMac: v.vtepMac ?? null, agentUp: !!v.agent?.running, podMtu: a?.podMtu ?? null, overhead: a?.overhead ?? null };
  });
  return {
    lab: s.name, backend: s.backend, podCidr: s.podCidr, nodes,
    pods: s.pods.map((p) => ({ name: p.name, node: p.node, ip: p.ip ?? null, phase: p.phase })),
    // Every pair of nodes has a path: a tunnel (vxlan, wireguard) or a route (host-gw, macvlan).
    edges: nodes.flatMap((x, i) => nodes.slice(i + 1).map((y) => ({ a: x.name, b: y.name, kind: s.backend }))),
  };
}

export interface Ui { server: Server; close(): void }

export async function serveUi(o: UiOptions, log: (line: string) => void): Promise<Ui> {
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`--port ${o.port}: give a port from 1 to 65535`);
  const lab = pickLab(o.name);
  labState(lab); // a clear error now for a lab that does not exist
  const bench = o.benchSvg ? readFileSync(o.benchSvg, "utf8") : undefined;
  if (bench !== undefined && !bench.trimStart().startsWith("<svg")) throw new Error(`--bench ${o.benchSvg} is not an SVG (make one with gauze lab bench --plot bench.svg)`);
  const srcs: NodeSource[] = sources({ name: lab });
  const clients = new Set<ServerResponse>();
  let pods = await podNames(srcs);
  const edges = new Map<string, EdgeStat>();
  const nodeOfIp = () => {
    const s = loadLab(lab);
    return new Map<string, string>([...s.nodes.map((n) => [n.ip, n.name] as [string, string]), ...s.pods.filter((p) => p.ip).map((p) => [p.ip!, p.node] as [string, string])]);
  };
  let ipNode = nodeOfIp();
  const send = (event: string, data: unknown) => {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) c.write(text);
  };
  // One stream per node, for as long as the UI runs; a node whose agent goes away is shown so
  // and followed again a second later.
  const streams: { stop: () => void }[] = [];
  let stopping = false;
  const followNode = (src: NodeSource) => {
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
        send("state", labState(lab));
      } catch (e) {
        send("error", { message: (e as Error).message });
      }
      void podNames(srcs).then((p) => { pods = p; });
    }, 2000),
  ];

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://ui");
    try {
      if (url.pathname === "/") return void res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(PAGE);
      if (url.pathname === "/api/state") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(labState(lab)));
      if (url.pathname === "/bench.svg") {
        if (bench === undefined) return void res.writeHead(404, { "content-type": "text/plain" }).end("no bench chart: gauze ui --bench bench.svg\n");
        return void res.writeHead(200, { "content-type": "image/svg+xml" }).end(bench);
      }
      if (url.pathname === "/api/events") {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
        res.write(`event: state\ndata: ${JSON.stringify({ ...labState(lab), bench: bench !== undefined })}\n\n`);
        clients.add(res);
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
        const r = runSync([gauzeExecutable(), "doctor", "--node", node, "--name", lab, "--json"]);
        return void res.writeHead(200, { "content-type": "application/json" }).end(r.stdout || JSON.stringify({ error: r.stderr }));
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
    for (const c of clients) c.end();
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
  log(`gauze ui for lab ${lab}: http://${o.host}:${o.port}/`);
  return { server, close };
}
