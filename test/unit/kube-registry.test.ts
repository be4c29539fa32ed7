// The Kubernetes registry through the official client over HTTP, against a stand-in API server
// seeded with stored Node objects: podCIDR as the subnet, annotations and the NetworkUnavailable
// condition by strategic merge on nodes/status, the errors users meet, and list+watch that
// resumes after a dropped connection and re-lists after 410 Gone.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeRegistry } from "../../src/store/kube-registry.ts";
import { startFakeNodesApi } from "../support/fake-nodes-api.ts";

const dir = mkdtempSync(join(tmpdir(), "gauze-kube-reg-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const netConf = join(dir, "net-conf.json");
writeFileSync(netConf, JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }));
const req = (node: string, ip: string) => ({ node, publicIp: ip, backendType: "vxlan", backendData: { vtepMac: "0e:47:ac:12:00:03" } });
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("the node's podCIDR is its subnet; annotations and NetworkUnavailable=False go to nodes/status by strategic merge", async () => {
  const api = await startFakeNodesApi(dir);
  const r = await KubeRegistry.open({ kubeconfig: api.kubeconfig, netConf });
  try {
    const l = await r.acquireLease(req("kind-worker", "172.18.0.3"), 3_600_000);
    assert.equal(l.subnet, "10.244.1.0/24");
    const p = api.patches.at(-1)! as { name: string; contentType: string; body: { metadata: { annotations: Record<string, string> }; status: { conditions: { type: string; status: string }[] } } };
    assert.equal(p.name, "kind-worker");
    assert.equal(p.contentType, "application/strategic-merge-patch+json");
    assert.deepEqual(p.body.metadata.annotations, { "gauze.dev/public-ip": "172.18.0.3", "gauze.dev/backend-type": "vxlan", "gauze.dev/backend-data": "{\"VtepMAC\":\"0e:47:ac:12:00:03\"}" });
    assert.equal(p.body.status.conditions[0]!.type, "NetworkUnavailable");
    assert.equal(p.body.status.conditions[0]!.status, "False");
    const conds = api.nodes.get("kind-worker")!.status.conditions!.map((c) => c.type);
    assert.deepEqual(conds, ["Ready", "NetworkUnavailable"], "Ready kept: a strategic merge, not a replacement");
    const leases = await r.listLeases();
    assert.deepEqual(leases.map((x) => `${x.node} ${x.subnet} ${x.publicIp} ${x.backendData.vtepMac}`).sort(), [
      "kind-control-plane 10.244.0.0/24 172.18.0.2 0e:47:ac:12:00:02", "kind-worker 10.244.1.0/24 172.18.0.3 0e:47:ac:12:00:03"]);
    assert.ok(api.requests.every((q) => !q.includes("/api/v1/nodes/kind-worker") || q.startsWith("GET") || q.startsWith("PATCH /api/v1/nodes/kind-worker/status")), "only nodes get and nodes/status patch");
  } finally {
    r.close();
    api.close();
  }
});

test("errors users meet: pod cidr not assigned, a podCIDR outside the Network, 403 from RBAC", async () => {
  const api = await startFakeNodesApi(dir);
  const r = await KubeRegistry.open({ kubeconfig: api.kubeconfig, netConf });
  try {
    await assert.rejects(r.acquireLease(req("kind-worker2", "172.18.0.4"), 60_000), /node kind-worker2 pod cidr not assigned \(.*--pod-network-cidr=10\.244\.0\.0\/16.*--allocate-node-cidrs=true/);
    await assert.rejects(r.acquireLease(req("kind-stray", "172.18.0.5"), 60_000), /podCIDR 10\.99\.7\.0\/24, outside the configured Network 10\.244\.0\.0\/16/);
    api.forbidPatches = true;
    await assert.rejects(r.acquireLease(req("kind-worker", "172.18.0.3"), 60_000), /HTTP 403.*needs nodes get\/list\/watch and nodes\/status patch/);
    await assert.rejects(r.acquireLease(req("kind-nope", "172.18.0.9"), 60_000), /reading node kind-nope: HTTP 404 not found \(--node must be this node.s name in Kubernetes/);
  } finally {
    r.close();
    api.close();
  }
});

test("list+watch: changes arrive; a dropped connection resumes from the last resourceVersion; 410 Gone re-lists", async () => {
  const api = await startFakeNodesApi(dir);
  const watcher = await KubeRegistry.open({ kubeconfig: api.kubeconfig, netConf });
  const writer = await KubeRegistry.open({ kubeconfig: api.kubeconfig, netConf });
  let changes = 0;
  const stop = watcher.watch(() => { changes++; });
  try {
    await wait(400);
    const lists0 = api.requests.filter((q) => q === "GET /api/v1/nodes").length;
    const base = changes;
    await writer.acquireLease(req("kind-worker", "172.18.0.3"), 60_000);
    await wait(300);
    assert.ok(changes > base, "the MODIFIED event arrived");

    api.drop();
    await wait(1500);
    const rewatch = api.requests.filter((q) => q.startsWith("GET /api/v1/nodes?") && q.includes("watch=true")).at(-1)!;
    assert.match(rewatch, /resourceVersion=1002/, "resumed from the last resourceVersion seen");
    assert.equal(api.requests.filter((q) => q === "GET /api/v1/nodes").length, lists0, "no re-list after a plain disconnect");

    api.gone();
    await wait(1500);
    assert.ok(api.requests.filter((q) => q === "GET /api/v1/nodes").length > lists0, "410 Gone: listed again");
    const before = changes;
    await writer.renewLease({ subnet: "10.244.1.0/24", node: "kind-worker", publicIp: "172.18.0.33", backendType: "vxlan", backendData: {}, expiresAt: 0 }, 60_000);
    await wait(300);
    assert.ok(changes > before, "and watching again");
    assert.equal((await watcher.listLeases()).find((l) => l.node === "kind-worker")?.publicIp, "172.18.0.33");
  } finally {
    stop();
    watcher.close();
    writer.close();
    api.close();
  }
});

test("the compiled executable speaks to the API the same way (store helper, --store kube)", async () => {
  const api = await startFakeNodesApi(dir);
  try {
    const bin = join(import.meta.dirname, "..", "..", "dist", "bin", "gauze");
    // Not spawnSync: that would block the fake server, which runs in this process.
    const { spawn } = await import("node:child_process");
    const out = await new Promise<string>((resolve) => {
      const p = spawn(bin, ["store", "leases", "--store", "kube", "--kubeconfig", api.kubeconfig, "--net-conf", netConf]);
      let s = "";
      p.stdout.on("data", (d: Buffer) => { s += d.toString(); });
      p.on("close", () => resolve(s));
    });
    const leases = JSON.parse(out) as { node: string; subnet: string }[];
    assert.deepEqual(leases.map((l) => `${l.node} ${l.subnet}`), ["kind-control-plane 10.244.0.0/24"]);
  } finally {
    api.close();
  }
});
