// An agent that may not use eBPF (its capabilities' bounding set without CAP_BPF, CAP_PERFMON and
// CAP_SYS_ADMIN, as a DaemonSet that forgot them) falls back to the packet ring and tracefs by
// itself (--observer auto), says so once in its log, in /metrics, in `gauze observe` and in
// doctor's kernel.ebpf check naming what it lacks, and keeps observing: a ping is seen. The lab
// runs the eBPF datapath: that agent cannot load it either, so its node goes the classic way
// whole (its predecessor's programs, whose maps nobody could keep, are removed: bpftool says so),
// said once in the log, in /metrics and by doctor, and no pod is without networking.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync, openSync, readFileSync, closeSync } from "node:fs";
import { spawn } from "node:child_process";
import { GAUZE, must, sh } from "./helpers.ts";

const lab = `t${process.pid % 1000}fb`;
const cp = `${lab}-control-plane`, wk = `${lab}-worker`;
const log = `/tmp/gauze-${lab}-agent.log`;
let pid = 0;
/** The worker's eBPF datapath links before its agent lost CAP_BPF (bpftool's IDs). */
let datapathLinks: string[] = [];
const pinnedLinks = (dir: string) => must(["sh", "-c", `for p in ${dir}/*; do [ -e "$p" ] && bpftool link show pinned "$p" | head -1; done; true`]).split("\n").filter(Boolean).map((l) => l.split(":")[0]!);
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "2", "--datapath", "ebpf"]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", cp, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", wk, "--name", lab]);
  datapathLinks = pinnedLinks(`/sys/fs/bpf/gauze/${wk}/datapath/links`);
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

test("without CAP_BPF the eBPF datapath stays off on that node, whole: the earlier programs removed, said once (log, /metrics, doctor); old and new pods reach the other node", async () => {
  assert.ok(datapathLinks.length >= 2, `the worker ran the eBPF datapath first (from_net, from_pod): ${datapathLinks.join(" ")}`);
  const text = readFileSync(log, "utf8");
  assert.equal(text.split("\n").filter((l) => l.includes("eBPF datapath unavailable: this node stays on the classic datapath")).length, 1, "said once in the log");
  assert.match(text, /removed an earlier agent's datapath/);
  assert.equal(existsSync(`/sys/fs/bpf/gauze/${wk}/datapath`), false, "no pin left");
  const live = new Set((JSON.parse(must(["bpftool", "-j", "link", "list"])) as { id: number }[]).map((l) => String(l.id)));
  assert.deepEqual(datapathLinks.filter((id) => live.has(id)), [], "bpftool: the earlier agent's datapath links are gone");
  const metrics = must(["nsenter", `--net=/run/netns/gz-${wk}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]);
  assert.match(metrics, /gauze_agent_feature_enabled\{feature="datapath",node="[^"]+"\} 0/);
  const doc = JSON.parse(sh([GAUZE, "doctor", "--node", wk, "--name", lab, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[] }[] };
  const c = doc.checks.find((x) => x.id === "datapath.programs")!;
  assert.equal(c.status, "warn", JSON.stringify(c));
  assert.match(c.evidence.join(" "), /stays classic/);
  // The conflist has no datapath block now: a pod made on the worker attaches the classic way.
  must([GAUZE, "lab", "pod", "run", "c", "--node", wk, "--name", lab]);
  const pods = (JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string; ip: string }[] }).pods;
  for (const to of ["b", "c"]) {
    const ip = pods.find((x) => x.name === to)!.ip;
    assert.equal(sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-a`, "ping", "-c", "2", "-i", "0.2", "-W", "1", ip]).status, 0, `a reaches ${to}`);
    assert.equal(sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-${to}`, "ping", "-c", "2", "-i", "0.2", "-W", "1", pods.find((x) => x.name === "a")!.ip]).status, 0, `${to} reaches a`);
  }
  // The node with its capabilities keeps the eBPF datapath.
  assert.match(must(["nsenter", `--net=/run/netns/gz-${cp}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]), /feature="datapath",node="[^"]+"\} 1/);
});
