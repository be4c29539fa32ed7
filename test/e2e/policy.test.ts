// NetworkPolicy in a lab, end to end: policies go into the lab's Kubernetes API (lab apply, lab
// label), every node's agent watches them and programs its nftables table, and real probes from
// inside pods show what passes: TCP, UDP and SCTP (an INIT through a raw socket; this kernel has
// no SCTP sockets) isolated by a deny-all and let through again when it goes; each denied packet
// named with its policy in observe and counted in /metrics; an audit-mode policy denies nothing
// and says AUDIT; a policy the agent cannot parse fails closed for the pods it selects only, and
// is named. Then the upstream suite's 48 cases, as `gauze lab policy-test` runs them.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get } from "node:http";
import { spawn } from "node:child_process";
import { GAUZE, must, sh } from "./helpers.ts";

const lab = `t${process.pid % 1000}np`;
const cp = `${lab}-control-plane`;
const wk = `${lab}-worker`;
const dir = mkdtempSync(join(tmpdir(), "gauze-np-"));

before(() => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "2"]);
  must([GAUZE, "lab", "pod", "run", "web/server", "--node", wk, "--image", "agnhost", "--labels", "app=server", "--ports", "http:80/TCP,dns:80/UDP,sig:81/SCTP", "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "client", "--node", cp, "--image", "agnhost", "--labels", "app=client", "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "web/neighbour", "--node", cp, "--image", "agnhost", "--labels", "app=neighbour", "--name", lab]);
});
after(() => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  rmSync(dir, { recursive: true, force: true });
});

const yaml = (name: string, text: string) => { const f = join(dir, `${name}.yml`); writeFileSync(f, text); return f; };
const probe = (from: string, to: string, port: number, protocol: string) =>
  (JSON.parse(sh([GAUZE, "lab", "probe", from, to, "--port", String(port), "--protocol", protocol, "--timeout", "700ms", "--name", lab, "--json"]).stdout) as { result: string }).result;
const metrics = (node: string) => must(["nsenter", `--net=/run/netns/gz-${node}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]);
interface PolicyStatus { generation: number; isolatedPods: number; invalid: { policy: string; problems: string[] }[] }
/** The agent's /v1/policy, over its unix socket. */
const policyStatus = (node: string) => new Promise<PolicyStatus>((resolve, reject) => {
  get({ socketPath: `/var/lib/gauze/lab/${lab}/nodes/${node}/run/gauze/agent.sock`, path: "/v1/policy" }, (res) => {
    let body = "";
    res.on("data", (d: Buffer) => { body += d.toString(); });
    res.on("end", () => { try { resolve(JSON.parse(body) as PolicyStatus); } catch (e) { reject(e); } });
  }).on("error", reject);
});
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Until `f` holds, or 5 s (the rules are in force within tens of ms; a probe may race the first). */
async function eventually(what: string, f: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 50; i++) { if (await f()) return; await wait(100); }
  assert.fail(`never: ${what}`);
}

const denyAll = yaml("deny-all", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: web}
spec: {podSelector: {}, policyTypes: [Ingress]}
`);

test("lab pods in namespaces with labels and ports; lab probe says connected and refused", () => {
  const st = JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string }[] };
  assert.equal(st.pods.length, 3);
  assert.deepEqual([probe("client", "web/server", 80, "tcp"), probe("client", "web/server", 80, "udp"), probe("client", "web/server", 81, "sctp")], ["connected", "connected", "connected"]);
  assert.equal(probe("client", "web/server", 82, "tcp"), "refused");
  assert.equal(probe("client", "web/server", 82, "udp"), "refused");
  // The pods are in the API as Pods, with their labels and ports, in their namespaces.
  const kc = must([GAUZE, "lab", "kubeconfig", "--name", lab]).trim();
  assert.match(kc, /admin\.kubeconfig$/);
  const bad = sh([GAUZE, "lab", "pod", "run", "x", "--node", wk, "--labels", "app=a b", "--name", lab]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /label value "a b"/);
  assert.match(sh([GAUZE, "lab", "pod", "run", "y", "--node", wk, "--image", "agnhost", "--ports", "80/ICMP", "--name", lab]).stderr, /--ports "80\/ICMP": write name:port\/PROTOCOL/);
});

