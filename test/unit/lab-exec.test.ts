// pods/exec in the lab's API, driven by the official client (@kubernetes/client-node's Exec over
// its WebSocket handler): stdout and stderr on their channels, the exit code in the error
// channel's Status, stdin handed on and closed (v5), RBAC's create on pods/exec checked before
// the upgrade, and a pod that cannot be exec'd into answered with the API's Status.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import { NodesApi } from "../../src/lab/kube/apiserver.ts";
import { status } from "../../src/lab/kube/rbac.ts";
import { startInteractive } from "../../src/kernel/spawn.ts";

function kubeconfig(url: string, token: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: "lab", server: url, skipTLSVerify: true }], users: [{ name: "u", token }], contexts: [{ name: "lab", cluster: "lab", user: "u" }], currentContext: "lab" });
  return kc;
}

async function run(kc: k8s.KubeConfig, pod: string, command: string[], stdin?: string): Promise<{ out: string; err: string; st: k8s.V1Status }> {
  const out = new PassThrough(), err = new PassThrough();
  let o = "", e = "";
  out.on("data", (d: Buffer) => { o += d.toString(); });
  err.on("data", (d: Buffer) => { e += d.toString(); });
  const input = stdin === undefined ? null : new PassThrough();
  return new Promise((resolve, reject) => {
    new k8s.Exec(kc).exec("kube-gauze", pod, "gauze", command, out, err, input, false, (st) => resolve({ out: o, err: e, st })).then(() => {
      if (input) input.end(stdin);
    }, reject);
  });
}

function labApi(): NodesApi {
  const api = new NodesApi();
  api.store.put("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "kube-gauze" } });
  for (const name of ["agent-a", "agent-b"]) api.store.put("pods", { apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "kube-gauze" }, spec: { nodeName: "n1", containers: [{ name: "gauze" }] } });
  api.grants = [
    { token: "observer", user: "alice", rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] }, { apiGroups: [""], resources: ["pods/exec"], verbs: ["create"] }] },
    { token: "viewer", user: "bob", rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] }] },
  ];
  api.exec = async (r) => {
    if (r.pod === "agent-b") return status(500, "InternalError", `unable to upgrade connection: container not found ("${r.container}")`);
    return () => {
      const c = startInteractive(r.command);
      return { stdout: c.stdout, stderr: c.stderr, stdin: c.stdin, kill: () => c.kill(), exited: new Promise((res) => c.on("close", (code) => res(code ?? 1))) };
    };
  };
  return api;
}

test("the official client's exec: channels, exit status, stdin", async () => {
  const api = labApi();
  const url = await api.listen();
  try {
    const kc = kubeconfig(url, "observer");
    const a = await run(kc, "agent-a", ["sh", "-c", "echo out; echo err >&2"]);
    assert.equal(a.out, "out\n");
    assert.equal(a.err, "err\n");
    assert.equal(a.st.status, "Success");
    const b = await run(kc, "agent-a", ["sh", "-c", "exit 3"]);
    assert.equal(b.st.status, "Failure");
    assert.equal(b.st.reason, "NonZeroExitCode");
    assert.equal(b.st.details?.causes?.[0]?.message, "3");
    const c = await run(kc, "agent-a", ["cat"], "through stdin\n");
    assert.equal(c.out, "through stdin\n", "stdin reaches the command and its end (v5 close) ends it");
    assert.ok(api.requests.some((r) => r.startsWith("GET /api/v1/namespaces/kube-gauze/pods/agent-a/exec?")));
  } finally {
    api.close();
  }
});

test("exec is refused before the upgrade: RBAC, unknown pod, a container that is not running", async () => {
  const api = labApi();
  const url = await api.listen();
  try {
    await assert.rejects(run(kubeconfig(url, "viewer"), "agent-a", ["true"]), (e: { message?: string }) => /403/.test(String(e.message)), "the client sees the refused upgrade");
    const plain = async (token: string, pod: string) => {
      const r = await fetch(`${url}/api/v1/namespaces/kube-gauze/pods/${pod}/exec?command=true&stdout=true&container=gauze`, { headers: { authorization: `Bearer ${token}` } });
      return { code: r.status, body: await r.json() as { message: string } };
    };
    const denied = await plain("viewer", "agent-a");
    assert.equal(denied.code, 403);
    assert.equal(denied.body.message, 'pods "agent-a" is forbidden: User "bob" cannot create resource "pods/exec" in API group "" in the namespace "kube-gauze"');
    assert.equal((await plain("observer", "nope")).code, 404);
    const stopped = await plain("observer", "agent-b");
    assert.equal(stopped.code, 500);
    assert.match(stopped.body.message, /container not found \("gauze"\)/);
    assert.equal((await plain("observer", "agent-a")).code, 400, "a plain GET is asked to upgrade");
    await assert.rejects(run(kubeconfig(url, "observer"), "agent-b", ["true"]), (e: { message?: string }) => /500/.test(String(e.message)));
  } finally {
    api.close();
  }
});
