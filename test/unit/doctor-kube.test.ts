// The doctor's Kubernetes checks through the official client over HTTP, against stored API
// responses (no API server runs on this machine; see test/fixtures/kube).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kubeChecks } from "../../src/doctor/checks/kube.ts";
import type { DoctorContext } from "../../src/doctor/context.ts";
import { matchSignature } from "../../src/doctor/signatures.ts";
import { startFakeApi } from "../support/fake-apiserver.ts";

const dir = mkdtempSync(join(tmpdir(), "gauze-kube-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(scenario: "broken" | "healthy" | "empty") {
  const api = await startFakeApi(scenario, dir);
  try {
    const ctx = { kubeconfig: api.kubeconfig } as DoctorContext;
    const out: Record<string, { status: string; evidence: string[]; fix?: string }> = {};
    for (const c of kubeChecks) out[c.id] = await c.run(ctx);
    return { out, requests: api.requests };
  } finally {
    api.close();
  }
}

test("broken cluster: agents found outside kube-system, CrashLoops matched to br_netfilter and pod CIDR, NotReady nodes", async () => {
  const { out, requests } = await run("broken");
  assert.equal(out["kube.agent-pods"]!.status, "warn");
  assert.match(out["kube.agent-pods"]!.evidence[0]!, /3 in kube-flannel \(none in kube-system/);
  const crash = out["kube.crashloop"]!;
  assert.equal(crash.status, "fail");
  assert.match(crash.evidence.join("\n"), /kube-flannel\/kube-flannel-ds-q9vzt \(kube-flannel\) CrashLoopBackOff: the br_netfilter module is not loaded.*Failed to check br_netfilter/);
  assert.match(crash.evidence.join("\n"), /kube-flannel-ds-m4hrd .*no spec.podCIDR.*pod cidr not assigned/);
  assert.match(crash.fix ?? "", /modprobe br_netfilter/);
  assert.match(crash.fix ?? "", /--pod-network-cidr/);
  assert.ok(requests.includes("GET /api/v1/namespaces/kube-flannel/pods/kube-flannel-ds-q9vzt/log?container=kube-flannel&previous=true&tailLines=20"), requests.join("\n"));
  const nodes = out["kube.nodes"]!;
  assert.equal(nodes.status, "fail");
  assert.match(nodes.evidence.join("\n"), /kind-worker NotReady: container runtime network not ready: .*cni plugin not initialized/);
  assert.match(nodes.evidence.join("\n"), /kind-worker2: no spec\.podCIDR/);
});

test("healthy cluster: all ok, agents in gauze-system", async () => {
  const { out } = await run("healthy");
  assert.deepEqual(Object.values(out).map((o) => o.status), ["ok", "ok", "ok"]);
  assert.match(out["kube.agent-pods"]!.evidence[0]!, /2 in gauze-system/);
});

test("no agent pods anywhere is a failure, not a silent pass", async () => {
  const { out } = await run("empty");
  assert.equal(out["kube.agent-pods"]!.status, "fail");
  assert.match(out["kube.agent-pods"]!.evidence[0]!, /in any namespace/);
});

test("signatures", () => {
  assert.equal(matchSignature('failed to find plugin "bridge" in path [/opt/cni/bin]')?.id, "missing-plugin");
  assert.equal(matchSignature("open /run/flannel/subnet.env: no such file or directory")?.id, "subnet-file-missing");
  assert.equal(matchSignature("all fine"), undefined);
});