test("a deny-all isolates TCP, UDP and SCTP at once, each drop is named with the policy in observe and counted; deleting it lets them through", async () => {
  assert.match(must([GAUZE, "lab", "apply", "-f", denyAll, "--name", lab]), /networkpolicy\/deny-all in web created/);
  // Readiness to wait on instead of sleeping: every node has the API's newest generation.
  const ps = sh([GAUZE, "policy", "status", "--wait", "10", "--name", lab]);
  assert.equal(ps.status, 0, ps.stdout + ps.stderr);
  assert.match(ps.stdout, /^policy generation \d+ programmed on 2\/2 nodes\n/);
  assert.equal((await policyStatus(wk)).isolatedPods, 1);
  assert.deepEqual([probe("client", "web/server", 80, "tcp"), probe("client", "web/server", 80, "udp"), probe("client", "web/server", 81, "sctp")], ["timeout", "timeout", "timeout"]);
  // A pod of the same namespace is isolated too (podSelector {} selects every pod of web).
  assert.equal(probe("web/neighbour", "web/server", 80, "tcp"), "timeout");
  await wait(1200);
  const lines = must([GAUZE, "observe", "--name", lab, "--node", wk, "--to-pod", "web/server", "--verdict", "dropped", "--last", "50"]);
  assert.match(lines, /DROPPED \(dropped: policy web\/deny-all \(ingress isolated; no rule allows 10\.244\.\d+\.\d+ -> :80\/TCP\)\)/);
  assert.match(lines, /sctp .*DROPPED \(dropped: policy web\/deny-all/);
  assert.match(metrics(wk), /gauze_policy_rule_packets\{policy="web\/deny-all",rule="deny",direction="ingress"[^}]*\} [1-9]/);
  // trace stops where the policy dropped it and names it (not a FORWARD-chain fault).
  const tr = JSON.parse(sh([GAUZE, "trace", "client", "web/server", "--protocol", "tcp", "--port", "80", "--name", lab, "--json"]).stdout) as { stopped?: { node: string; policy?: string; check?: string; why: string } };
  assert.deepEqual([tr.stopped?.node, tr.stopped?.policy, tr.stopped?.check], [wk, "web/deny-all", "agent.network-policy"], JSON.stringify(tr.stopped));
  assert.match(tr.stopped!.why, /^dropped: policy web\/deny-all \(ingress isolated; no rule allows/);
  assert.match(must([GAUZE, "lab", "apply", "-f", denyAll, "--name", lab]), /unchanged/);
  assert.match(must([GAUZE, "lab", "delete", "-f", denyAll, "--name", lab]), /deleted/);
  await eventually("connected again", () => probe("client", "web/server", 80, "tcp") === "connected");
  assert.equal(probe("client", "web/server", 81, "sctp"), "connected");
});

test("a relabelled pod gains and loses what a policy allows, live", async () => {
  const allow = yaml("allow-client", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client, namespace: web}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: friend}}}], ports: [{port: http}]}]
