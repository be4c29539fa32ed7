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
