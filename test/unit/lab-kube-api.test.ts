// The lab's Kubernetes API as a client sees it over HTTP: discovery documents, create/get/list
// with resourceVersion and selectors, watches that resume, answer 410 Gone and send bookmarks,
// update with conflicts, the three patch types, NetworkPolicies kept exactly as sent (no spec
// validation), namespaces that take their contents along, Tables with kubectl's columns, RBAC
// decided from the headers (403 wording per scope, 401), and bodies over 1 MiB refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KubeApi } from "../../src/lab/kube/apiserver.ts";
import { humanDuration, formatSelector } from "../../src/lab/kube/table.ts";
import { strategicMergePatch, threeWayMergePatch } from "../../src/lab/kube/patch.ts";
import { parseLabelSelector, labelsMatch } from "../../src/lab/kube/selectors.ts";

type J = Record<string, unknown> & { metadata?: Record<string, unknown>; items?: J[]; code?: number; reason?: string; message?: string };

async function serve(grants?: KubeApi["grants"]): Promise<{ api: KubeApi; call: (method: string, path: string, o?: { body?: unknown; token?: string; type?: string; accept?: string }) => Promise<{ status: number; json: J }>; url: string }> {
  const api = new KubeApi([], 100);
  if (grants) api.grants = grants;
  const url = await api.listen();
  const call = async (method: string, path: string, o: { body?: unknown; token?: string; type?: string; accept?: string } = {}) => {
    const r = await fetch(url + path, { method, headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body !== undefined ? { "content-type": o.type ?? "application/json" } : {}), ...(o.accept ? { accept: o.accept } : {}) }, ...(o.body !== undefined ? { body: typeof o.body === "string" ? o.body : JSON.stringify(o.body) } : {}) });
    const text = await r.text();
    return { status: r.status, json: (text.startsWith("{") ? JSON.parse(text) : { text }) as J };
  };
  return { api, call, url };
}

const ns = (name: string, labels: Record<string, string> = {}) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
const pod = (namespace: string, name: string, node: string, labels: Record<string, string> = {}) => ({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace, labels }, spec: { nodeName: node, containers: [{ name: "c", image: "agnhost", ports: [{ name: "serve-80-tcp", containerPort: 80, protocol: "TCP" }] }] } });
const netpol = (namespace: string, name: string, spec: unknown) => ({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace }, spec });
const NP = "/apis/networking.k8s.io/v1";

/** Reads a watch until `n` lines have come (or `ms` passed), then aborts it. */
async function watchLines(url: string, path: string, n: number, during: () => Promise<void> = async () => undefined, ms = 3000): Promise<J[]> {
  const ctl = new AbortController();
  const r = await fetch(url + path, { signal: ctl.signal });
  const reader = r.body!.getReader();
  let text = "";
  const until = Date.now() + ms;
  await during();
  while (text.split("\n").filter(Boolean).length < n && Date.now() < until) {
    const chunk = await Promise.race([reader.read(), new Promise<{ value?: Uint8Array }>((res) => setTimeout(() => res({}), 200))]);
    if (chunk.value) text += new TextDecoder().decode(chunk.value);
  }
  ctl.abort();
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as J);
}

