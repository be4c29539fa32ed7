// The lab's Kubernetes API: the slice of it that gauze's kube store uses, served for real over
// HTTPS so that the manifest's agent runs its in-cluster client unchanged. Nodes only: list
// (with resourceVersion), watch (JSON lines, resumed from a resourceVersion with what was missed,
// 410 Gone when that is too old), get, and PATCH nodes/<name>/status as a strategic merge
// (annotations by key, null deletes; conditions by type). Requests are authorized against the
// manifest's own ClusterRoles and bindings, so a rule the manifest forgot is a 403 in the lab as
// it would be on a cluster. The lab itself plays the controller manager and the kubelets: it
// registers Nodes with a podCIDR through an admin socket.
//
// The same class backs the tests' stand-in server (test/support/fake-nodes-api.ts).
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import type { Socket } from "node:net";

export interface NodeCondition { type: string; status: string; reason?: string; message?: string; lastHeartbeatTime?: string; lastTransitionTime?: string }
export interface NodeObject {
  kind: "Node";
  apiVersion: "v1";
  metadata: { name: string; uid?: string; resourceVersion?: string; creationTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { podCIDR?: string; podCIDRs?: string[]; providerID?: string };
  status: { conditions?: NodeCondition[]; addresses?: { type: string; address: string }[] };
}

/** A rule as a ClusterRole writes it. */
export interface PolicyRule { apiGroups?: string[]; resources?: string[]; verbs?: string[] }

/** Who a bearer token is, and what that subject may do. */
export interface Grant { token: string; user: string; rules: PolicyRule[] }

/** A Kubernetes Status object, the body of every error. */
function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

function allows(rules: PolicyRule[], verb: string, resource: string): boolean {
  const has = (xs: string[] | undefined, x: string) => !!xs && (xs.includes("*") || xs.includes(x));
  return rules.some((r) => has(r.apiGroups, "") && has(r.resources, resource) && has(r.verbs, verb));
}

/** Events older than this many are forgotten: a watch resuming from before them gets 410 Gone. */
const HISTORY = 10_000;
/** Requests and patches remembered (for tests that compare them with RBAC): the last this many. */
const LOG_KEEP = 1000;
/** The largest request body read. */
export const MAX_BODY = 1 << 20;

export class NodesApi {
  readonly nodes = new Map<string, NodeObject>();
  /** "METHOD /path?query" of the last LOG_KEEP requests, in order (tests compare them with RBAC). */
  readonly requests: string[] = [];
  readonly patches: { name: string; contentType: string; body: Record<string, unknown> }[] = [];
  /** Bearer tokens and what each may do; undefined: every request is allowed (tests). */
  grants?: Grant[];
  /** Refuse every patch with 403, as a missing RBAC rule would (tests). */
  forbidPatches = false;
  /** Called after every change (the lab persists the Nodes). */
  onChange?: () => void;
  private rv: number;
  private history: { rv: number; line: string }[] = [];
  private readonly watchers = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private server?: Server;

