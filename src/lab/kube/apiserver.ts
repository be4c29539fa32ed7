// The lab's Kubernetes API: a small API server of gauze's own, served for real over HTTPS, that
// says what it is (/version: v1.30.0-gauze-lab) and serves only what it lists (resources.ts):
// core/v1 namespaces, nodes (+ nodes/status), pods (+ pods/status), serviceaccounts (read), and
// networking.k8s.io/v1 networkpolicies. Per resource: get, list (resourceVersion, labelSelector,
// fieldSelector), watch (JSON lines, resumed from a resourceVersion, 410 Gone when too old,
// bookmarks when asked), create, update (409 on a stale resourceVersion), patch (strategic merge,
// JSON merge, JSON patch) and delete, with one resourceVersion counter for the server (store.ts),
// discovery for kubectl, and Tables when kubectl asks for them (table.ts). Objects are stored as
// given once their apiVersion, kind and metadata have the right shape: a NetworkPolicy's spec is
// not validated (a real API server would), so that the agent meets invalid ones and must fail
// closed. Deleting a namespace deletes what is in it at once (no Terminating phase). Requests are
// authorized from their headers (rbac.ts) before any body is read; bodies stop at 1 MiB (413);
// the last 1000 requests are kept for tests. The lab plays the controller manager and the
// kubelets through the admin socket (cluster.ts), where requests are cluster-admin's.
// pods/exec (exec.ts) is the kubelet's: authorized here (create on pods/exec, before the
// upgrade), resolved and run by whoever sets `exec` (the lab: kubelet-api.ts, podman exec).
//
// The same class backs the tests' stand-in server (test/support/fake-nodes-api.ts) as NodesApi.
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import { randomBytes, randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type Execer, execRequest, pickProtocol, serveExec } from "./exec.ts";
import { isNamespaceName, isPodName } from "../../util/text.ts";
import { type Attributes, type Grant, type PolicyRule, type StatusObject, allows, forbidden, grantOf, qualifiedResource, status, unauthorized } from "./rbac.ts";
import { type ResourceType, RESOURCES, apiGroup, apiGroupList, apiResourceList, apiVersions, groupVersion, resourceAt, resourceOfKind, versionInfo } from "./resources.ts";
import { type Json, PatchError, deepEqual, isObj, jsonPatch, mergePatch, strategicMergePatch } from "./patch.ts";
import { SelectorError, fieldsMatch, labelsMatch, parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import { type IncludeObject, tableAsked, toTable } from "./table.ts";
import { type KubeObject, ObjectStore, type Watch } from "./store.ts";

export type { Grant, PolicyRule } from "./rbac.ts";
export type { KubeObject } from "./store.ts";

export interface NodeCondition { type: string; status: string; reason?: string; message?: string; lastHeartbeatTime?: string; lastTransitionTime?: string }
export type NodeObject = {
  kind: "Node";
  apiVersion: "v1";
  metadata: { name: string; uid?: string; resourceVersion?: string; creationTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { podCIDR?: string; podCIDRs?: string[]; providerID?: string; unschedulable?: boolean };
  status: { conditions?: NodeCondition[]; addresses?: { type: string; address: string }[]; nodeInfo?: Record<string, string> };
};

/** Requests and patches remembered (for tests that compare them with RBAC): the last this many. */
const LOG_KEEP = 1000;
/** The largest request body read. */
export const MAX_BODY = 1 << 20;
/** Answered to anyone, as the real server's system:public-info-viewer allows. */
const PUBLIC = new Set(["/healthz", "/livez", "/readyz", "/version"]);
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

type Subject = { user: string; rules: PolicyRule[] } | "anyone";
interface Target { rt: ResourceType; namespace?: string; name?: string; subresource?: string }

/** A request refused, with the Status to answer. */
class Refusal {
  constructor(readonly status: StatusObject) {}
}
const refusal = (s: StatusObject) => new Refusal(s);

/** Kubernetes' timestamps: RFC 3339 to the second. */
export const timestamp = (d = new Date()) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

function parsePath(path: string): Target | undefined {
  let seg: string[];
  try {
    seg = path.split("/").slice(1).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  let group: string, version: string | undefined, rest: string[];
  if (seg[0] === "api") [group, version, rest] = ["", seg[1], seg.slice(2)];
  else if (seg[0] === "apis") [group, version, rest] = [seg[1] ?? "", seg[2], seg.slice(3)];
  else return undefined;
  if (!version || !rest.length) return undefined;
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3 && rest[2] !== "status") {
    if (!resourceAt(group, version, rest[2]!)?.namespaced) return undefined;
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const rt = resourceAt(group, version, rest[0]!);
  if (!rt || rest.length > 3 || (rt.namespaced && !namespace && rest.length > 1)) return undefined;
  const [, name, subresource] = rest;
  if (subresource !== undefined && !((subresource === "status" && rt.status) || (subresource === "exec" && rt.resource === "pods"))) return undefined;
  return { rt, ...(namespace !== undefined ? { namespace } : {}), ...(name !== undefined ? { name } : {}), ...(subresource !== undefined ? { subresource } : {}) };
}

/** Whether an Accept header takes plain JSON (else only the aggregated discovery types, or protobuf). */
function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(",").some((part) => {
    const [media, ...params] = part.split(";").map((x) => x.trim());
    return (media === "application/json" && !params.some((p) => p.startsWith("as="))) || media === "*/*" || media === "application/*";
  });
}

const notFound = (t: Target, name: string) => status(404, "NotFound", `${qualifiedResource(t.rt.group, t.rt.resource)} ${JSON.stringify(name)} not found`, { name, group: t.rt.group, kind: t.rt.resource });

function invalid(t: Target, name: string, field: string, value: unknown, why: string): StatusObject {
  const msg = `${field}: Invalid value: ${JSON.stringify(value)}: ${why}`;
  return status(422, "Invalid", `${t.rt.kind}${t.rt.group ? `.${t.rt.group}` : ""} ${JSON.stringify(name)} is invalid: ${msg}`, { name, group: t.rt.group, kind: t.rt.kind, causes: [{ reason: "FieldValueInvalid", message: msg.slice(field.length + 2), field }] });
}

export class KubeApi {
  readonly store: ObjectStore;
  /** "METHOD /path?query" of the last LOG_KEEP requests, in order (tests compare them with RBAC). */
  readonly requests: string[] = [];
  readonly patches: { name: string; contentType: string; body: Record<string, unknown> }[] = [];
  /**
   * Requests so far by who ("lab": its own over the admin socket; "client": with a token), method
   * and resource (what the load of a client costs the API, e.g. observe --kubeconfig). Paths that
   * name no resource or discovery document count as "other": a client cannot grow the table.
   */
  readonly requestCounts = new Map<string, number>();
  /** Bearer tokens and what each may do; undefined: every request is allowed (tests). */
  grants?: Grant[];
  /** Refuse every patch with 403, as a missing RBAC rule would (tests). */
  forbidPatches = false;
  /** How often a watch that allows bookmarks gets one (it also gets one once it has caught up). */
  bookmarkMs = 60_000;
  /** What /api says clients reach the server at. */
  serverAddress = "172.18.0.1:6443";
  private readonly sockets = new Set<Socket>();
  private readonly servers: Server[] = [];
  private readonly streams = new Map<ServerResponse, () => void>();
  /** Runs pods/exec (the kubelet's part); unset: exec is answered 404 as for a pod without a kubelet. */
  exec?: Execer;

  constructor(seed: KubeObject[] = [], resourceVersion = 1001) {
    this.store = new ObjectStore(resourceVersion);
    for (const o of seed) {
      const rt = resourceOfKind(o.apiVersion, o.kind);
      if (rt) this.store.seed(rt.resource, o);
    }
  }

  get resourceVersion(): number {
    return this.store.rv;
  }

  get nodes(): Map<string, NodeObject> {
    return this.store.table("nodes") as unknown as Map<string, NodeObject>;
  }

  /** Called after every change (the lab persists what changed). */
  set onChange(fn: ((resource: string) => void) | undefined) {
    this.store.onChange = fn;
  }

  /** Creates or changes a Node, as a kubelet registering or the controller manager assigning a podCIDR does. */
  putNode(name: string, spec: { podCIDR?: string; podCIDR6?: string; annotations?: Record<string, string>; internalIP?: string; labels?: Record<string, string>; conditions?: NodeCondition[]; nodeInfo?: Record<string, string> }): NodeObject {
    const old = this.nodes.get(name);
    const node: NodeObject = old ? JSON.parse(JSON.stringify(old)) as NodeObject : { kind: "Node", apiVersion: "v1", metadata: { name, uid: `lab-${name}`, creationTimestamp: timestamp(), labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" }, annotations: {} }, spec: {}, status: { conditions: [] } };
    // Dual-stack: podCIDRs holds one per family, podCIDR the first (as the controller manager writes them).
    if (spec.podCIDR !== undefined) node.spec = { ...node.spec, podCIDR: spec.podCIDR, podCIDRs: [spec.podCIDR, ...(spec.podCIDR6 ? [spec.podCIDR6] : [])] };
    node.metadata.annotations = { ...node.metadata.annotations, ...(spec.annotations ?? {}) };
    if (spec.labels) node.metadata.labels = { ...node.metadata.labels, ...spec.labels };
    if (spec.internalIP) node.status.addresses = [{ type: "InternalIP", address: spec.internalIP }, { type: "Hostname", address: name }];
    if (spec.nodeInfo) node.status.nodeInfo = spec.nodeInfo;
    for (const c of spec.conditions ?? []) {
      const cs = (node.status.conditions ??= []);
      const i = cs.findIndex((x) => x.type === c.type);
      if (i >= 0) cs[i] = { ...c, lastTransitionTime: cs[i]!.status === c.status ? cs[i]!.lastTransitionTime ?? c.lastTransitionTime : c.lastTransitionTime }; else cs.push(c);
    }
    this.store.put("nodes", node as unknown as KubeObject);
    return node;
  }

  deleteNode(name: string): void {
    this.store.remove("nodes", undefined, name);
  }

  /** Ends every open watch with 410 Gone (as after etcd compaction): clients list again. */
  gone(): void {
    const rv = this.store.rv;
    const line = JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${rv - 1} (${rv})`) }) + "\n";
    for (const [res, stop] of [...this.streams]) { stop(); res.end(line); }
  }

  /** Cuts every connection mid-stream (an API server restart, a load balancer timeout). */
  drop(): void {
    for (const [, stop] of [...this.streams]) stop();
    for (const s of this.sockets) s.destroy();
  }

  /** Keeps the last LOG_KEEP entries of a log (a flood of requests costs no memory). */
  private static keep<T>(log: T[], entry: T): void {
    log.push(entry);
    if (log.length > LOG_KEEP) log.splice(0, log.length - LOG_KEEP);
  }

  /**
   * A request's body, at most MAX_BODY bytes (the real API server's limit is 3 MiB; the lab's
   * objects are a few KB). Read only once the request is authorized: an unauthenticated client
   * cannot make the server hold anything.
   */
  private body(req: IncomingMessage, res: ServerResponse, done: (text: string) => void): void {
    const tooLarge = () => {
      res.writeHead(413, { "content-type": "application/json", connection: "close" });
      res.end(JSON.stringify(status(413, "RequestEntityTooLarge", `the request body is larger than ${MAX_BODY} bytes`)));
      req.destroy();
    };
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) return tooLarge();
      chunks.push(d);
    });
    req.on("end", () => { if (size <= MAX_BODY) done(Buffer.concat(chunks).toString("utf8")); });
  }

  /** The request handler (HTTP or HTTPS server): bearer tokens and RBAC decide. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => this.serve(req, res, false);
  /** The admin socket's handler: the lab itself, cluster-admin without a token. */
  readonly handleTrusted = (req: IncomingMessage, res: ServerResponse): void => this.serve(req, res, true);

  private count(trusted: boolean, method: string, path: string): void {
    const t = parsePath(path);
    const what = t ? `${t.rt.resource}${t.subresource ? `/${t.subresource}` : ""}` : PUBLIC.has(path) || this.discovery(path) ? path : "other";
    const key = `${trusted ? "lab" : "client"} ${method} ${what}`;
    this.requestCounts.set(key, (this.requestCounts.get(key) ?? 0) + 1);
  }

  private serve(req: IncomingMessage, res: ServerResponse, trusted: boolean): void {
    const url = new URL(req.url ?? "/", "http://x");
    KubeApi.keep(this.requests, `${req.method} ${url.pathname}${url.search}`);
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
    this.count(trusted, req.method ?? "GET", path);
    const method = req.method ?? "GET";
    const send = (code: number, body: unknown) => { res.writeHead(code, { "content-type": "application/json" }); res.end(JSON.stringify(body)); };
    const reply = (code: number, body: unknown) => { req.resume(); send(code, body); };
    // Refused from the headers alone; the connection closes, so a body the client goes on sending is never read.
    const refuse = (denied: StatusObject) => {
      res.writeHead(denied.code, { "content-type": "application/json", connection: "close" });
      res.end(JSON.stringify(denied), () => req.socket.destroy());
    };
    if (method === "GET" && PUBLIC.has(path)) {
      req.resume();
      if (path === "/version") return send(200, versionInfo());
      res.writeHead(200, { "content-type": "text/plain" });
      return void res.end("ok");
    }
    let who: Subject = "anyone";
    if (!trusted && this.grants) {
      const g = grantOf(this.grants, req.headers.authorization);
      if (!g) return refuse(unauthorized());
      who = g;
    }
    const doc = this.discovery(path);
    if (doc) {
      if (method !== "GET") return reply(405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"));
      if ((path === "/api" || path === "/apis") && !acceptsJson(req.headers.accept)) return reply(406, status(406, "NotAcceptable", `only the following media types are accepted: application/json (the lab's API serves no aggregated discovery)`));
      return reply(doc.code, doc.body);
    }
    const t = parsePath(path);
    if (!t) return reply(404, status(404, "NotFound", "the server could not find the requested resource"));
    if (t.subresource === "exec") {
      req.resume();
      return void this.execCheck(t, url, method, who).then((r) => {
        if ("code" in r) return r.code === 403 ? refuse(r) : send(r.code, r);
        send(400, status(400, "BadRequest", "Upgrade request required"));
      });
    }
    const watch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
    const verb = method === "GET" ? (t.name ? "get" : watch ? "watch" : "list") : method === "POST" && !t.name ? "create" : method === "PUT" && t.name ? "update"
      : method === "PATCH" && t.name ? "patch" : method === "DELETE" ? (t.name ? "delete" : "deletecollection") : undefined;
    if (!verb) return reply(405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"));
    const attrs: Attributes = { verb, group: t.rt.group, resource: t.rt.resource, ...(t.subresource ? { subresource: t.subresource } : {}), ...(t.namespace ? { namespace: t.namespace } : {}), ...(t.name ? { name: t.name } : {}) };
    if (who !== "anyone" && !allows(who.rules, attrs)) return refuse(forbidden(who.user, attrs));
    const allowed = t.subresource ? ["get", "update", "patch"] : t.rt.verbs;
    if (!allowed.includes(verb)) return reply(405, status(405, "MethodNotAllowed", `the server does not allow this method on the requested resource (${qualifiedResource(t.rt.group, t.rt.resource)}${t.subresource ? `/${t.subresource}` : ""}: ${allowed.join(", ")})`));
    const table = tableAsked(req.headers.accept);
    const include = (url.searchParams.get("includeObject") ?? "Metadata") as IncludeObject;
    const asTable = (objs: KubeObject[]) => toTable(t.rt, objs, { resourceVersion: String(this.store.rv), include, tableVersion: table ?? "v1" });
    if (verb === "list" || verb === "watch") {
      let selects: (o: KubeObject) => boolean;
      try {
        const ls = parseLabelSelector(url.searchParams.get("labelSelector") ?? "");
        const fs = parseFieldSelector(url.searchParams.get("fieldSelector") ?? "", t.rt.resource);
        selects = (o) => labelsMatch(ls, o.metadata.labels) && fieldsMatch(fs, o);
      } catch (e) {
        if (e instanceof SelectorError) return reply(400, status(400, "BadRequest", e.message));
        throw e;
      }
      req.resume();
      if (verb === "watch") return this.watch(res, t, selects, url, table ? asTable : undefined);
      const items = this.store.list(t.rt.resource, t.namespace).filter(selects);
      if (table) return send(200, asTable(items));
      return send(200, { kind: `${t.rt.kind}List`, apiVersion: groupVersion(t.rt), metadata: { resourceVersion: String(this.store.rv) }, items });
    }
    if (verb === "deletecollection") return reply(405, status(405, "MethodNotAllowed", "the lab's API deletes one object at a time"));
    if (verb === "create") return this.body(req, res, (text) => { const [code, body] = this.create(t, text, trusted); send(code, body); });
    const cur = this.store.get(t.rt.resource, t.namespace, t.name!);
    if (!cur) return reply(404, notFound(t, t.name!));
    if (verb === "get") return reply(200, table ? asTable([cur]) : cur);
    if (verb === "patch" && this.forbidPatches) return refuse(forbidden("system:serviceaccount:kube-system:gauze", attrs));
    return this.body(req, res, (text) => {
      const [code, body] = verb === "update" ? this.update(t, cur, text) : verb === "patch" ? this.patch(t, cur, text, String(req.headers["content-type"] ?? "")) : this.remove(t, cur);
      send(code, body);
    });
  }

  /**
   * A pods/exec request up to the point of running it: authorized (create on pods/exec, as the
   * API server asks of WebSocket GETs too), the pod known, the Execer's answer; else the Status.
   */
  private async execCheck(t: Target, url: URL, method: string, who: Subject): Promise<StatusObject | { request: import("./exec.ts").ExecRequest; start: () => import("./exec.ts").ExecSession }> {
    if (method !== "GET" && method !== "POST") return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource (pods/exec: GET or POST)");
    const attrs: Attributes = { verb: "create", group: "", resource: "pods", subresource: "exec", namespace: t.namespace!, name: t.name! };
    if (who !== "anyone" && !allows(who.rules, attrs)) return forbidden(who.user, attrs);
    if (!this.store.get("pods", t.namespace, t.name!)) return notFound(t, t.name!);
    const r = execRequest(t.namespace!, t.name!, url.searchParams);
    if ("code" in r) return r;
    if (!this.exec) return status(404, "NotFound", `pod ${JSON.stringify(t.name)} has no kubelet that runs exec in this API`);
    const start = await this.exec(r);
    return typeof start === "function" ? { request: r, start } : start;
  }

  /** The server's 'upgrade' event: pods/exec over a WebSocket; anything else is refused as HTTP. */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, _head: Buffer): void => {
    const url = new URL(req.url ?? "/", "http://x");
    KubeApi.keep(this.requests, `${req.method} ${url.pathname}${url.search}`);
    this.count(false, req.method ?? "GET", url.pathname);
    const answer = (s: StatusObject) => {
      const body = JSON.stringify(s);
      socket.end(`HTTP/1.1 ${s.code} ${s.reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    };
    socket.on("error", () => { /* the client went away */ });
    let who: Subject = "anyone";
    if (this.grants) {
      const g = grantOf(this.grants, req.headers.authorization);
      if (!g) return answer(unauthorized());
      who = g;
    }
    const t = parsePath(url.pathname);
    if (!t || t.subresource !== "exec") return answer(status(400, "BadRequest", "only pods/exec is served over a WebSocket here"));
    void this.execCheck(t, url, req.method ?? "GET", who).then((r) => {
      if ("code" in r) return answer(r);
      const protocol = pickProtocol(req);
      if (!protocol) return answer(status(400, "BadRequest", "none of the offered subprotocols is served: v5.channel.k8s.io or v4.channel.k8s.io"));
      serveExec(req, socket, protocol, r.request, r.start);
    }, (e: Error) => answer(status(500, "InternalError", e.message)));
  };

  private discovery(path: string): { code: number; body: unknown } | undefined {
    if (path === "/api") return { code: 200, body: apiVersions(this.serverAddress) };
    if (path === "/apis") return { code: 200, body: apiGroupList() };
    if (path === "/openapi/v2" || path === "/openapi/v3" || path.startsWith("/openapi/")) return { code: 404, body: status(404, "NotFound", "the server could not find the requested resource (the lab's API serves no OpenAPI documents: kubectl apply and create need --validate=false)") };
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)(?:\/([^/]+))?)$/.exec(path);
    if (!m) return undefined;
    if (m[1]) return { code: 200, body: apiResourceList("", m[1]) };
    const body = m[3] ? apiResourceList(m[2]!, m[3]) : apiGroup(m[2]!);
    return body ? { code: 200, body } : undefined;
  }

  private watch(res: ServerResponse, t: Target, selects: (o: KubeObject) => boolean, url: URL, asTable?: (objs: KubeObject[]) => unknown): void {
    const from = url.searchParams.get("resourceVersion") ?? "";
    const bookmarks = url.searchParams.get("allowWatchBookmarks") === "true";
    const timeout = Number(url.searchParams.get("timeoutSeconds") ?? 0);
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    const w: Watch = {
      resource: t.rt.resource, ...(t.namespace ? { namespace: t.namespace } : {}), selects,
      send: (type, o) => { res.write(JSON.stringify({ type, object: asTable ? asTable([o]) : o }) + "\n"); },
    };
    // No resourceVersion (or "0"): the current state as ADDED events first, then the changes.
    if (from === "" || from === "0") {
      for (const o of this.store.list(t.rt.resource, t.namespace)) if (selects(o)) w.send("ADDED", o);
    } else if (!/^\d+$/.test(from) || !this.store.replay(w, Number(from))) {
      res.end(JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${from} (${this.store.oldest})`) }) + "\n");
      return;
    }
    const bookmark = () => res.write(JSON.stringify({ type: "BOOKMARK", object: { kind: t.rt.kind, apiVersion: groupVersion(t.rt), metadata: { resourceVersion: String(this.store.rv) } } }) + "\n");
    if (bookmarks) bookmark();
    const timers = [...(bookmarks ? [setInterval(bookmark, this.bookmarkMs)] : []), ...(timeout > 0 ? [setTimeout(() => { stop(); res.end(); }, timeout * 1000)] : [])];
    const stop = () => {
      for (const x of timers) clearTimeout(x);
      this.store.watches.delete(w);
      this.streams.delete(res);
    };
    this.store.watches.add(w);
    this.streams.set(res, stop);
    res.on("close", stop);
  }

  /** A body as an object of this resource: JSON, its apiVersion and kind, a valid name; else the Status to answer. */
  private parseObject(t: Target, text: string): KubeObject | Refusal {
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch {
      return refusal(status(400, "BadRequest", "the body of the request was not JSON"));
    }
    return this.checkShape(t, o);
  }

  private checkShape(t: Target, o: unknown): KubeObject | Refusal {
    const r = this.shapeProblem(t, o);
    return r ? refusal(r) : o as unknown as KubeObject;
  }

  private shapeProblem(t: Target, o: unknown): StatusObject | undefined {
    if (!isObj(o)) return status(400, "BadRequest", "the body of the request is not an object");
    const gv = groupVersion(t.rt);
    if (o.apiVersion !== gv) return status(400, "BadRequest", `the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${gv})`);
    if (o.kind !== t.rt.kind) return status(400, "BadRequest", `the kind in the data (${String(o.kind)}) does not match the expected kind (${t.rt.kind})`);
    if (!isObj(o.metadata)) return status(400, "BadRequest", `${t.rt.kind}: metadata must be an object`);
    const m = o.metadata;
    const name = typeof m.name === "string" ? m.name : "";
    if (name || typeof m.generateName !== "string") {
      const ok = t.rt.resource === "namespaces" ? isNamespaceName(name) : isPodName(name);
      if (!ok) return invalid(t, name, "metadata.name", m.name ?? "", name ? `a lowercase RFC 1123 ${t.rt.resource === "namespaces" ? "label" : "subdomain"} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character` : "name or generateName is required");
    }
    if (m.namespace !== undefined && (typeof m.namespace !== "string" || (m.namespace !== "" && !isNamespaceName(m.namespace)))) return invalid(t, name, "metadata.namespace", m.namespace, "a lowercase RFC 1123 label");
    for (const f of ["labels", "annotations"] as const) {
      const v = m[f];
      if (v !== undefined && v !== null && (!isObj(v) || Object.values(v).some((x) => typeof x !== "string"))) return invalid(t, name, `metadata.${f}`, v, "must be a map of strings");
    }
    return undefined;
  }

  private create(t: Target, text: string, trusted: boolean): [number, unknown] {
    const obj = this.parseObject(t, text);
    if (obj instanceof Refusal) return [obj.status.code, obj.status];
    const m = obj.metadata;
    if (!m.name && m.generateName) m.name = `${m.generateName}${randomBytes(4).toString("hex").slice(0, 5)}`;
    if (t.rt.namespaced) {
      if (m.namespace && m.namespace !== t.namespace) return [400, status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")];
      m.namespace = t.namespace;
      if (!this.store.get("namespaces", undefined, t.namespace!)) return [404, status(404, "NotFound", `namespaces ${JSON.stringify(t.namespace)} not found`, { name: t.namespace!, kind: "namespaces" })];
    } else delete m.namespace;
    if (this.store.get(t.rt.resource, m.namespace, m.name)) return [409, status(409, "AlreadyExists", `${qualifiedResource(t.rt.group, t.rt.resource)} ${JSON.stringify(m.name)} already exists`, { name: m.name, group: t.rt.group, kind: t.rt.resource })];
    // The lab's own pods keep the uid their sandbox was made with; anyone else's uid is the server's.
    obj.metadata = { ...m, uid: trusted && typeof m.uid === "string" && m.uid ? m.uid : randomUUID(), creationTimestamp: timestamp(), generation: 1 };
    delete obj.metadata.resourceVersion;
    this.defaults(t.rt, obj);
    this.store.put(t.rt.resource, obj);
    // The service account controller's part: every namespace has a "default" account.
    if (t.rt.resource === "namespaces") this.store.put("serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: m.name, uid: randomUUID(), creationTimestamp: timestamp() } });
    return [201, obj];
  }

  /** What the API server's strategies and admission fill in. */
  private defaults(rt: ResourceType, o: KubeObject): void {
    if (rt.resource === "namespaces") {
      // The API server sets this label on every namespace, and keeps it set.
      o.metadata.labels = { ...(o.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: o.metadata.name };
      o.spec = isObj(o.spec) ? o.spec : { finalizers: ["kubernetes"] };
      o.status = isObj(o.status) && o.status.phase ? o.status : { phase: "Active" };
    }
    if (rt.resource === "pods" && !isObj(o.status)) o.status = { phase: "Pending" };
  }

  /**
   * The next state of `cur` from what a client sent: identity fields kept, status or spec kept as
   * the subresource says (a status write changes no spec; a main write no status), the generation
   * counted on spec changes. Unchanged: nothing written, no new resourceVersion.
   */
  private commit(t: Target, cur: KubeObject, next: KubeObject): [number, unknown] {
    if (next.metadata.name !== cur.metadata.name) return [400, status(400, "BadRequest", `the name of the object (${String(next.metadata.name)}) does not match the name on the URL (${cur.metadata.name})`)];
    if ((next.metadata.namespace ?? cur.metadata.namespace) !== cur.metadata.namespace) return [400, status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")];
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== "" && rv !== cur.metadata.resourceVersion) {
      return [409, status(409, "Conflict", `Operation cannot be fulfilled on ${qualifiedResource(t.rt.group, t.rt.resource)} ${JSON.stringify(cur.metadata.name)}: the object has been modified; please apply your changes to the latest version and try again`, { name: cur.metadata.name, group: t.rt.group, kind: t.rt.resource })];
    }
    const out: KubeObject = { ...next, metadata: { ...next.metadata, name: cur.metadata.name, uid: cur.metadata.uid, creationTimestamp: cur.metadata.creationTimestamp, resourceVersion: cur.metadata.resourceVersion } };
    if (cur.metadata.namespace) out.metadata.namespace = cur.metadata.namespace; else delete out.metadata.namespace;
    if (t.subresource === "status") { if ("spec" in cur) out.spec = cur.spec; else delete out.spec; }
    else if (t.rt.status) { if ("status" in cur) out.status = cur.status; else delete out.status; }
    for (const f of ["labels", "annotations"] as const) if (out.metadata[f] === null) delete out.metadata[f];
    this.defaults(t.rt, out);
    out.metadata.generation = (cur.metadata.generation ?? 1) + (deepEqual(out.spec, cur.spec) ? 0 : 1);
    if (deepEqual(out, cur)) return [200, cur];
    this.store.put(t.rt.resource, out);
    return [200, out];
  }

  private update(t: Target, cur: KubeObject, text: string): [number, unknown] {
    const o = this.parseObject(t, text);
    if (o instanceof Refusal) return [o.status.code, o.status];
    return this.commit(t, cur, o);
  }

  private patch(t: Target, cur: KubeObject, text: string, contentType: string): [number, unknown] {
    const type = contentType.split(";")[0]!.trim();
    const apply = { "application/strategic-merge-patch+json": (p: Json) => strategicMergePatch(cur as unknown as Json, p), "application/merge-patch+json": (p: Json) => mergePatch(cur as unknown as Json, p), "application/json-patch+json": (p: Json) => jsonPatch(cur as unknown as Json, p) }[type];
    if (!apply) {
      const why = type === "application/apply-patch+yaml" ? "server-side apply is not served by the lab's API (kubectl apply without --server-side works)" : "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json";
      return [415, status(415, "UnsupportedMediaType", why)];
    }
    let p: Json;
    try {
      p = JSON.parse(text) as Json;
    } catch {
      return [400, status(400, "BadRequest", "the body of the request was not JSON")];
    }
    if (isObj(p)) KubeApi.keep(this.patches, { name: cur.metadata.name, contentType: type, body: p as Record<string, unknown> });
    let next: unknown;
    try {
      next = apply(p);
    } catch (e) {
      if (e instanceof PatchError) return [422, status(422, "Invalid", `the patch could not be applied: ${e.message}`)];
      throw e;
    }
    const o = this.checkShape(t, next);
    if (o instanceof Refusal) return [o.status.code, o.status];
    return this.commit(t, cur, o);
  }

  /** Deletes at once (no graceful deletion); a namespace takes everything in it along. */
  private remove(t: Target, cur: KubeObject): [number, unknown] {
    if (t.rt.resource === "namespaces") {
      for (const r of RESOURCES.filter((x) => x.namespaced)) for (const o of this.store.list(r.resource, cur.metadata.name)) this.store.remove(r.resource, cur.metadata.name, o.metadata.name);
    }
    return [200, this.store.remove(t.rt.resource, t.namespace, cur.metadata.name)];
  }

  /** Serves on host:port (HTTPS with `tls`), or on a free loopback port; resolves to the URL. The listening socket is made before this returns its promise. */
  listen(o: { host?: string; port?: number; tls?: { cert: Buffer; key: Buffer } } = {}): Promise<string> {
    const server = o.tls ? createHttps({ cert: o.tls.cert, key: o.tls.key }, this.handle) : createHttp(this.handle);
    server.on("connection", (s: Socket) => { this.sockets.add(s); s.on("close", () => this.sockets.delete(s)); });
    server.on("upgrade", this.upgrade);
    this.servers.push(server);
    const host = o.host ?? "127.0.0.1";
    return new Promise<string>((resolve, reject) => {
      server.once("error", reject);
      server.listen(o.port ?? 0, host, () => resolve(`${o.tls ? "https" : "http"}://${host}:${(server.address() as { port: number }).port}`));
    });
  }

  close(): void {
    this.drop();
    for (const s of this.servers) s.close();
  }
}

/** The name tests and the kube store's stand-in know the server by. */
export class NodesApi extends KubeApi {}
