// bench/flood: what a pod spraying UDP to random ports costs its node's agent. A 2-node lab; pod a
// on the control-plane sends `--rate` datagrams a second to random ports of pod b on the worker
// for `--seconds`. Meanwhile: /healthz on both nodes is timed every 20 ms (the DaemonSet's probe
// gives up after 2 s), a peer route on the control-plane is deleted by hand and timed until the
// agent has put it back, and afterwards each agent's CPU seconds and RSS are read from /proc.
// `--gauze` runs the lab of another build (the anchor: the build before the fix); the flood and
// the probes always come from this build.
//   bun bench/flood.ts [--gauze /tmp/gz-old/dist/bin/gauze] [--observer ebpf|ring] [--rate 10000] [--seconds 10] [--json]
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Rtnl, delRoute } from "../src/kernel/netlink/index.ts";
import { watchKernel } from "../src/kernel/netlink/monitor.ts";
import { inNetns } from "../src/kernel/netns.ts";

const args = process.argv.slice(2);
const opt = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const labGauze = opt("--gauze", join(import.meta.dirname, "..", "dist", "bin", "gauze"));
const tool = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const rate = Number(opt("--rate", "10000"));
const seconds = Number(opt("--seconds", "10"));
const asJson = args.includes("--json");
/** The agents' observer (the lab's default is auto: eBPF where it loads). */
const observer = opt("--observer", "");
if (observer && !["auto", "ebpf", "ring"].includes(observer)) throw new Error(`--observer ${observer}: use auto, ebpf or ring`);
const name = "gzflood";
const cp = `${name}-control-plane`, wk = `${name}-worker`;

function cli(bin: string, ...a: string[]): string {
  const r = spawnSync(bin, a, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gauze ${a.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** utime + stime of a process, in seconds, and its RSS in MB. */
function usage(pid: number): { cpu: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return { cpu: ticks / 100, rssMb: Number(rss ?? 0) / 1024 };
}

function probe(node: string): Promise<{ n: number; failed: number; p50: number; p99: number; max: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn("nsenter", [`--net=/run/netns/gz-${node}`, tool, "lab", "http-probe", "http://127.0.0.1:9317/healthz", "--every", "20", "--seconds", String(seconds)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    p.on("close", (c) => (c === 0 ? resolve(JSON.parse(out)) : reject(new Error(`probe on ${node} exited ${c}`))));
  });
}

spawnSync(labGauze, ["lab", "down", "--name", name]);
try {
  cli(labGauze, "lab", "up", "--name", name, "--nodes", "2", ...(observer ? ["--observer", observer] : []));
  cli(labGauze, "lab", "pod", "run", "a", "--node", cp, "--name", name);
  cli(labGauze, "lab", "pod", "run", "b", "--node", wk, "--name", name);
  const st = JSON.parse(cli(labGauze, "lab", "status", "--name", name, "--json")) as { nodes: { name: string; subnet: string; agent?: { pid?: number } }[]; pods: { name: string; ip: string }[] };
  const pids = Object.fromEntries(st.nodes.map((n) => [n.name, n.agent!.pid!]));
  const bIp = st.pods.find((p) => p.name === "b")!.ip;
  const peer = st.nodes.find((n) => n.name === wk)!.subnet;
  const before = Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, usage(pid)]));
  const probes = [probe(cp), probe(wk)];
  const flood = new Promise<string>((resolve) => {
    const p = spawn("nsenter", [`--net=/run/netns/gz-${name}-pod-a`, tool, "lab", "udp-flood", "--to", bIp, "--rate", String(rate), "--seconds", String(seconds)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    p.on("close", () => resolve(out.trim()));
  });
  // Halfway through: a peer route deleted by hand, timed until the kernel reports it back.
  await new Promise((r) => setTimeout(r, (seconds * 1000) / 2));
  const ns = `/run/netns/gz-${cp}`;
  const nl = Rtnl.open({ netns: ns });
  let back: (t: number) => void = () => undefined;
  const backAt = new Promise<number>((r) => { back = r; });
  const watch = inNetns(ns, () => watchKernel({
    onEvents: (evs) => { for (const e of evs) if (e.kind === "route" && e.op === "new" && e.route.dst === peer) back(performance.now()); },
    onOverrun: () => undefined,
  }));
  const t0 = performance.now();
  nl.run([delRoute({ dst: peer, dev: nl.link("gauze.1")! })]);
  const repairMs = await Promise.race([backAt.then((t) => t - t0), new Promise<number>((r) => setTimeout(() => r(Infinity), 15_000))]);
  watch.stop();
  nl.close();
  const [hc, hw] = await Promise.all(probes);
  const sent = await flood;
  const after = Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, usage(pid)]));
  const report = {
    build: labGauze, rate, seconds, flood: JSON.parse(sent || "{}") as unknown,
    healthz: { [cp]: hc, [wk]: hw },
    repairMs: Number.isFinite(repairMs) ? +repairMs.toFixed(1) : null,
    agents: Object.fromEntries(Object.keys(pids).map((n) => [n, { cpuSeconds: +(after[n]!.cpu - before[n]!.cpu).toFixed(2), rssMb: +after[n]!.rssMb.toFixed(1) }])),
  };
  if (asJson) console.log(JSON.stringify(report, null, 2));
  else {
    console.log(`flood ${rate}/s to random ports for ${seconds} s (lab built from ${labGauze})`);
    for (const [n, h] of Object.entries(report.healthz) as [string, Awaited<ReturnType<typeof probe>>][]) console.log(`  ${n.padEnd(24)} /healthz p50 ${h.p50} ms  p99 ${h.p99} ms  max ${h.max} ms  failed ${h.failed}/${h.n}  agent CPU ${report.agents[n]!.cpuSeconds} s  RSS ${report.agents[n]!.rssMb} MB`);
    console.log(`  route deleted by hand on ${cp}: back in ${report.repairMs ?? "> 15000"} ms`);
  }
} finally {
  spawnSync(labGauze, ["lab", "down", "--name", name]);
}