test("discovery: /api, /api/v1, /apis, the networking group, /version; OpenAPI is a 404 Status; aggregated-only discovery is 406", async () => {
  const { api, call } = await serve();
  try {
    assert.deepEqual((await call("GET", "/api")).json.versions, ["v1"]);
    const v1 = (await call("GET", "/api/v1")).json as { resources: { name: string; namespaced: boolean; verbs: string[]; shortNames?: string[] }[] };
    assert.deepEqual(v1.resources.map((r) => r.name).sort(), ["namespaces", "namespaces/status", "nodes", "nodes/status", "pods", "pods/exec", "pods/status", "serviceaccounts"]);
    assert.deepEqual(v1.resources.find((r) => r.name === "serviceaccounts")!.verbs, ["get", "list", "watch"]);
    assert.equal(v1.resources.find((r) => r.name === "pods")!.namespaced, true);
    const groups = (await call("GET", "/apis")).json as { groups: { name: string; preferredVersion: { groupVersion: string } }[] };
    assert.deepEqual(groups.groups.map((g) => g.preferredVersion.groupVersion), ["apps/v1", "networking.k8s.io/v1"]);
    const net = (await call("GET", NP)).json as { resources: { name: string; kind: string; shortNames: string[] }[] };
    assert.deepEqual(net.resources.map((r) => `${r.name} ${r.kind} ${r.shortNames.join(",")}`), ["networkpolicies NetworkPolicy netpol"]);
    assert.match(String((await call("GET", "/version")).json.gitVersion), /^v1\.\d+\.\d+-gauze-lab$/);
    for (const p of ["/openapi/v2", "/openapi/v3"]) {
      const r = await call("GET", p);
      assert.equal(r.status, 404);
      assert.equal(r.json.kind, "Status");
      assert.match(String(r.json.message), /--validate=false/);
    }
    assert.equal((await call("GET", "/apis", { accept: "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" })).status, 406);
    assert.equal((await call("GET", "/apis", { accept: "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json" })).status, 200);
    assert.equal((await call("GET", "/apis/batch/v1")).status, 404);
  } finally {
    api.close();
  }
});

