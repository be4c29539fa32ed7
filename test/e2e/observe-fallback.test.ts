// An agent that may not use eBPF (its capabilities' bounding set without CAP_BPF, CAP_PERFMON and
// CAP_SYS_ADMIN, as a DaemonSet that forgot them) falls back to the packet ring and tracefs by
// itself (--observer auto), says so once in its log, in /metrics, in `gauze observe` and in
// doctor's kernel.ebpf check naming what it lacks, and keeps observing: a ping is seen.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { openSync, readFileSync, closeSync } from "node:fs";
import { spawn } from "node:child_process";
import { GAUZE, must, sh } from "./helpers.ts";

const lab = `t${process.pid % 1000}fb`;
const cp = `${lab}-control-plane`, wk = `${lab}-worker`;
const log = `/tmp/gauze-${lab}-agent.log`;
let pid = 0;
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "2"]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", cp, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", wk, "--name", lab]);
  // The worker's agent again, exactly as the lab ran it, but with eBPF's capabilities out of reach.
  const st = JSON.parse(readFileSync(`/var/lib/gauze/lab/${lab}/lab.json`, "utf8")) as { nodes: { name: string; agentPid: number }[] };
  const argv = readFileSync(`/proc/${st.nodes.find((n) => n.name === wk)!.agentPid}/cmdline`, "utf8").split("\0").filter(Boolean);
  must([GAUZE, "lab", "node", "stop-agent", wk, "--name", lab]);
  const fd = openSync(log, "w");
  const p = spawn("nsenter", [`--net=/run/netns/gz-${wk}`, "setpriv", "--bounding-set=-bpf,-perfmon,-sys_admin", "--inh-caps=-bpf,-perfmon,-sys_admin", ...argv], { stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  pid = p.pid!;
  p.unref();
  for (let i = 0; i < 100 && !/"msg":"ready/.test(readFileSync(log, "utf8")); i++) await wait(100);
});
after(() => {
  if (pid) { try { process.kill(pid, "SIGTERM"); } catch { /* gone */ } }
  sh([GAUZE, "lab", "down", "--name", lab]);
});

test("without CAP_BPF the agent falls back to the packet ring, says so once (log, /metrics, observe, doctor) and still observes", async () => {
  const text = readFileSync(log, "utf8");
  assert.match(text, /"msg":"ready/, text.slice(-500));
  assert.equal(text.split("\n").filter((l) => l.includes("eBPF is not available")).length, 1, "said once in the log");
  assert.match(text, /CAP_BPF/);
  const metrics = must(["nsenter", `--net=/run/netns/gz-${wk}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]);
  assert.match(metrics, /gauze_agent_feature_enabled\{feature="ebpf",node="[^"]+"\} 0/);
  assert.match(metrics, /gauze_agent_feature_enabled\{feature="flows",node="[^"]+"\} 1/);
  const b = (JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string; ip: string }[] }).pods.find((x) => x.name === "b")!.ip;
  assert.equal(sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-a`, "ping", "-c", "2", "-i", "0.2", "-W", "1", b]).status, 0);
  await wait(1200);
  const r = sh([GAUZE, "observe", "--name", lab, "--node", wk, "--to-pod", "b", "-o", "json", "--last", "50"]);
  assert.match(r.stderr, new RegExp(`node ${wk}: ebpf off: .*CAP_BPF.*packet ring`));
  assert.ok(r.stdout.split("\n").filter(Boolean).some((l) => (JSON.parse(l) as { observationPoint: string }).observationPoint === "to-pod"), "the ring still sees the ping arrive");
  const doc = JSON.parse(sh([GAUZE, "doctor", "--node", wk, "--name", lab, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[] }[] };
  const c = doc.checks.find((x) => x.id === "kernel.ebpf")!;
  assert.equal(c.status, "warn");
  assert.match(c.evidence.join(" "), /CAP_BPF/);
  // The other node, with its capabilities, is on eBPF.
  assert.match(must(["nsenter", `--net=/run/netns/gz-${cp}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]), /feature="ebpf",node="[^"]+"\} 1/);
});
