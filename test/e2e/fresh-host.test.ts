// A fresh machine, made on purpose: the whole test runs in a mount namespace of its own where
// tracefs and bpffs are unmounted first and /var/lib is an empty directory, so the suite
// cannot pass only because the machine it runs on was prepared by hand. `lab up` mounts what is
// missing (and says so), observe and trace see a FORWARD drop with the kernel's reason, the last
// `lab down` unmounts what the lab mounted. An agent that may not mount tracefs (no
// CAP_SYS_ADMIN, as in a DaemonSet) says which feature is off and the command that fixes it: in
// /readyz, /metrics, its log, `gauze observe` and doctor.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GAUZE, must, sh } from "./helpers.ts";

const lab = `t${process.pid % 1000}fh`;
const cp = `${lab}-control-plane`;
const wk = `${lab}-worker`;
// The fresh /var/lib: the whole of it, not /var/lib/gauze, which labs of the host's own make and
// remove meanwhile (removing a directory detaches what other namespaces mounted on it).
const varLib = mkdtempSync(join(tmpdir(), "gauze-fresh-"));
let holder: ChildProcess;
let manual: ChildProcess | undefined;

/** A command inside the fresh host's mount namespace. */
const inHost = (argv: string[]) => ["nsenter", `--mount=/proc/${holder.pid}/ns/mnt`, "--", ...argv];
const run = (argv: string[]) => sh(inHost(argv));
const ok = (argv: string[]) => must(inHost(argv));
const g = (...args: string[]) => run([GAUZE, ...args]);
const mountType = (path: string) => run(["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", path]).stdout.trim();
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  holder = spawn("unshare", ["--mount", "--propagation", "private", "--", "sleep", "900"], { stdio: "ignore" });
  for (let i = 0; i < 50 && sh(["readlink", `/proc/${holder.pid}/ns/mnt`]).stdout === sh(["readlink", "/proc/self/ns/mnt"]).stdout; i++) await wait(20);
  // The fresh machine: no tracefs, no bpffs, nothing of gauze's in /var/lib.
  for (const p of ["/sys/kernel/debug/tracing", "/sys/kernel/tracing", "/sys/fs/bpf"]) while (run(["umount", p]).status === 0) { /* every layer */ }
  ok(["mount", "--bind", varLib, "/var/lib"]);
});

after(() => {
  if (manual?.pid) try { process.kill(-manual.pid, "SIGKILL"); } catch { /* gone */ }
  if (holder?.pid) {
    g("lab", "down", "--name", lab);
    holder.kill("SIGKILL");
  }
  rmSync(varLib, { recursive: true, force: true });
});