test("create, get, list with resourceVersion and selectors; 404, 409 AlreadyExists and 409 Conflict as the API words them", async () => {
  const { api, call } = await serve();
  try {
    assert.equal((await call("POST", "/api/v1/namespaces", { body: ns("x", { team: "a" }) })).status, 201);
    const x = (await call("GET", "/api/v1/namespaces/x")).json;
    assert.equal((x.metadata!.labels as Record<string, string>)["kubernetes.io/metadata.name"], "x", "the API server labels every namespace with its name");
    assert.match(String(x.metadata!.uid), /^[0-9a-f-]{36}$/);
    assert.match(String(x.metadata!.creationTimestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal((x.status as { phase: string }).phase, "Active");
    const dup = await call("POST", "/api/v1/namespaces", { body: ns("x") });
    assert.deepEqual([dup.status, dup.json.reason, dup.json.message], [409, "AlreadyExists", 'namespaces "x" already exists']);
    const noNs = await call("POST", "/api/v1/namespaces/y/pods", { body: pod("y", "a", "n1") });
    assert.deepEqual([noNs.status, noNs.json.message], [404, 'namespaces "y" not found']);
    for (const [n, node, app] of [["a", "n1", "web"], ["b", "n2", "web"], ["c", "n1", "db"]] as const) assert.equal((await call("POST", "/api/v1/namespaces/x/pods", { body: pod("x", n, node, { app }) })).status, 201);
    const list = (await call("GET", "/api/v1/pods")).json;
    assert.equal(list.kind, "PodList");
    assert.equal(list.metadata!.resourceVersion, String(api.resourceVersion));
    const names = async (q: string) => ((await call("GET", `/api/v1/namespaces/x/pods?${q}`)).json.items ?? []).map((p) => p.metadata!.name).sort();
    assert.deepEqual(await names("fieldSelector=spec.nodeName%3Dn1"), ["a", "c"]);
    assert.deepEqual(await names("fieldSelector=metadata.name%3Db"), ["b"]);
    assert.deepEqual(await names("labelSelector=app%3Dweb,app!%3Ddb"), ["a", "b"]);
    assert.deepEqual(await names("labelSelector=app%20in%20(db)"), ["c"]);
    assert.deepEqual(await names("labelSelector=!app"), []);
    const badField = await call("GET", "/api/v1/pods?fieldSelector=spec.foo%3D1");
    assert.deepEqual([badField.status, badField.json.reason], [400, "BadRequest"]);
    assert.match(String(badField.json.message), /"spec.foo" is not a known field selector/);
    const missing = await call("GET", "/api/v1/namespaces/x/pods/zz");
    assert.deepEqual([missing.status, missing.json.reason, missing.json.message], [404, "NotFound", 'pods "zz" not found']);
    // PUT with a stale resourceVersion.
    const a = (await call("GET", "/api/v1/namespaces/x/pods/a")).json;
    const stale = { ...a, metadata: { ...a.metadata, resourceVersion: "1", labels: { app: "new" } } };
    const conflict = await call("PUT", "/api/v1/namespaces/x/pods/a", { body: stale });
    assert.deepEqual([conflict.status, conflict.json.reason, conflict.json.message], [409, "Conflict", 'Operation cannot be fulfilled on pods "a": the object has been modified; please apply your changes to the latest version and try again']);
    const fresh = await call("PUT", "/api/v1/namespaces/x/pods/a", { body: { ...a, metadata: { ...a.metadata, labels: { app: "new" } } } });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.json.metadata!.uid, a.metadata!.uid, "uid kept");
    assert.ok(Number(fresh.json.metadata!.resourceVersion) > Number(a.metadata!.resourceVersion));
    // An unchanged PUT writes nothing.
    const rv = api.resourceVersion;
    await call("PUT", "/api/v1/namespaces/x/pods/a", { body: fresh.json });
    assert.equal(api.resourceVersion, rv);
  } finally {
    api.close();
  }
});

test("NetworkPolicies are stored as given, even invalid ones; a bad shape (kind, apiVersion, name) is refused", async () => {
  const { api, call } = await serve();
  try {
    await call("POST", "/api/v1/namespaces", { body: ns("x") });
    const weird = { podSelector: { matchLabels: { app: 7 } }, ingress: [{ ports: [{ port: "no-such-port", protocol: "ICMP" }], from: "nonsense" }], policyTypes: ["Sideways"] };
    const r = await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: netpol("x", "weird", weird) });
    assert.equal(r.status, 201);
    assert.deepEqual((await call("GET", `${NP}/namespaces/x/networkpolicies/weird`)).json.spec, weird, "the spec exactly as sent");
    assert.equal((await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: { ...netpol("x", "k", {}), kind: "Pod" } })).status, 400);
    assert.equal((await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: { ...netpol("x", "k", {}), apiVersion: "v1" } })).status, 400);
    const badName = await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: netpol("x", "Bad_Name", {}) });
    assert.deepEqual([badName.status, badName.json.reason], [422, "Invalid"]);
    assert.match(String(badName.json.message), /^NetworkPolicy.networking.k8s.io "Bad_Name" is invalid: metadata.name: Invalid value/);
    assert.equal((await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: "not json" })).status, 400);
    assert.equal((await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: netpol("y", "k", {}) })).status, 400, "the namespace in the body is the URL's");
  } finally {
    api.close();
  }
});

