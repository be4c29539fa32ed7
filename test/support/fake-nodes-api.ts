// A stand-in API server for Nodes: list (with resourceVersion), watch (a stream of JSON lines),
// get, and PATCH nodes/<name>/status (applied, recorded, and sent to watchers as MODIFIED). It
// starts from stored objects (test/fixtures/kube/nodes-cluster.json) and can answer a watch with
// 410 Gone, drop connections, or refuse a patch with 403, as real API servers do.
import { createServer, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES } from "./fake-apiserver.ts";

// Raw API JSON as the fixtures hold it: the fake only reads the few fields it serves.
type Obj = Record<string, any>;

export interface FakeNodesApi {
  kubeconfig: string;
  requests: string[];
  patches: { name: string; contentType: string; body: Obj }[];
  nodes: Map<string, Obj>;
  /** Ends every open watch with a 410 Gone ERROR event (history compacted). */
  gone(): void;
  /** Cuts every open connection mid-stream. */
  drop(): void;
  forbidPatches: boolean;
  /** Creates or changes a Node as the controller manager or an admin would (watchers get ADDED or MODIFIED). */
  putNode(name: string, spec: { podCIDR?: string; annotations?: Record<string, string> }): void;
  close(): void;
}

/** `empty`: no Nodes at first (a contract test adds its own); otherwise the stored cluster's. */
export async function startFakeNodesApi(dir: string, o: { empty?: boolean } = {}): Promise<FakeNodesApi> {
  const list = JSON.parse(readFileSync(join(FIXTURES, "nodes-cluster.json"), "utf8")) as { items: Obj[] };
  const nodes = new Map<string, Obj>(o.empty ? [] : list.items.map((n) => [n.metadata.name as string, n]));
  let rv = 1001;
  const watchers = new Set<ServerResponse>();
  // Every event since the start, so that a watch resuming from a resourceVersion gets what it
  // missed while disconnected, as from a real API server.
  const history: { rv: number; line: string }[] = [];
  const emit = (type: "ADDED" | "MODIFIED", node: Obj) => {
    node.metadata.resourceVersion = String(++rv);
    const line = JSON.stringify({ type, object: node }) + "\n";
    history.push({ rv, line });
    for (const w of watchers) w.write(line);
  };
  const sockets = new Set<Socket>();
  const api: FakeNodesApi = {
    kubeconfig: "", requests: [], patches: [], nodes, forbidPatches: false,
    gone() {
      for (const w of watchers) w.end(readFileSync(join(FIXTURES, "watch-410.json"), "utf8") + "\n");
      watchers.clear();
    },
    drop() {
      for (const s of sockets) s.destroy();
      watchers.clear();
    },
    putNode(name, spec) {
      const old = nodes.get(name);
      const node: Obj = old ?? { kind: "Node", apiVersion: "v1", metadata: { name, annotations: {} }, spec: {}, status: { conditions: [] } };
      if (spec.podCIDR !== undefined) node.spec = { ...node.spec, podCIDR: spec.podCIDR, podCIDRs: [spec.podCIDR] };
      Object.assign(node.metadata.annotations, spec.annotations ?? {});
      nodes.set(name, node);
      emit(old ? "MODIFIED" : "ADDED", node);
    },
    close() { this.drop(); server.close(); },
  };
  const json = (res: ServerResponse, code: number, body: unknown) => { res.writeHead(code, { "content-type": "application/json" }); res.end(JSON.stringify(body)); };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    api.requests.push(`${req.method} ${url.pathname}${url.search}`);
    let body = "";
    req.on("data", (d: Buffer) => { body += d.toString(); });
    req.on("end", () => {
      if (req.method === "GET" && url.pathname === "/api/v1/nodes") {
        if (url.searchParams.get("watch") === "true") {
          res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
          const from = Number(url.searchParams.get("resourceVersion") ?? rv);
          for (const h of history) if (h.rv > from) res.write(h.line);
          watchers.add(res);
          res.on("close", () => watchers.delete(res));
          return;
        }
        return json(res, 200, { kind: "NodeList", apiVersion: "v1", metadata: { resourceVersion: String(rv) }, items: [...nodes.values()] });
      }
      const one = /^\/api\/v1\/nodes\/([^/]+)(\/status)?$/.exec(url.pathname);
      const node = one ? nodes.get(one[1]!) : undefined;
      if (one && !node) return json(res, 404, { kind: "Status", apiVersion: "v1", status: "Failure", message: `nodes "${one[1]}" not found`, reason: "NotFound", code: 404 });
      if (req.method === "GET" && one && !one[2]) return json(res, 200, node);
      if (req.method === "PATCH" && one?.[2] && node) {
        if (api.forbidPatches) return json(res, 403, JSON.parse(readFileSync(join(FIXTURES, "status-forbidden.json"), "utf8")));
        const patch = JSON.parse(body) as Obj;
        api.patches.push({ name: one[1]!, contentType: String(req.headers["content-type"]), body: patch });
        const ann = (node.metadata.annotations ??= {}) as Obj;
        for (const [k, v] of Object.entries((patch.metadata?.annotations ?? {}) as Obj)) { if (v === null) delete ann[k]; else ann[k] = v; }
        for (const c of (patch.status?.conditions ?? []) as Obj[]) {
          // strategic merge: conditions merge by type
          const cs = (node.status.conditions ??= []) as Obj[];
          const i = cs.findIndex((x) => x.type === c.type);
          if (i >= 0) cs[i] = c; else cs.push(c);
        }
        emit("MODIFIED", node);
        return json(res, 200, node);
      }
      json(res, 404, { kind: "Status", apiVersion: "v1", status: "Failure", message: "not found", reason: "NotFound", code: 404 });
    });
  });
  server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  api.kubeconfig = join(dir, "kubeconfig-nodes");
  writeFileSync(api.kubeconfig, ["apiVersion: v1", "kind: Config", "clusters:", "- name: kind", "  cluster:", `    server: ${url}`, "    insecure-skip-tls-verify: true",
    "users:", "- name: gauze", "  user:", "    token: not-a-secret", "contexts:", "- name: kind", "  context:", "    cluster: kind", "    user: gauze", "current-context: kind", ""].join("\n"));
  return api;
}
