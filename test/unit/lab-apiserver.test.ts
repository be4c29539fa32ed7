// The lab's Kubernetes API authorizes like the real one: a bearer token names a subject, the
// subject's ClusterRole rules say what it may do, anything else is 401 or 403 with the API's
// wording; and a watch resumes from a resourceVersion, or answers 410 Gone when that is too old.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NodesApi } from "../../src/lab/kube/apiserver.ts";

async function call(url: string, path: string, token?: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  const r = await fetch(url + path, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers ?? {}) } });
  return { status: r.status, body: await r.text() };
}

test("tokens and ClusterRole rules decide; denials read as the API server's", async () => {
  const api = new NodesApi();
  api.putNode("n1", { podCIDR: "10.244.0.0/24" });
  api.grants = [
    { token: "reader", user: "system:serviceaccount:kube-gauze:reader", rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "list"] }] },
    { token: "agent", user: "system:serviceaccount:kube-gauze:gauze", rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] }, { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] }] },
  ];
  const url = await api.listen();
  try {
    assert.equal((await call(url, "/api/v1/nodes")).status, 401);
    assert.equal((await call(url, "/api/v1/nodes", "nobody")).status, 401);
    assert.equal((await call(url, "/api/v1/nodes", "reader")).status, 200);
    const patch = { method: "PATCH", body: JSON.stringify({ metadata: { annotations: { a: "b" } } }), headers: { "content-type": "application/strategic-merge-patch+json" } };
    const denied = await call(url, "/api/v1/nodes/n1/status", "reader", patch);
    assert.equal(denied.status, 403);
    assert.equal((JSON.parse(denied.body) as { message: string }).message, 'nodes "n1" is forbidden: User "system:serviceaccount:kube-gauze:reader" cannot patch resource "nodes/status" in API group "" at the cluster scope');
    assert.equal((await call(url, "/api/v1/nodes?watch=true&resourceVersion=999999", "reader")).status, 403, "watch is its own verb");
    const ok = await call(url, "/api/v1/nodes/n1/status", "agent", patch);
    assert.equal(ok.status, 200);
    assert.equal(api.nodes.get("n1")!.metadata.annotations!.a, "b");
  } finally {
    api.close();
  }
});

test("a watch gets what it missed since its resourceVersion; one from before the kept history gets 410 Gone", async () => {
  const api = new NodesApi([], 100);
  const url = await api.listen();
  try {
    api.putNode("a", {});
    const since = api.resourceVersion;
    api.putNode("b", {});
    api.deleteNode("a");
    const ctl = new AbortController();
    const r = await fetch(`${url}/api/v1/nodes?watch=true&resourceVersion=${since}`, { signal: ctl.signal });
    const reader = r.body!.getReader();
    let text = "";
    while (text.split("\n").filter(Boolean).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    ctl.abort();
    assert.deepEqual(text.split("\n").filter(Boolean).map((l) => { const e = JSON.parse(l) as { type: string; object: { metadata: { name: string } } }; return `${e.type} ${e.object.metadata.name}`; }), ["ADDED b", "DELETED a"]);
    for (let i = 0; i < 10_050; i++) api.putNode("churn", {});
    const gone = await fetch(`${url}/api/v1/nodes?watch=true&resourceVersion=${since}`);
    const line = JSON.parse((await gone.text()).trim()) as { type: string; object: { code: number } };
    assert.deepEqual([line.type, line.object.code], ["ERROR", 410]);
  } finally {
    api.close();
  }
});

test("an unauthenticated 200 MB PATCH is refused from its headers, before a byte of it is kept; logs stay bounded", async () => {
  const api = new NodesApi();
  api.putNode("n1", { podCIDR: "10.244.0.0/24" });
  api.grants = [{ token: "agent", user: "system:serviceaccount:kube-gauze:gauze", rules: [{ apiGroups: [""], resources: ["nodes", "nodes/status"], verbs: ["get", "patch"] }] }];
  const url = new URL(await api.listen());
  const { request } = await import("node:http");
  try {
    Bun.gc(true);
    const rss0 = process.memoryUsage().rss;
    // A client that keeps sending: 200 chunks of 1 MB, without waiting for the answer.
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: "/api/v1/nodes/n1/status", method: "PATCH", headers: { "content-type": "application/strategic-merge-patch+json", "content-length": String(200 << 20) } }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => { body += d.toString(); });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", () => undefined); // the server closes on us mid-body: expected
      const chunk = Buffer.alloc(1 << 20, 0x20);
      let sent = 0;
      const pump = () => { while (sent < 200 && req.write(chunk)) sent++; if (sent < 200 && !req.destroyed) req.once("drain", pump); };
      pump();
      setTimeout(() => reject(new Error("no answer within 10 s")), 10_000);
    });
    assert.equal(r.status, 401);
    Bun.gc(true);
    const grew = (process.memoryUsage().rss - rss0) / (1 << 20);
    assert.ok(grew < 60, `the server kept ${grew.toFixed(0)} MB of a body it refused`);
    // Too large from an authorized client: 413, the limit named.
    const big = await fetch(url + "api/v1/nodes/n1/status", { method: "PATCH", headers: { authorization: "Bearer agent", "content-type": "application/strategic-merge-patch+json" }, body: "x".repeat(2 << 20) });
    assert.equal(big.status, 413);
    assert.match(await big.text(), /larger than 1048576 bytes/);
    for (let i = 0; i < 3000; i++) api.handle({ method: "GET", url: "/api/v1/nodes", headers: {}, resume() {}, socket: { destroy() {} } } as never, { writeHead() { return this; }, end(_b?: unknown, cb?: () => void) { cb?.(); } } as never);
    assert.ok(api.requests.length <= 1000, `${api.requests.length} requests remembered`);
  } finally {
    api.close();
  }
});