test("patches: strategic merge (merge keys, $patch, $retainKeys, null), JSON merge, JSON patch; status and spec written apart; unknown types 415", async () => {
  const { api, call } = await serve();
  try {
    await call("POST", "/api/v1/namespaces", { body: ns("x") });
    await call("POST", "/api/v1/namespaces/x/pods", { body: pod("x", "a", "n1", { app: "web", tier: "1" }) });
    const smp = (p: unknown, path = "/api/v1/namespaces/x/pods/a") => call("PATCH", path, { body: p, type: "application/strategic-merge-patch+json" });
    let r = await smp({ metadata: { labels: { tier: null, new: "yes" } }, spec: { containers: [{ name: "c", ports: [{ containerPort: 81, name: "serve-81-tcp" }] }] } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.metadata!.labels, { app: "web", new: "yes" });
    const ports = ((r.json.spec as { containers: { image: string; ports: { containerPort: number }[] }[] }).containers[0]!);
    assert.equal(ports.image, "agnhost", "containers merged by name: the image stays");
    assert.deepEqual(ports.ports.map((p) => p.containerPort), [80, 81], "ports merged by containerPort");
    r = await call("PATCH", "/api/v1/namespaces/x/pods/a", { body: { metadata: { labels: { app: null } } }, type: "application/merge-patch+json" });
    assert.deepEqual(r.json.metadata!.labels, { new: "yes" });
    r = await call("PATCH", "/api/v1/namespaces/x/pods/a", { body: [{ op: "add", path: "/metadata/labels/j", value: "p" }, { op: "test", path: "/metadata/labels/new", value: "yes" }], type: "application/json-patch+json" });
    assert.deepEqual(r.json.metadata!.labels, { new: "yes", j: "p" });
    const failed = await call("PATCH", "/api/v1/namespaces/x/pods/a", { body: [{ op: "test", path: "/metadata/labels/new", value: "no" }], type: "application/json-patch+json" });
    assert.equal(failed.status, 422);
    // The main resource cannot write status; pods/status cannot write spec.
    r = await smp({ status: { phase: "Running" } });
    assert.equal((r.json.status as { phase: string }).phase, "Pending");
    r = await smp({ status: { phase: "Running", podIP: "10.244.1.5", conditions: [{ type: "Ready", status: "True" }] }, spec: { nodeName: "elsewhere" } }, "/api/v1/namespaces/x/pods/a/status");
    assert.deepEqual([(r.json.status as { phase: string }).phase, (r.json.spec as { nodeName: string }).nodeName], ["Running", "n1"]);
    r = await smp({ status: { conditions: [{ type: "PodScheduled", status: "True" }] } }, "/api/v1/namespaces/x/pods/a/status");
    assert.deepEqual((r.json.status as { conditions: { type: string }[] }).conditions.map((c) => c.type), ["Ready", "PodScheduled"], "conditions merged by type");
    assert.equal((await call("PATCH", "/api/v1/namespaces/x/pods/a", { body: "{}", type: "application/apply-patch+yaml" })).status, 415);
    assert.equal((await call("PATCH", "/api/v1/namespaces/x/pods/a", { body: "{}", type: "text/plain" })).status, 415);
    // The directives kubectl sends.
    assert.deepEqual(strategicMergePatch({ spec: { a: 1, b: { c: 2 } } }, { spec: { b: { $patch: "replace", d: 3 } } }), { spec: { a: 1, b: { d: 3 } } });
    assert.deepEqual(strategicMergePatch({ spec: { a: 1, b: 2 } }, { spec: { $retainKeys: ["b"], b: 5 } }), { spec: { b: 5 } });
    assert.deepEqual(strategicMergePatch({ status: { conditions: [{ type: "A" }, { type: "B" }] } }, { status: { conditions: [{ type: "A", $patch: "delete" }], "$setElementOrder/conditions": [{ type: "B" }] } }), { status: { conditions: [{ type: "B" }] } });
    assert.deepEqual(strategicMergePatch({ metadata: { finalizers: ["a", "b"] } }, { metadata: { "$deleteFromPrimitiveList/finalizers": ["a"] } }), { metadata: { finalizers: ["b"] } });
    assert.deepEqual(strategicMergePatch({ spec: { ingress: [{ from: [1] }, { from: [2] }] } }, { spec: { ingress: [{ from: [3] }] } }), { spec: { ingress: [{ from: [3] }] } }, "a list without a merge key is replaced");
  } finally {
    api.close();
  }
});

test("client-side apply's three-way patch: only what changed, what was dropped from the config deleted, {} when unchanged", () => {
  const last = { metadata: { name: "p", labels: { a: "1", gone: "x" } }, spec: { podSelector: {}, policyTypes: ["Ingress"] } };
  const live = { metadata: { name: "p", labels: { a: "1", gone: "x", added: "by-kubectl-label" }, uid: "u" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } };
  assert.deepEqual(threeWayMergePatch(last, last, live), {});
  const next = { metadata: { name: "p", labels: { a: "2" } }, spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] } };
  assert.deepEqual(threeWayMergePatch(last, next, live), { metadata: { labels: { a: "2", gone: null } }, spec: { policyTypes: ["Ingress", "Egress"] } });
});

