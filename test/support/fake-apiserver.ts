// A stand-in API server that answers with stored responses (test/fixtures/kube), so the doctor's
// Kubernetes checks run through the real client library over real HTTP. Unknown paths get the
// API's 404 Status object.
import { createServer, type Server } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const FIXTURES = join(import.meta.dirname, "..", "fixtures", "kube");

export interface FakeApi {
  url: string;
  kubeconfig: string;
  requests: string[];
  close(): void;
}

export async function startFakeApi(scenario: "broken" | "healthy" | "empty", dir: string): Promise<FakeApi> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const send = (status: number, body: string, type = "application/json") => { res.writeHead(status, { "content-type": type }); res.end(body); };
    try {
      if (url.pathname === "/api/v1/pods") return send(200, readFileSync(join(FIXTURES, `pods-${scenario}.json`), "utf8"));
      if (url.pathname === "/api/v1/nodes") return send(200, readFileSync(join(FIXTURES, `nodes-${scenario === "empty" ? "healthy" : scenario}.json`), "utf8"));
      const log = /^\/api\/v1\/namespaces\/[^/]+\/pods\/([^/]+)\/log$/.exec(url.pathname);
      if (log) return send(200, readFileSync(join(FIXTURES, `log-${log[1]}.txt`), "utf8"), "text/plain");
    } catch {
      // fall through to 404
    }
    send(404, JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `the server could not find the requested resource`, reason: "NotFound", code: 404 }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const kubeconfig = join(dir, `kubeconfig-${scenario}`);
  writeFileSync(kubeconfig, [
    "apiVersion: v1", "kind: Config", "clusters:", "- name: lab", "  cluster:", `    server: ${url}`, "    insecure-skip-tls-verify: true",
    "users:", "- name: admin", "  user:", "    token: not-a-secret", "contexts:", "- name: lab", "  context:", "    cluster: lab", "    user: admin", "current-context: lab", "",
  ].join("\n"));
  return { url, kubeconfig, requests, close: () => server.close() };
}
