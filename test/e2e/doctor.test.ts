// gauze doctor against the fault table: each fault is injected into a healthy 3-node lab; the
// test shows the breakage is real (traffic or readiness), that doctor fails exactly the expected
// check with evidence, that --fix (where it applies) brings traffic back and doctor to all ok,
// and that `lab fix` leaves the lab healthy for the next fault.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GAUZE, sh, must } from "./helpers.ts";
import { startFakeApi } from "../support/fake-apiserver.ts";

const name = `t${process.pid % 1000}doc`;
const cp = `${name}-control-plane`;
const wk = `${name}-worker`;
const g = (...args: string[]) => sh([GAUZE, ...args]);
let bIp = "";

interface Report { ok: boolean; checks: { id: string; status: string; evidence: string[]; fix?: string }[]; ms: number }
const doctor = (node: string, ...extra: string[]) => {
  const r = g("doctor", "--node", node, "--name", name, "--json", ...extra);
  return { code: r.status, report: JSON.parse(r.stdout) as Report };
};
const ping = (size = 56) => g("lab", "exec", "a", "--name", name, "--", "ping", "-c", "1", "-W", "1", "-s", String(size), bIp).status === 0;
const httpIn = (node: string, path: string) => Number(sh(["nsenter", `--net=/run/netns/gz-${node}`, process.execPath, "-e",
  `fetch("http://127.0.0.1:9317${path}").then(r=>console.log(r.status),()=>console.log(0))`]).stdout.trim());
const podPhase = (pod: string) => (JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { pods: { name: string; phase: string; reason?: string }[] }).pods.find((p) => p.name === pod)!;

before(() => {
  sh([GAUZE, "lab", "down", "--name", name]);
  assert.equal(g("lab", "up", "--name", name, "--nodes", "3").status, 0);
  assert.equal(g("lab", "pod", "run", "a", "--node", "control-plane", "--name", name).status, 0);
  assert.equal(g("lab", "pod", "run", "b", "--node", "worker", "--image", "nginx", "--name", name).status, 0);
  bIp = podPhase("b") && (JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { pods: { name: string; ip: string }[] }).pods.find((p) => p.name === "b")!.ip;
});
after(() => { sh([GAUZE, "lab", "down", "--name", name]); });

test("doctor on a healthy 3-node lab: every check ok, each node in under 2 s", () => {
  for (const node of [cp, wk, `${name}-worker2`]) {
    const t0 = Date.now();
    const { code, report } = doctor(node);
    const ms = Date.now() - t0;
    assert.equal(code, 0);
    assert.deepEqual(report.checks.filter((c) => c.status !== "ok").map((c) => `${c.id}: ${c.evidence.join("; ")}`), []);
    assert.ok(report.checks.length >= 19);
    assert.ok(ms < 2000, `${node}: ${ms} ms`);
  }
  const text = g("doctor", "--node", cp, "--name", name);
  assert.match(text.stdout, /^kernel$/m);
  assert.match(text.stdout, /✔ overlay\.peers/);
});

interface Row {
  fault: string;
  node: string;
  /** The checks doctor fails, in report order. */
  ids: string[];
  /** The symptom, shown before doctor runs. */
  broken: () => void;
  /** After doctor --fix: the symptom is gone. Undefined: the fix is advice only. */
  healed?: () => void;
}