test("watch: current state first without a resourceVersion, what was missed after one, selectors as ADDED/DELETED, bookmarks, DELETED on delete, 410 Gone", async () => {
  const { api, call, url } = await serve();
  api.bookmarkMs = 100;
  try {
    await call("POST", "/api/v1/namespaces", { body: ns("x") });
    await call("POST", "/api/v1/namespaces/x/pods", { body: pod("x", "a", "n1", { app: "web" }) });
    const first = await watchLines(url, "/api/v1/namespaces/x/pods?watch=true", 1);
    assert.deepEqual(first.map((e) => `${e.type} ${(e.object as J).metadata!.name}`), ["ADDED a"]);
    const since = api.resourceVersion;
    await call("POST", "/api/v1/namespaces/x/pods", { body: pod("x", "b", "n2", { app: "web" }) });
    await call("DELETE", "/api/v1/namespaces/x/pods/a");
    const missed = await watchLines(url, `/api/v1/pods?watch=true&resourceVersion=${since}`, 2);
    assert.deepEqual(missed.map((e) => `${e.type} ${(e.object as J).metadata!.name}`), ["ADDED b", "DELETED a"]);
    // A label change takes b out of app=web (DELETED) and back in (ADDED); bookmarks carry the resourceVersion.
    const seen = await watchLines(url, `/api/v1/namespaces/x/pods?watch=true&labelSelector=app%3Dweb&allowWatchBookmarks=true&resourceVersion=${api.resourceVersion}`, 4, async () => {
      await call("PATCH", "/api/v1/namespaces/x/pods/b", { body: { metadata: { labels: { app: "db" } } }, type: "application/merge-patch+json" });
      await call("PATCH", "/api/v1/namespaces/x/pods/b", { body: { metadata: { labels: { app: "web" } } }, type: "application/merge-patch+json" });
      await new Promise((r) => setTimeout(r, 150));
    });
    const kinds = seen.map((e) => e.type);
    assert.ok(kinds.includes("BOOKMARK"));
    assert.deepEqual(kinds.filter((k) => k !== "BOOKMARK"), ["DELETED", "ADDED"]);
    const bm = seen.find((e) => e.type === "BOOKMARK")!.object as J;
    assert.deepEqual([bm.kind, bm.apiVersion], ["Pod", "v1"]);
    for (let i = 0; i < 10_050; i++) api.putNode("churn", {});
    const gone = await fetch(`${url}/api/v1/pods?watch=true&resourceVersion=${since}`);
    const line = JSON.parse((await gone.text()).trim()) as { type: string; object: { code: number; reason: string } };
    assert.deepEqual([line.type, line.object.code, line.object.reason], ["ERROR", 410, "Expired"]);
    // Deleting a namespace deletes what it holds, each with its DELETED event.
    const rv = api.resourceVersion;
    await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: netpol("x", "np", {}) });
    await call("DELETE", "/api/v1/namespaces/x");
    assert.equal((await call("GET", "/api/v1/namespaces/x/pods/b")).status, 404);
    const events = await watchLines(url, `${NP}/networkpolicies?watch=true&resourceVersion=${rv}`, 2);
    assert.deepEqual(events.map((e) => e.type), ["ADDED", "DELETED"]);
  } finally {
    api.close();
  }
});