`);
  must([GAUZE, "lab", "apply", "-f", allow, "--name", lab]);
  await eventually("isolated", () => probe("client", "web/server", 80, "tcp") === "timeout");
  assert.match(must([GAUZE, "lab", "label", "pod", "client", "role=friend", "--name", lab]), /pod\/default\/client labeled: app=client,role=friend/);
  await eventually("the friend connects on the named port", () => probe("client", "web/server", 80, "tcp") === "connected");
  assert.equal(probe("client", "web/server", 80, "udp"), "timeout", "the named port is http:80/TCP only");
  must([GAUZE, "lab", "label", "pod", "client", "role-", "--name", lab]);
  await eventually("no friend any more", () => probe("client", "web/server", 80, "tcp") === "timeout");
  must([GAUZE, "lab", "delete", "-f", allow, "--name", lab]);
});

test("an audit-mode policy denies nothing and says AUDIT; a policy the agent cannot parse fails closed for its pods only and is named", async () => {
  const audit = yaml("audit", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: would-deny, namespace: web, annotations: {gauze.dev/policy-mode: audit}}
spec: {podSelector: {matchLabels: {app: server}}, policyTypes: [Ingress]}
`);
  must([GAUZE, "lab", "apply", "-f", audit, "--name", lab]);
  await wait(300);
  assert.equal(probe("client", "web/server", 80, "tcp"), "connected");
  await wait(1200);
  assert.match(must([GAUZE, "observe", "--name", lab, "--node", wk, "--verdict", "audit", "--last", "20"]), /AUDIT \(.*would-deny/);
  must([GAUZE, "lab", "delete", "-f", audit, "--name", lab]);
  // The lab's API stores a NetworkPolicy unvalidated, as an API server without validation would.
  const broken = yaml("broken", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: web}
spec: {podSelector: {matchLabels: {app: server}}, ingress: [{ports: [{port: 80, protocol: ICMP}]}]}
`);
  must([GAUZE, "lab", "apply", "-f", broken, "--name", lab]);
  await eventually("named as invalid", async () => (await policyStatus(wk)).invalid.some((x) => x.policy === "web/broken"));
  assert.equal(probe("client", "web/server", 80, "tcp"), "timeout", "fails closed for the pod it selects");
  assert.equal(probe("client", "web/neighbour", 80, "tcp"), "connected", "and only for it");
  assert.match(metrics(wk), /gauze_policy_invalid\{[^}]*\} 1/);
  must([GAUZE, "lab", "delete", "-f", broken, "--name", lab]);
  await eventually("open again", () => probe("client", "web/server", 80, "tcp") === "connected");
});

test("policy explain walks each policy from the API's state; what-if replays observed flows against a proposed policy", async () => {
  must([GAUZE, "lab", "apply", "-f", denyAll, "--name", lab]);
  await eventually("isolated", () => probe("client", "web/server", 80, "tcp") === "timeout");
  const ex = sh([GAUZE, "policy", "explain", "client", "web/server", "--port", "80", "--name", lab]);
  assert.equal(ex.status, 3, ex.stderr);
  assert.match(ex.stdout, /ingress to web\/server:\n  isolated by web\/deny-all\n/);
  assert.match(ex.stdout, /verdict: dropped: policy web\/deny-all \(ingress isolated; no rule allows 10\.244\.\d+\.\d+ -> :80\/TCP\)/);
  assert.equal(sh([GAUZE, "policy", "explain", "web/server", "client", "--port", "80", "--name", lab]).status, 0, "the other way is not isolated");
  await wait(1200);
  const proposal = yaml("proposal", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: web}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}], ports: [{port: 80, protocol: TCP}]}]
`);
  const wi = sh([GAUZE, "policy", "what-if", "-f", proposal, "--name", lab, "--json"]);
  assert.equal(wi.status, 3, wi.stderr);
  const r = JSON.parse(wi.stdout) as { changes: { from: string; to: string; port: number; protocol: string; now: string; proposed: string }[] };
  assert.ok(r.changes.some((c) => c.from === "default/client" && c.to === "web/server" && c.port === 80 && c.protocol === "TCP" && c.now === "denied" && c.proposed === "allowed"), wi.stdout);
  assert.ok(!r.changes.some((c) => c.protocol === "UDP" && c.proposed === "allowed"), "UDP stays denied");
  assert.match(sh([GAUZE, "policy", "explain", "ghost", "web/server", "--port", "80", "--name", lab]).stderr, /no pod default\/ghost in the API/);
  must([GAUZE, "lab", "delete", "-f", denyAll, "--name", lab]);
  await eventually("open again", () => probe("client", "web/server", 80, "tcp") === "connected");
});

test("bad input to lab apply, label and probe is a clear error", () => {
  const notK8s = yaml("not", "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\n");
  assert.match(sh([GAUZE, "lab", "apply", "-f", notK8s, "--name", lab]).stderr, /serves Namespace \(v1\), Node \(v1\), Pod \(v1\), NetworkPolicy \(networking\.k8s\.io\/v1\), not Deployment apps\/v1/);
  assert.match(sh([GAUZE, "lab", "apply", "-f", yaml("noname", "kind: Namespace\napiVersion: v1\nmetadata: {}\n"), "--name", lab]).stderr, /needs metadata\.name/);
  assert.match(sh([GAUZE, "lab", "label", "pod", "ghost", "a=b", "--name", lab]).stderr, /has no pod default\/ghost/);
  assert.match(sh([GAUZE, "lab", "label", "svc", "x", "a=b", "--name", lab]).stderr, /label a pod or a namespace/);
  assert.match(sh([GAUZE, "lab", "probe", "client", "web/server", "--port", "0", "--name", lab]).stderr, /--port 0: give a port from 1 to 65535/);
  assert.match(sh([GAUZE, "lab", "policy-test", "--case", "nope", "--name", lab]).stderr, /--case nope: no such case; the cases are deny-ingress-all, /);
});

test("the upstream suite's 48 cases pass end to end in the lab: every expected matrix is the probed one", () => {
  // Its own namespaces x, y, z: the pods above are left alone.
  const r = sh([GAUZE, "lab", "policy-test", "--name", lab, "--json"]);
  const out = JSON.parse(r.stdout) as { passed: number; failed: number; cases: { id: string; ok: boolean; error?: string; checks: { diff: { ok: boolean; text: string } }[] }[] };
  const failed = out.cases.filter((c) => !c.ok).map((c) => `${c.id}: ${c.error ?? c.checks.filter((k) => !k.diff.ok).map((k) => `\n${k.diff.text}`).join("")}`);
  assert.deepEqual(failed, []);
  assert.equal(out.passed, 48);
  assert.equal(r.status, 0);
});