const table: Row[] = [
  { fault: "no-br-netfilter", node: cp, ids: ["kernel.br-netfilter"],
    broken: () => assert.equal(httpIn(cp, "/readyz"), 503, "the agent reports not ready"),
    healed: () => assert.equal(httpIn(cp, "/readyz"), 200) },
  { fault: "no-cni-config", node: wk, ids: ["cni.config"],
    broken: () => {
      g("lab", "pod", "run", "late1", "--node", "worker", "--name", name);
      const p = podPhase("late1");
      assert.equal(p.phase, "Pending");
      assert.match(p.reason ?? "", /cni plugin not initialized/);
    },
    healed: () => assert.equal(podPhase("late1").phase, "Running") },
  { fault: "missing-plugin", node: wk, ids: ["cni.plugins"],
    broken: () => {
      g("lab", "pod", "run", "late2", "--node", "worker", "--name", name);
      const p = podPhase("late2");
      assert.equal(p.phase, "ContainerCreating");
      assert.match(p.reason ?? "", /failed to find plugin "gauze" in path \[/);
    },
    healed: () => assert.equal(podPhase("late2").phase, "Running") },
  { fault: "ip-forward-off", node: cp, ids: ["kernel.ip-forward"], broken: () => assert.equal(ping(), false), healed: () => assert.ok(ping()) },
  { fault: "mtu-mismatch", node: wk, ids: ["overlay.mtu"], broken: () => { assert.ok(ping(), "small packets pass"); assert.equal(ping(1400), false, "big ones vanish"); } },
  // The fault stops the agent first: a running agent puts hand-made drift back within a second.
  { fault: "stale-fdb", node: cp, ids: ["agent.running", "overlay.peers"], broken: () => assert.equal(ping(), false), healed: () => assert.ok(ping()) },
  { fault: "agent-down", node: wk, ids: ["agent.running"], broken: () => assert.equal(httpIn(wk, "/healthz"), 0), healed: () => assert.equal(httpIn(wk, "/healthz"), 200) },
  { fault: "forward-drop", node: cp, ids: ["filtering.forward"], broken: () => assert.equal(ping(), false), healed: () => assert.ok(ping()) },
  { fault: "vxlan-port-blocked", node: wk, ids: ["overlay.vxlan-port"], broken: () => assert.equal(ping(), false) },
];

for (const row of table) {
  test(`fault ${row.fault}: broken for real, doctor fails ${row.ids.join(" and ")}${row.healed ? ", --fix repairs it" : " (advice only)"}`, { timeout: 60_000 }, () => {
    assert.ok(ping(), "healthy before");
    const b = g("lab", "break", row.fault, "--node", row.node, "--name", name);
    assert.equal(b.status, 0, b.stderr);
    try {
      row.broken();
      const { code, report } = doctor(row.node);
      assert.equal(code, 1, "doctor exits non-zero on a failure");
      const failed = report.checks.filter((c) => c.status === "fail");
      assert.deepEqual(failed.map((c) => c.id), row.ids, JSON.stringify(failed));
      assert.ok(failed.every((c) => c.evidence.length > 0 && c.fix), "evidence and a fix");
      // A fix can be pasted: no placeholder, and every gauze command names this lab (two labs make a bare one fail).
      for (const c of report.checks.filter((x) => x.fix)) {
        assert.doesNotMatch(c.fix!, /<node>|check the agent's log/, `${c.id}: ${c.fix}`);
        for (const cmd of c.fix!.match(/gauze (?:lab|doctor) [^,;()&]*/g) ?? []) assert.match(cmd, new RegExp(`--name ${name}\\b`), `${c.id}: ${cmd}`);
      }
      if (row.healed) {
        const f = doctor(row.node, "--fix");
        assert.equal(f.code, 0, JSON.stringify(f.report.checks.filter((c) => c.status !== "ok")));
        row.healed();
        assert.deepEqual(doctor(row.node).report.checks.filter((c) => c.status !== "ok").map((c) => c.id), [], "all ok after --fix");
      }
    } finally {
      assert.equal(g("lab", "fix", "--name", name).status, 0);
    }
    assert.ok(ping(), "healthy again after lab fix");
    assert.ok(ping(1400), "full-size packets too");
  });
}

test("--kubeconfig: the compiled executable's Kubernetes checks, over HTTP, against stored API responses", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gauze-kube-e2e-"));
  const api = await startFakeApi("broken", dir);
  try {
    // --host in this (the test's) namespace: the fake API listens on its loopback. Read-only.
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      const p = spawn(GAUZE, ["doctor", "--host", "--kubeconfig", api.kubeconfig, "--json"]);
      let out = "";
      p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
      p.on("close", (code) => resolve({ code: code ?? 1, out }));
    });
    const report = JSON.parse(r.out) as Report;
    const kube = Object.fromEntries(report.checks.filter((c) => c.id.startsWith("kube.")).map((c) => [c.id, c]));
    assert.equal(kube["kube.crashloop"]?.status, "fail");
    assert.match(kube["kube.crashloop"]!.evidence.join("\n"), /Failed to check br_netfilter/);
    assert.equal(kube["kube.nodes"]?.status, "fail");
    assert.equal(kube["kube.agent-pods"]?.status, "warn");
    assert.equal(r.code, 1);
  } finally {
    api.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad doctor and break input", () => {
  assert.match(g("lab", "break", "gremlins", "--name", name).stderr, /unknown fault "gremlins": one of no-br-netfilter/);
  assert.match(g("doctor", "--node", "nope", "--name", name).stderr + g("doctor", "--node", "nope", "--name", name).stdout, /no node "nope"/);
});