test("Tables: kubectl's columns per kind, wide ones at priority 1, ages as kubectl words them, rows carrying metadata", async () => {
  const { api, call } = await serve();
  const TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
  try {
    await call("POST", "/api/v1/namespaces", { body: ns("x") });
    await call("POST", "/api/v1/namespaces/x/pods", { body: pod("x", "a", "n1") });
    await call("PATCH", "/api/v1/namespaces/x/pods/a/status", { body: { status: { phase: "Running", podIP: "10.244.1.5", containerStatuses: [{ name: "c", ready: true, restartCount: 0, state: { running: {} } }] } }, type: "application/merge-patch+json" });
    api.putNode("n1", { podCIDR: "10.244.1.0/24", internalIP: "172.18.0.3", labels: { "node-role.kubernetes.io/control-plane": "" }, conditions: [{ type: "Ready", status: "True" }], nodeInfo: { kubeletVersion: "v0.1.0-gauze-lab" } });
    await call("POST", `${NP}/namespaces/x/networkpolicies`, { body: netpol("x", "np", { podSelector: { matchLabels: { app: "web" }, matchExpressions: [{ key: "tier", operator: "In", values: ["a", "b"] }] } }) });
    const t = (await call("GET", "/api/v1/pods", { accept: TABLE })).json as { kind: string; apiVersion: string; columnDefinitions: { name: string; priority: number }[]; rows: { cells: unknown[]; object: { kind: string; metadata: { namespace: string } } }[] };
    assert.deepEqual([t.kind, t.apiVersion], ["Table", "meta.k8s.io/v1"]);
    assert.deepEqual(t.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name), ["Name", "Ready", "Status", "Restarts", "Age"]);
    assert.deepEqual(t.columnDefinitions.filter((c) => c.priority === 1).map((c) => c.name).slice(0, 2), ["IP", "Node"]);
    assert.deepEqual(t.rows[0]!.cells.slice(0, 4).concat(t.rows[0]!.cells.slice(5, 7)), ["a", "1/1", "Running", 0, "10.244.1.5", "n1"]);
    assert.match(String(t.rows[0]!.cells[4]), /^\d+s$/);
    assert.deepEqual([t.rows[0]!.object.kind, t.rows[0]!.object.metadata.namespace], ["PartialObjectMetadata", "x"]);
    const nodes = (await call("GET", "/api/v1/nodes", { accept: TABLE })).json as { columnDefinitions: { name: string; priority: number }[]; rows: { cells: unknown[] }[] };
    assert.deepEqual(nodes.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name), ["Name", "Status", "Roles", "Age", "Version"]);
    assert.deepEqual([nodes.rows[0]!.cells[1], nodes.rows[0]!.cells[2], nodes.rows[0]!.cells[4], nodes.rows[0]!.cells[5]], ["Ready", "control-plane", "v0.1.0-gauze-lab", "172.18.0.3"]);
    const nss = (await call("GET", "/api/v1/namespaces", { accept: TABLE })).json as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    assert.deepEqual(nss.columnDefinitions.map((c) => c.name), ["Name", "Status", "Age"]);
    assert.deepEqual(nss.rows[0]!.cells.slice(0, 2), ["x", "Active"]);
    const np = (await call("GET", `${NP}/namespaces/x/networkpolicies/np`, { accept: TABLE })).json as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    assert.deepEqual(np.columnDefinitions.map((c) => c.name), ["Name", "Pod-Selector", "Age"]);
    assert.equal(np.rows[0]!.cells[1], "app=web,tier in (a,b)");
    assert.equal(formatSelector({}), "<none>");
    assert.equal(formatSelector("garbage"), "<none>", "an invalid policy's selector still prints");
    assert.deepEqual([humanDuration(45_000), humanDuration(312_000), humanDuration(12_000_000), humanDuration(3 * 86_400_000 + 4 * 3_600_000)], ["45s", "5m12s", "3h20m", "3d4h"]);
    assert.ok(labelsMatch(parseLabelSelector("a in (x,y),!b,c"), { a: "y", c: "" }));
  } finally {
    api.close();
  }
});

