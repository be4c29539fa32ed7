// /healthz (the process runs), /readyz (device, subnet file, conflist and rules in place; 503 with
// the reason otherwise, endpoints left out) and /metrics, on 127.0.0.1 unless told otherwise (the
// DaemonSet's probes ask there, as other CNIs' agents are asked).
import { createServer, type Server } from "node:http";
import type { AgentMetrics } from "./metrics.ts";

export interface Readiness {
  ready: boolean;
  reason: string;
  /** Ready, but a feature is off: what, why and the fix (said in /readyz's answer). */
  degraded?: string;
}

/** A reason as /readyz tells it to whoever asks: endpoints and anything that looks like a credential left out. */
export function publicReason(reason: string): string {
  // URLs, and addresses with a port (a client library's "connect ECONNREFUSED 10.0.0.1:2379"); a
  // subnet (10.244.0.0/16) says nothing about where the registry is and stays.
  return reason.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s,;)]*[^\s,;):]/gi, "<endpoint>")
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}:\d+\b/g, "<endpoint>")
    .replace(/\b(password|token|secret)=\S+/gi, "$1=<hidden>");
}

export function serveHealth(addr: string, metrics: AgentMetrics, readiness: () => Readiness): Promise<Server> {
  const [host, portText] = addr.includes(":") ? [addr.slice(0, addr.lastIndexOf(":")), addr.slice(addr.lastIndexOf(":") + 1)] : ["127.0.0.1", addr];
  // Probes and Prometheus ask small questions: bounded headers, no bodies, short timeouts, so a
  // client holding a connection open or sending junk costs the agent nothing.
  const server = createServer({ maxHeaderSize: 8192, requestTimeout: 5000, headersTimeout: 5000, keepAliveTimeout: 5000 }, (req, res) => {
    const url = req.url ?? "/";
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain", allow: "GET, HEAD" }).end("GET only\n");
      return;
    }
    if (Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"]) {
      res.writeHead(413, { "content-type": "text/plain", connection: "close" }).end("no request bodies\n");
      req.destroy();
      return;
    }
    if (url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (url === "/readyz") {
      const r = readiness();
      res.writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" }).end(r.ready ? (r.degraded ? `ready (degraded: ${publicReason(r.degraded)})\n` : "ready\n") : `not ready: ${publicReason(r.reason)}\n`);
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
    server.listen(Number(portText), host || "127.0.0.1", () => resolve(server));
  });
}