test("a fresh host: lab up mounts tracefs and bpffs, drops are seen with their reason, the last lab down unmounts them", async () => {
  assert.equal(mountType("/sys/kernel/tracing"), "", "the test starts without tracefs");
  assert.equal(mountType("/sys/fs/bpf"), "", "and without bpffs");
  const up = g("lab", "up", "--name", lab, "--nodes", "2");
  assert.equal(up.status, 0, up.stderr);
  assert.match(up.stderr, /host: mounted tracefs at \/sys\/kernel\/tracing/);
  assert.match(up.stderr, /host: mounted bpffs at \/sys\/fs\/bpf/);
  assert.equal(mountType("/sys/kernel/tracing"), "tracefs");
  assert.equal(mountType("/sys/fs/bpf"), "bpf");
  assert.equal(g("lab", "pod", "run", "a", "--node", cp, "--name", lab).status, 0);
  assert.equal(g("lab", "pod", "run", "b", "--node", wk, "--name", lab).status, 0);
  const st = JSON.parse(ok([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string; ip: string }[] };
  const bIp = st.pods.find((p) => p.name === "b")!.ip;
  assert.equal(g("lab", "break", "forward-drop", "--node", wk, "--name", lab).status, 0);
  const tr = g("trace", "a", "b", "--name", lab, "--json");
  const report = JSON.parse(tr.stdout) as { replied: boolean; stopped?: { node: string; reason?: string; check?: string }; dropsUnknown?: string };
  assert.equal(report.replied, false);
  assert.deepEqual([report.stopped?.node, report.stopped?.reason, report.stopped?.check, report.dropsUnknown], [wk, "NETFILTER_DROP", "filtering.forward", undefined]);
  sh(inHost(["nsenter", `--net=/run/netns/gz-${lab}-pod-a`, "ping", "-c", "2", "-i", "0.2", "-W", "1", bIp]));
  await wait(400);
  const dropped = ok([GAUZE, "observe", "--name", lab, "--verdict", "dropped", "-o", "json", "--last", "200"]).trim().split("\n").filter(Boolean)
    .map((l) => JSON.parse(l) as { node: string; dropReason?: string; destination: { ip: string } });
  assert.ok(dropped.some((d) => d.node === wk && d.dropReason === "NETFILTER_DROP" && d.destination.ip === bIp), JSON.stringify(dropped.slice(-3)));
  assert.equal(g("lab", "fix", "--name", lab).status, 0);
  assert.equal(g("lab", "down", "--name", lab).status, 0);
  assert.equal(mountType("/sys/kernel/tracing"), "", "the last lab down unmounts the tracefs it mounted");
  assert.equal(mountType("/sys/fs/bpf"), "", "and the bpffs");
  assert.equal(run(["ls", "/var/lib/gauze"]).status, 2, "and leaves nothing of gauze's in /var/lib");
});

test("an agent that may not mount tracefs: the eBPF observer keeps drops on; the ring observer says drops are off and the command that fixes it, everywhere", async () => {
  assert.equal(g("lab", "up", "--name", lab, "--nodes", "2").status, 0);
  const status = () => JSON.parse(ok([GAUZE, "lab", "status", "--name", lab, "--json"])) as { nodes: { name: string; agent?: { pid?: number } }[] };
  const pid = status().nodes.find((n) => n.name === wk)!.agent!.pid!;
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  assert.equal(g("lab", "node", "stop-agent", wk, "--name", lab).status, 0);
  // As a DaemonSet runs it: no CAP_SYS_ADMIN, and the host's tracefs not mounted.
  // Lazily: the other node's agent keeps reading its own instance.
  assert.equal(run(["umount", "-l", "/sys/kernel/tracing"]).status, 0);
  const logFile = `${varLib}/gauze/lab/${lab}/nodes/${wk}/var/log/gauze-agent.log`;
  const logFd = openSync(logFile, "a");
  const startAgent = (extra: string[]) => {
    manual = spawn("nsenter", [`--mount=/proc/${holder.pid}/ns/mnt`, "--", "nsenter", `--net=/run/netns/gz-${wk}`, "--",
      "setpriv", "--bounding-set=-sys_admin", "--", ...argv, ...extra], { stdio: ["ignore", logFd, logFd], detached: true });
  };
  const readyz = () => run(["nsenter", `--net=/run/netns/gz-${wk}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/readyz", "--timeout", "500"]).stdout;
  const metricsText = () => run(["nsenter", `--net=/run/netns/gz-${wk}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]).stdout;
  let r = "";
  // The eBPF observer takes drops from tp_btf/kfree_skb, which needs no tracefs: drops stay on.
  startAgent(["--observer", "ebpf"]);
  for (let i = 0; i < 100 && !r.startsWith("200"); i++) { r = readyz(); await wait(100); }
  assert.equal(r, "200 ready\n", "the eBPF observer needs no tracefs");
  assert.match(metricsText(), /gauze_agent_feature_enabled\{[^}]*feature="drops"[^}]*\} 1/);
  process.kill(-manual!.pid!, "SIGKILL");
  for (let i = 0; i < 50 && readyz().startsWith("200"); i++) await wait(100);
  // The ring observer reads drops from a tracefs instance: without one it says so, with the fix.
  startAgent(["--observer", "ring"]);
  closeSync(logFd);
  r = "";
  for (let i = 0; i < 100 && !r.startsWith("200"); i++) { r = readyz(); await wait(100); }
  assert.match(r, /^200 ready \(degraded: drops off: tracefs is not mounted at \/sys\/kernel\/tracing, and mounting it failed: operation not permitted \(EPERM\); fix: mount -t tracefs nodev \/sys\/kernel\/tracing\)/);
  assert.equal(mountType("/sys/kernel/tracing"), "", "the agent could not mount it");
  const metrics = metricsText();
  assert.match(metrics, /gauze_agent_feature_enabled\{[^}]*feature="drops"[^}]*\} 0/);
  assert.match(metrics, /gauze_agent_feature_enabled\{[^}]*feature="flows"[^}]*\} 1/);
  const log = readFileSync(logFile, "utf8");
  assert.match(log, /"feature":"drops".*"fix":"mount -t tracefs nodev \/sys\/kernel\/tracing".*drops with the kernel's reason are off/);
  const obs = g("observe", "--name", lab, "--last", "1");
  assert.match(obs.stderr, new RegExp(`node ${wk}: drops off: tracefs is not mounted .*; fix: mount -t tracefs nodev /sys/kernel/tracing`));
  const doc = JSON.parse(g("doctor", "--node", wk, "--name", lab, "--json").stdout) as { checks: { id: string; status: string; evidence: string[]; fix?: string }[] };
  const check = doc.checks.find((c) => c.id === "kernel.tracefs")!;
  assert.equal(check.status, "warn");
  assert.match(check.fix ?? "", /^mount -t tracefs nodev \/sys\/kernel\/tracing/);
  assert.match(check.evidence.join(" "), /the agent reports: drops off: tracefs is not mounted/);
  process.kill(-manual!.pid!, "SIGKILL");
  manual = undefined;
  assert.equal(g("lab", "down", "--name", lab).status, 0);
});