test("on the eBPF datapath the 48 cases pass too: pods a policy isolates go the classic way, never past the rules", () => {
  const ebpf = `${lab}e`;
  sh([GAUZE, "lab", "down", "--name", ebpf]);
  try {
    const up = sh([GAUZE, "lab", "up", "--name", ebpf, "--datapath", "ebpf"]);
    assert.equal(up.status, 0, up.stderr);
    const r = sh([GAUZE, "lab", "policy-test", "--name", ebpf, "--json"]);
    const out = JSON.parse(r.stdout) as { passed: number; cases: { id: string; ok: boolean; error?: string; checks: { diff: { ok: boolean; text: string } }[] }[] };
    const failed = out.cases.filter((c) => !c.ok).map((c) => `${c.id}: ${c.error ?? c.checks.filter((k) => !k.diff.ok).map((k) => `\n${k.diff.text}`).join("")}`);
    assert.deepEqual(failed, []);
    assert.equal(out.passed, 48);
  } finally {
    sh([GAUZE, "lab", "down", "--name", ebpf]);
  }
});

test("over IPv6 (a dual-stack lab) the 48 cases pass too, the probes going to the pods' IPv6 addresses", () => {
  const v6 = `${lab}6`;
  sh([GAUZE, "lab", "down", "--name", v6]);
  try {
    const up = sh([GAUZE, "lab", "up", "--name", v6, "--ipv6"]);
    assert.equal(up.status, 0, up.stderr);
    const r = sh([GAUZE, "lab", "policy-test", "--name", v6, "--ipv6", "--json"]);
    const out = JSON.parse(r.stdout) as { passed: number; cases: { id: string; ok: boolean; error?: string; checks: { diff: { ok: boolean; text: string } }[] }[] };
    assert.deepEqual(out.cases.filter((c) => !c.ok).map((c) => `${c.id}: ${c.error ?? c.checks.filter((k) => !k.diff.ok).map((k) => `\n${k.diff.text}`).join("")}`), []);
    assert.equal(out.passed, 48);
  } finally {
    sh([GAUZE, "lab", "down", "--name", v6]);
  }
});

/** A 4 s iperf3 stream from client to web/server, a deny-all applied 1.5 s in: bytes per half second, in order. */
async function streamAcrossAChange(name: string): Promise<number[]> {
  const st = JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { pods: { name: string; ip: string }[] };
  const serverIp = st.pods.find((p) => p.name === "server")!.ip;
  const server = spawn("nsenter", [`--net=/run/netns/gz-${name}-pod-web.server`, "iperf3", "-s", "-1"], { stdio: "ignore" });
  try {
    await wait(300);
    const client = spawn("timeout", ["12", "nsenter", `--net=/run/netns/gz-${name}-pod-client`, "iperf3", "-c", serverIp, "-t", "4", "-i", "0.5", "--forceflush"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    client.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    await wait(1500);
    must([GAUZE, "lab", "apply", "-f", denyAll, "--name", name]);
    must([GAUZE, "policy", "status", "--wait", "10", "--name", name]);
    await new Promise((r) => client.on("close", r));
    // "[  5]   1.50-2.00   sec  1.23 GBytes  ..." per interval, the sender's lines.
    return [...out.matchAll(/^\[\s*\d+\]\s+[\d.]+-[\d.]+\s+sec\s+([\d.]+)\s+(\w?)Bytes/gm)].slice(0, 8).map((m) => Number(m[1]) * ({ K: 1e3, M: 1e6, G: 1e9 }[m[2] as "K"] ?? 1));
  } finally {
    server.kill();
    sh([GAUZE, "lab", "delete", "-f", denyAll, "--name", name]);
  }
}

test("established connections: kept across a policy change by default (conntrack), cut by it with --policy-established recheck", async () => {
  const kept = await streamAcrossAChange(lab);
  assert.ok(kept.length >= 7 && kept.every((b) => b > 0), `kept: every interval carries bytes: ${kept.join(", ")}`);
  assert.equal(probe("client", "web/server", 80, "tcp"), "connected", "the deny-all is gone again");
  const re = `${lab}r`;
  sh([GAUZE, "lab", "down", "--name", re]);
  try {
    must([GAUZE, "lab", "up", "--name", re, "--policy-recheck"]);
    must([GAUZE, "lab", "pod", "run", "web/server", "--node", wk.replace(lab, re), "--image", "agnhost", "--labels", "app=server", "--name", re]);
    must([GAUZE, "lab", "pod", "run", "client", "--node", cp.replace(lab, re), "--image", "agnhost", "--labels", "app=client", "--name", re]);
    const cut = await streamAcrossAChange(re);
    assert.ok(cut.slice(0, 2).every((b) => b > 0), `the stream ran before the change: ${cut.join(", ")}`);
    assert.ok(cut.slice(4).every((b) => b === 0), `recheck: nothing after the change: ${cut.join(", ")}`);
  } finally {
    sh([GAUZE, "lab", "down", "--name", re]);
  }
});
