// observe and doctor against a cluster through its Kubernetes API only: a manifest-mode lab's
// API stand-in, with its kubeconfig, as a user would point them at a real cluster. The agents are
// reached by pods/exec into their containers (no TCP port of theirs); flows come from both nodes
// named by pod; a node whose agent container is stopped is named while the other answers; doctor
// reports the cluster's checks and both nodes; a user without pods/exec is told which permission
// is missing and which ClusterRole grants it; a bad context or namespace, a token the API does
// not know and a server that does not answer are one clear error each; `gauze ui --kubeconfig`
// draws the cluster from the API in a real browser, with a ping's flow on its edge.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, ROOT, must, observing, sh } from "./helpers.ts";

const lab = `hd${process.pid % 1000}cm`;
const MANIFEST = join(ROOT, "deploy", "kube-gauze.yml");
after(() => { sh([GAUZE, "lab", "down", "--name", lab]); });

const kubeconfig = (as?: string) => must([GAUZE, "lab", "kubeconfig", "--name", lab, ...(as ? ["--as", as] : [])]).trim();
const podIp = (pod: string) => (JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string; ip: string }[] }).pods.find((p) => p.name === pod)!.ip;

test("observe and doctor --kubeconfig: flows by pod from both nodes through pods/exec; a stopped agent is named, the other answers", { timeout: 180_000 }, async () => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--manifest", MANIFEST]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", `${lab}-control-plane`, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", `${lab}-worker`, "--name", lab]);
  must([GAUZE, "lab", "exec", "a", "--name", lab, "--", "ping", "-c", "2", "-W", "2", podIp("b")]);
  const kc = kubeconfig("observer");
  const r = sh([GAUZE, "observe", "--kubeconfig", kc, "--last", "500"]);
  assert.equal(r.status, 0, r.stderr);
  for (const node of [`${lab}-control-plane`, `${lab}-worker`]) {
    assert.match(r.stdout, new RegExp(`\\[${node}\\] default/a -> default/b icmp echo-request`), `${node}'s flows, named by pod:\n${r.stdout}`);
  }
  assert.match(r.stdout, new RegExp(`kube-gauze/kube-gauze-ds-${lab}-(control-plane|worker)`), "the agents' hostNetwork pods are named from the API");

  const doc = JSON.parse(sh([GAUZE, "doctor", "--kubeconfig", kc, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[] }[]; nodes: { node: string; report?: { checks: unknown[] }; error?: string }[] };
  assert.deepEqual(doc.nodes.map((n) => n.node).sort(), [`${lab}-control-plane`, `${lab}-worker`]);
  assert.ok(doc.nodes.every((n) => n.report && n.report.checks.length > 5), `each node's own doctor ran in its agent container: ${JSON.stringify(doc.nodes.map((n) => n.error))}`);
  // In the container, cni.plugins reads the node's bin dir (mounted read-only), so the installed plugin is found.
  for (const n of doc.nodes) {
    const c = (n.report!.checks as { id: string; status: string; evidence: string[] }[]).find((x) => x.id === "cni.plugins");
    assert.equal(c?.status, "ok", `${n.node}: ${JSON.stringify(c)}`);
  }
  for (const id of ["cluster.daemonset", "cluster.agent-pods", "cluster.nodes-ready", "cluster.pod-cidrs"]) assert.equal(doc.checks.find((c) => c.id === id)?.status, "ok", `${id}: ${JSON.stringify(doc.checks.find((c) => c.id === id))}`);

  // trace --kubeconfig sends nothing (the DaemonSet may not enter pod namespaces): it follows the
  // pod's own next ping, hop by hop on both nodes, through the API.
  const tr = spawn(GAUZE, ["trace", "--kubeconfig", kc, "default/a", "default/b", "--wait", "20", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
  let trOut = "", trErr = "";
  tr.stdout.on("data", (d: Buffer) => { trOut += d.toString(); });
  tr.stderr.on("data", (d: Buffer) => { trErr += d.toString(); });
  const trDone = new Promise<number>((res) => tr.on("close", (c) => res(c ?? 1)));
  for (let i = 0; i < 100 && !/following default\/a's next ping/.test(trErr); i++) await new Promise((res) => setTimeout(res, 100));
  assert.match(trErr, /needs the agent to enter it .* following default\/a's next ping to/, trErr);
  must([GAUZE, "lab", "exec", "a", "--name", lab, "--", "ping", "-c", "3", "-i", "0.3", "-W", "2", podIp("b")]);
  assert.equal(await trDone, 0, trErr + trOut);
  const trace = JSON.parse(trOut) as { replied: boolean; reachedDestination: boolean; probe: { passive?: string; icmpId?: number }; hops: { node: string; observationPoint: string; direction: string; ipLen: number }[] };
  assert.ok(trace.probe.passive && trace.probe.icmpId !== undefined && trace.replied && trace.reachedDestination, trOut);
  for (const node of [`${lab}-control-plane`, `${lab}-worker`]) {
    for (const dir of ["request", "reply"]) assert.ok(trace.hops.some((h) => h.node === node && h.direction === dir), `${node} ${dir}: ${trOut}`);
  }
  assert.ok(trace.hops.filter((h) => h.observationPoint === "from-pod" || h.observationPoint === "to-pod").every((h) => h.ipLen === 84), "a 64-byte ping is 84 bytes in the pods");
  const none = sh([GAUZE, "trace", "--kubeconfig", kc, "default/a", "default/b", "--wait", "1"]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /no ping from default\/a to .* in 1 s: nothing to follow \(start one from the pod, e\.g\. kubectl exec -n default a -- ping/);

  // The worker's agent container stopped: named, and the control plane still answers.
  must([GAUZE, "lab", "podman", "--name", lab, "--", "stop", "-t", "1", `gz-${lab}-${lab}-worker-gauze`]);
  await new Promise((res) => setTimeout(res, 1500)); // the lab's kubelet reports each second
  const down = sh([GAUZE, "observe", "--kubeconfig", kc, "--last", "500"]);
  assert.match(down.stderr, new RegExp(`node ${lab}-worker: agent not reachable \\(agent pod kube-gauze/kube-gauze-ds-${lab}-worker is not ready`), down.stderr);
  assert.match(down.stdout, new RegExp(`\\[${lab}-control-plane\\] default/a -> default/b`), "the other node answers");
  const doc2 = JSON.parse(sh([GAUZE, "doctor", "--kubeconfig", kc, "--json"]).stdout) as { ok: boolean; checks: { id: string; status: string; evidence: string[] }[] };
  assert.equal(doc2.ok, false);
  assert.match(doc2.checks.find((c) => c.id === "cluster.agent-pods")!.evidence.join("\n"), new RegExp(`${lab}-worker: agent pod .* is not ready`));
  must([GAUZE, "lab", "podman", "--name", lab, "--", "start", `gz-${lab}-${lab}-worker-gauze`]);
});

test("observe --kubeconfig --follow: an agent container restarting mid-stream is followed again, through the API", { timeout: 90_000 }, async () => {
  const kc = kubeconfig("observer");
  const obs = observing(["--kubeconfig", kc, "--last", "0", "--follow", "--protocol", "icmp"]);
  const { until } = obs;
  try {
    const worker = new RegExp(`\\[${lab}-worker\\] default/a -> default/b icmp echo-request`);
    await until(() => { must([GAUZE, "lab", "exec", "a", "--name", lab, "--", "ping", "-c", "1", "-W", "1", podIp("b")]); return worker.test(obs.out()); }, 20_000, "the worker's flows on the live stream");
    must([GAUZE, "lab", "podman", "--name", lab, "--", "restart", "-t", "1", `gz-${lab}-${lab}-worker-gauze`]);
    await until(() => /node .*-worker: following again/.test(obs.err()), 30_000, "the stream followed again after the restart");
    const before = obs.out().length;
    await until(() => { must([GAUZE, "lab", "exec", "a", "--name", lab, "--", "ping", "-c", "1", "-W", "1", podIp("b")]); return worker.test(obs.out().slice(before)); }, 20_000, "the worker's flows after its agent restarted");
  } finally {
    obs.stop();
  }
});

test("RBAC and bad input: a user without pods/exec is told the missing permission; a missing context or DaemonSet, a stale token, a server that does not answer: one clear error each", { timeout: 60_000 }, () => {
  const viewer = kubeconfig("viewer");
  const r = sh([GAUZE, "observe", "--kubeconfig", viewer, "--last", "5"]);
  assert.match(r.stderr, /User "viewer" cannot create resource "pods\/exec" in API group "" in the namespace "kube-gauze": pods\/exec \(create\) is the permission missing; bind the gauze-observer ClusterRole/, r.stderr);
  const ctx = sh([GAUZE, "observe", "--kubeconfig", viewer, "--context", "nope"]);
  assert.equal(ctx.status, 2);
  assert.match(ctx.stderr, new RegExp(`context "nope" is not in .*: it has ${lab}`));
  const ns = sh([GAUZE, "doctor", "--kubeconfig", kubeconfig(), "--gauze-namespace", "default"]);
  assert.equal(ns.status, 2);
  assert.match(ns.stderr, /namespace default has no DaemonSet kube-gauze-ds: is gauze installed on this cluster/);
  // A token the API does not know (expired, revoked, mistyped): 401, and what to do.
  const dir = join("/tmp", `gauze-${lab}-kubeconfigs`);
  mkdirSync(dir, { recursive: true });
  try {
    const admin = readFileSync(kubeconfig(), "utf8");
    assert.match(admin, /token: \S+/);
    const stale = join(dir, "stale-token");
    writeFileSync(stale, admin.replace(/token: \S+/, "token: 0123456789abcdef0123456789abcdef"), { mode: 0o600 });
    const r401 = sh([GAUZE, "observe", "--kubeconfig", stale, "--last", "5"]);
    assert.notEqual(r401.status, 0);
    assert.match(r401.stderr, /refused the credentials \(401 Unauthorized\) .*the token is wrong or expired; get a fresh kubeconfig/, r401.stderr);
    // A server that does not answer: run from a network namespace of the test's own, where nothing listens.
    const gone = join(dir, "no-server");
    writeFileSync(gone, admin.replace(/server: \S+/, "server: https://127.0.0.1:9"), { mode: 0o600 });
    const rNet = sh(["unshare", "--net", "sh", "-c", `ip link set lo up && exec ${GAUZE} doctor --kubeconfig ${gone}`]);
    assert.notEqual(rNet.status, 0);
    assert.match(rNet.stderr, /the API server at https:\/\/127\.0\.0\.1:9 does not answer \(ECONNREFUSED\).*check the kubeconfig's server and that the cluster runs/, rNet.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("trace --kubeconfig with the manifest's --trace-probes opt-in: the probe leaves the pod (ICMP and TCP), hop by hop on both nodes", { timeout: 180_000 }, async () => {
  const opt = `${lab}tp`;
  const file = join(ROOT, "artifacts", `kube-gauze-trace-probes-${process.pid}.yml`);
  mkdirSync(join(ROOT, "artifacts"), { recursive: true });
  writeFileSync(file, must([GAUZE, "manifests", "--trace-probes"]));
  try {
    sh([GAUZE, "lab", "down", "--name", opt]);
    must([GAUZE, "lab", "up", "--name", opt, "--manifest", file]);
    must([GAUZE, "lab", "pod", "run", "a", "--node", `${opt}-control-plane`, "--name", opt]);
    must([GAUZE, "lab", "pod", "run", "web", "--node", `${opt}-worker`, "--image", "nginx", "--name", opt]);
    const kc = must([GAUZE, "lab", "kubeconfig", "--name", opt, "--as", "observer"]).trim();
    const icmp = sh([GAUZE, "trace", "--kubeconfig", kc, "default/a", "default/web", "--json"]);
    assert.equal(icmp.status, 0, icmp.stderr + icmp.stdout);
    const t = JSON.parse(icmp.stdout) as { replied: boolean; unobserved: unknown[]; probe: { passive?: string; exit?: number }; hops: { node: string; direction: string; ipLen: number; observationPoint: string }[] };
    assert.equal(t.probe.passive, undefined, "an active probe, not a passive trace");
    assert.equal(t.probe.exit, 0);
    assert.ok(t.replied);
    for (const node of [`${opt}-control-plane`, `${opt}-worker`]) for (const dir of ["request", "reply"]) assert.ok(t.hops.some((h) => h.node === node && h.direction === dir), `${node} ${dir}: ${icmp.stdout}`);
    assert.ok(t.hops.filter((h) => h.observationPoint === "from-pod").every((h) => h.ipLen === 84), "gauze's own echo: 84 bytes, as ping's");
    const tcp = sh([GAUZE, "trace", "--kubeconfig", kc, "default/a", "default/web", "--protocol", "tcp", "--port", "80"]);
    assert.equal(tcp.status, 0, tcp.stderr + tcp.stdout);
    assert.match(tcp.stdout, /reached default\/web and back/);
    // Refused where the pod does not listen: an answer, so the trace says so.
    const closed = sh([GAUZE, "trace", "--kubeconfig", kc, "default/a", "default/web", "--protocol", "tcp", "--port", "81"]);
    assert.match(closed.stdout, /refused: RST from default\/web/);
  } finally {
    sh([GAUZE, "lab", "down", "--name", opt]);
    rmSync(file, { force: true });
  }
});

test("ui --kubeconfig: the same page for the cluster, from the API only: both nodes Ready, pods by namespace, a ping's flow on the edge between the nodes", { timeout: 120_000 }, async () => {
  const { chromium } = await import("playwright-core");
  const port = 12700 + (process.pid % 200);
  const ui = spawn(GAUZE, ["ui", "--kubeconfig", kubeconfig("observer"), "--port", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  let url = "", uiErr = "";
  ui.stderr!.on("data", (d: Buffer) => { uiErr += d.toString(); });
  const browser = await (async () => {
    await new Promise<void>((resolve, reject) => {
      ui.stdout!.on("data", (d: Buffer) => { const m = /http:\/\/\S+/.exec(d.toString()); if (m) { url = m[0]; resolve(); } });
      ui.on("exit", (c) => reject(new Error(`gauze ui exited ${c}: ${uiErr}`)));
    });
    return chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  })();
  const errors: string[] = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("pageerror", (e) => { errors.push(e.message); });
    await page.goto(url);
    const cp = `${lab}-control-plane`, wk = `${lab}-worker`;
    await page.waitForSelector(`g.node[data-node="${wk}"]`, { timeout: 10_000 });
    assert.deepEqual(await page.$$eval("g.node", (els) => els.map((e) => `${e.getAttribute("data-node")} ${e.getAttribute("data-ready")}`).sort()), [`${cp} true`, `${wk} true`]);
    const pods = await page.$$eval("g.pod", (els) => els.map((e) => `${e.getAttribute("data-pod")} ${e.getAttribute("data-node")}`).sort());
    for (const want of [`a ${cp}`, `b ${wk}`]) assert.ok(pods.some((p) => p.endsWith(want)), `${want} in ${pods.join(", ")}`);
    const key = [cp, wk].sort().join("|");
    const row = `tr.flow.forwarded[data-src-pod="default/a"][data-dst-pod="default/b"][data-point="to-network"]`;
    for (let i = 0; i < 20 && !(await page.$(row)); i++) {
      must([GAUZE, "lab", "exec", "a", "--name", lab, "--", "ping", "-c", "1", "-W", "1", podIp("b")]);
      await page.waitForTimeout(300);
    }
    await page.waitForSelector(row, { timeout: 5000, state: "attached" });
    await page.waitForSelector(`line.edge[data-edge="${key}"]`, { timeout: 5000, state: "attached" });
    assert.deepEqual(errors, [], "no script error on the page");
  } finally {
    await browser.close();
    ui.kill("SIGINT");
  }
});
