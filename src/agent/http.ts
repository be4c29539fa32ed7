// /healthz (the process runs), /readyz (device, subnet file, conflist and rules in place; 503 with
// the reason otherwise) and /metrics, on a node-local port.
import { createServer, type Server } from "node:http";
import type { AgentMetrics } from "./metrics.ts";

export interface Readiness {
  ready: boolean;
  reason: string;
}

export function serveHealth(addr: string, metrics: AgentMetrics, readiness: () => Readiness): Promise<Server> {
  const [host, portText] = addr.includes(":") ? [addr.slice(0, addr.lastIndexOf(":")), addr.slice(addr.lastIndexOf(":") + 1)] : ["0.0.0.0", addr];
  const server = createServer((req, res) => {
    const url = req.url ?? "/";
    if (url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (url === "/readyz") {
      const r = readiness();
      res.writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" }).end(r.ready ? "ready\n" : `not ready: ${r.reason}\n`);
    } else if (url === "/metrics") {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("try /healthz, /readyz or /metrics\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", (e) => reject(new Error(`cannot listen on ${addr}: ${e.message}`)));
    server.listen(Number(portText), host || "0.0.0.0", () => resolve(server));
  });
}