  constructor(seed: NodeObject[] = [], resourceVersion = 1001) {
    for (const n of seed) this.nodes.set(n.metadata.name, n);
    this.rv = resourceVersion;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  private emit(type: "ADDED" | "MODIFIED" | "DELETED", node: NodeObject): void {
    if (type !== "DELETED") node.metadata.resourceVersion = String(++this.rv);
    else this.rv++;
    const line = JSON.stringify({ type, object: node }) + "\n";
    this.history.push({ rv: this.rv, line });
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    for (const w of this.watchers) w.write(line);
    this.onChange?.();
  }

  /** Creates or changes a Node, as a kubelet registering or the controller manager assigning a podCIDR does. */
  putNode(name: string, spec: { podCIDR?: string; podCIDR6?: string; annotations?: Record<string, string>; internalIP?: string }): NodeObject {
    const old = this.nodes.get(name);
    const node: NodeObject = old ?? { kind: "Node", apiVersion: "v1", metadata: { name, uid: `lab-${name}`, creationTimestamp: new Date().toISOString(), labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" }, annotations: {} }, spec: {}, status: { conditions: [] } };
    // Dual-stack: podCIDRs holds one per family, podCIDR the first (as the controller manager writes them).
    if (spec.podCIDR !== undefined) node.spec = { ...node.spec, podCIDR: spec.podCIDR, podCIDRs: [spec.podCIDR, ...(spec.podCIDR6 ? [spec.podCIDR6] : [])] };
    node.metadata.annotations = { ...node.metadata.annotations, ...(spec.annotations ?? {}) };
    if (spec.internalIP) node.status.addresses = [{ type: "InternalIP", address: spec.internalIP }, { type: "Hostname", address: name }];
    this.nodes.set(name, node);
    this.emit(old ? "MODIFIED" : "ADDED", node);
    return node;
  }

  deleteNode(name: string): void {
    const n = this.nodes.get(name);
    if (!n) return;
    this.nodes.delete(name);
    this.emit("DELETED", n);
  }

  /** Ends every open watch with 410 Gone (as after etcd compaction): clients list again. */
  gone(): void {
    const line = JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${this.rv - 1} (${this.rv})`) }) + "\n";
    for (const w of this.watchers) w.end(line);
    this.watchers.clear();
  }

  /** Cuts every connection mid-stream (an API server restart, a load balancer timeout). */
  drop(): void {
    for (const s of this.sockets) s.destroy();
    this.watchers.clear();
  }

  private authorize(req: IncomingMessage, verb: string, resource: string, name?: string): Record<string, unknown> | undefined {
    if (!this.grants) return undefined;
    const auth = req.headers.authorization ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7).trim() : "";
    const g = this.grants.find((x) => x.token === token);
    if (!g) return status(401, "Unauthorized", "Unauthorized");
    if (allows(g.rules, verb, resource)) return undefined;
    const what = name ? `${resource.split("/")[0]} "${name}"` : resource;
    return status(403, "Forbidden", `${what} is forbidden: User "${g.user}" cannot ${verb} resource "${resource}" in API group "" at the cluster scope`);
  }

  /** Keeps the last LOG_KEEP entries of a log (a flood of requests costs no memory). */
  private static keep<T>(log: T[], entry: T): void {
    log.push(entry);
    if (log.length > LOG_KEEP) log.splice(0, log.length - LOG_KEEP);
  }

  /**
   * A request's body, at most MAX_BODY bytes (the real API server's limit is 3 MiB; a Node patch
   * is a few hundred bytes). Read only once the request is authorized: an unauthenticated client
   * cannot make the server hold anything.
   */
  private body(req: IncomingMessage, res: ServerResponse, done: (text: string) => void): void {
    const json = (code: number, body: unknown) => { res.writeHead(code, { "content-type": "application/json", connection: "close" }); res.end(JSON.stringify(body)); };
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY) { json(413, status(413, "RequestEntityTooLarge", `the request body is larger than ${MAX_BODY} bytes`)); req.destroy(); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) { json(413, status(413, "RequestEntityTooLarge", `the request body is larger than ${MAX_BODY} bytes`)); req.destroy(); return; }
      chunks.push(d);
    });
    req.on("end", () => { if (size <= MAX_BODY) done(Buffer.concat(chunks).toString("utf8")); });
  }

  /** The request handler (HTTP or HTTPS server). */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://x");
    NodesApi.keep(this.requests, `${req.method} ${url.pathname}${url.search}`);
    const json = (code: number, body: unknown) => { res.writeHead(code, { "content-type": "application/json" }); res.end(JSON.stringify(body)); };
    // Refused from the headers alone; the connection closes, so a body the client goes on sending is never read.
    const refuse = (denied: Record<string, unknown>) => {
      res.writeHead(denied.code as number, { "content-type": "application/json", connection: "close" });
      res.end(JSON.stringify(denied), () => req.socket.destroy());
    };
    if (req.method === "GET" && url.pathname === "/api/v1/nodes") {
      const watch = url.searchParams.get("watch") === "true";
      const denied = this.authorize(req, watch ? "watch" : "list", "nodes");
      if (denied) return refuse(denied);
      req.resume();
      if (!watch) return json(200, { kind: "NodeList", apiVersion: "v1", metadata: { resourceVersion: String(this.rv) }, items: [...this.nodes.values()] });
      const from = Number(url.searchParams.get("resourceVersion") ?? this.rv);
      res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
      if (this.history.length && from < this.history[0]!.rv - 1) {
        res.end(JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${from} (${this.history[0]!.rv})`) }) + "\n");
        return;
      }
      for (const h of this.history) if (h.rv > from) res.write(h.line);
      this.watchers.add(res);
      res.on("close", () => this.watchers.delete(res));
      return;
    }
    const one = /^\/api\/v1\/nodes\/([^/]+)(\/status)?$/.exec(url.pathname);
    if (!one) {
      const denied = this.authorize(req, "get", "nodes");
      if (denied?.code === 401) return refuse(denied);
      req.resume();
      return json(404, status(404, "NotFound", "the server could not find the requested resource"));
    }
    const name = decodeURIComponent(one[1]!);
    const verb = req.method === "PATCH" ? "patch" : req.method === "GET" ? "get" : (req.method ?? "").toLowerCase();
    const denied = this.authorize(req, verb, one[2] ? "nodes/status" : "nodes", name);
    if (denied) return refuse(denied);
    const node = this.nodes.get(name);
    if (!node) { req.resume(); return json(404, status(404, "NotFound", `nodes "${name}" not found`)); }
    if (req.method === "GET") { req.resume(); return json(200, node); }
    if (req.method === "PATCH" && one[2]) {
      if (this.forbidPatches) return refuse(status(403, "Forbidden", `nodes "${name}" is forbidden: User "system:serviceaccount:kube-system:gauze" cannot patch resource "nodes/status" in API group "" at the cluster scope`));
      return this.body(req, res, (text) => {
        let patch: { metadata?: { annotations?: Record<string, string | null> }; status?: { conditions?: NodeCondition[] } };
        try {
          patch = JSON.parse(text) as typeof patch;
        } catch {
          return json(400, status(400, "BadRequest", "the body of the request was not JSON"));
        }
        NodesApi.keep(this.patches, { name, contentType: String(req.headers["content-type"]), body: patch as Record<string, unknown> });
        const ann = (node.metadata.annotations ??= {});
        for (const [k, v] of Object.entries(patch.metadata?.annotations ?? {})) { if (v === null) delete ann[k]; else ann[k] = v; }
        const cs = (node.status.conditions ??= []);
        for (const c of patch.status?.conditions ?? []) {
          const i = cs.findIndex((x) => x.type === c.type);
          if (i >= 0) cs[i] = c; else cs.push(c);
        }
        this.emit("MODIFIED", node);
        json(200, node);
      });
    }
    req.resume();
    json(405, status(405, "MethodNotAllowed", `${req.method} is not supported here`));
  };

  /** Serves on host:port (HTTPS with `tls`), or on a free loopback port; resolves to the URL. */
  async listen(o: { host?: string; port?: number; tls?: { cert: Buffer; key: Buffer } } = {}): Promise<string> {
    const server = o.tls ? createHttps({ cert: o.tls.cert, key: o.tls.key }, this.handle) : createHttp(this.handle);
    server.on("connection", (s: Socket) => { this.sockets.add(s); s.on("close", () => this.sockets.delete(s)); });
    this.server = server;
    const host = o.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(o.port ?? 0, host, () => resolve()); });
    return `${o.tls ? "https" : "http"}://${host}:${(server.address() as { port: number }).port}`;
  }

  close(): void {
    this.drop();
    this.server?.close();
  }
}