test("RBAC from ClusterRole rules ('*' too), checked from the headers: 401 without a known token, 403 naming verb, resource, group and scope", async () => {
  const { api, call } = await serve([
    { token: "admin", user: "kubernetes-admin", rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }] },
    { token: "agent", user: "system:serviceaccount:kube-system:gauze-agent", rules: [{ apiGroups: [""], resources: ["pods", "namespaces"], verbs: ["get", "list", "watch"] }, { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["get", "list", "watch"] }] },
    { token: "nobody", user: "nobody", rules: [] },
  ]);
  try {
    assert.equal((await call("GET", "/version")).status, 200, "/version is public");
    assert.equal((await call("GET", "/api")).status, 401);
    assert.equal((await call("GET", "/api", { token: "nobody" })).status, 200, "discovery: any authenticated user");
    assert.equal((await call("POST", "/api/v1/namespaces", { body: ns("x"), token: "admin" })).status, 201);
    assert.equal((await call("GET", `${NP}/networkpolicies?watch=true&timeoutSeconds=1`, { token: "agent" })).status, 200);
    const del = await call("DELETE", `${NP}/namespaces/x/networkpolicies/p`, { token: "agent" });
    assert.deepEqual([del.status, del.json.reason, del.json.message], [403, "Forbidden", 'networkpolicies.networking.k8s.io "p" is forbidden: User "system:serviceaccount:kube-system:gauze-agent" cannot delete resource "networkpolicies" in API group "networking.k8s.io" in the namespace "x"']);
    const list = await call("GET", "/api/v1/namespaces/default/pods", { token: "nobody" });
    assert.equal(list.json.message, 'pods is forbidden: User "nobody" cannot list resource "pods" in API group "" in the namespace "default"');
    const nodes = await call("GET", "/api/v1/nodes", { token: "agent" });
    assert.equal(nodes.json.message, 'nodes is forbidden: User "system:serviceaccount:kube-system:gauze-agent" cannot list resource "nodes" in API group "" at the cluster scope');
    const sa = await call("POST", "/api/v1/namespaces/x/serviceaccounts", { body: { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "s" } }, token: "admin" });
    assert.equal(sa.status, 405, "service accounts are read-only here");
    assert.equal(((await call("GET", "/api/v1/namespaces/x/serviceaccounts", { token: "admin" })).json.items ?? []).map((s) => s.metadata!.name).join(), "default", "each namespace gets its default account");
    // A forbidden 2 MiB body is refused before it is read; an allowed one is a 413.
    const big = "x".repeat(2 << 20);
    assert.equal((await call("POST", "/api/v1/namespaces", { body: big, token: "agent" })).status, 403);
    const tooLarge = await call("POST", "/api/v1/namespaces", { body: big, token: "admin" });
    assert.equal(tooLarge.status, 413);
    assert.match(String(tooLarge.json.message), /larger than 1048576 bytes/);
  } finally {
    api.close();
  }
});

test("request counts: by client and lab, method and resource (subresources apart); paths that name nothing are one 'other' row, however many", async () => {
  const { api, call } = await serve([{ token: "admin", user: "kubernetes-admin", rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }] }]);
  try {
    await call("GET", "/api/v1/namespaces/default/pods", { token: "admin" });
    await call("GET", "/api/v1/namespaces/default/pods", { token: "admin" });
    await call("GET", "/api/v1/namespaces/default/pods/a/exec?command=true", { token: "admin" });
    await call("GET", "/api", { token: "admin" });
    for (let i = 0; i < 50; i++) await call("GET", `/nothing/${i}`, { token: "admin" });
    const counts = Object.fromEntries(api.requestCounts);
    assert.equal(counts["client GET pods"], 2);
    assert.equal(counts["client GET pods/exec"], 1);
    assert.equal(counts["client GET /api"], 1);
    assert.equal(counts["client GET other"], 50);
    assert.ok(Object.keys(counts).length <= 5, Object.keys(counts).join(", "));
  } finally {
    api.close();
  }
});
