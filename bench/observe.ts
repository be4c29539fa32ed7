// bench/observe: what recording flows costs. Two 2-node labs side by side, one whose agents
// observe (packet ring, drop watch) and one with --no-observe (the anchor), each with a pod per
// node; iperf3 pod to pod, rounds interleaved between the two; the observing agents' CPU during
// the transfer (from /proc); and the delay from a packet to its flow line at `gauze observe
// --follow` (the kernel's timestamp of the packet on the pod's veth to the line's arrival), for
// new flows (one ping run each: shown at once) over `--pings` runs.
//   node --import tsx bench/observe.ts [--rounds 6] [--seconds 3] [--pings 100] [--json] [--aa]
// --aa: both labs without observing (an A/A run: what the bench's own noise is).
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { percentile } from "./lib.ts";

const args = process.argv.slice(2);
const opt = (k: string, d: number) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : d);
const rounds = opt("--rounds", 6), seconds = opt("--seconds", 3), pings = opt("--pings", 100);
const asJson = args.includes("--json");
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const labs = { on: "gzbo-on", off: "gzbo-off" } as const;

function cli(...a: string[]): string {
  const r = spawnSync(gauze, a, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gauze ${a.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const say = (s: string) => { if (!asJson) process.stderr.write(s + "\n"); };
const inPod = (lab: string, pod: string, argv: string[]) => spawnSync("nsenter", [`--net=/run/netns/gz-${lab}-pod-${pod}`, ...argv], { encoding: "utf8" });
const state = (lab: string) => JSON.parse(readFileSync(`/var/lib/gauze/lab/${lab}/lab.json`, "utf8")) as { nodes: { agentPid: number }[]; pods: { name: string; ip: string }[] };
/** utime + stime of a process, in seconds. */
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" "); return (Number(f[11]) + Number(f[12])) / 100; };

function iperf(lab: string, ip: string): number {
  const r = inPod(lab, "a", ["iperf3", "-c", ip, "-t", String(seconds), "-J"]);
  return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
}

for (const l of Object.values(labs)) spawnSync(gauze, ["lab", "down", "--name", l]);
const servers: number[] = [];
try {
  for (const [k, l] of Object.entries(labs)) {
    cli("lab", "up", "--name", l, "--nodes", "2", ...(k === "off" || args.includes("--aa") ? ["--no-observe"] : []));
    cli("lab", "pod", "run", "a", "--node", `${l}-control-plane`, "--name", l, "--image", "netshoot");
    cli("lab", "pod", "run", "b", "--node", `${l}-worker`, "--name", l, "--image", "netshoot");
    const p = spawn("nsenter", [`--net=/run/netns/gz-${l}-pod-b`, "iperf3", "-s"], { stdio: "ignore", detached: true });
    servers.push(p.pid!);
  }
  await new Promise((r) => setTimeout(r, 500));
  const gbps: Record<"on" | "off", number[]> = { on: [], off: [] };
  const agentCores: number[] = [];
  for (let i = 1; i <= rounds; i++) {
    // The order alternates round by round: whichever runs first in a round has the machine's
    // caches and CPU boost to itself (an A/A run, both labs without observing, read 0.956 with a fixed order).
    for (const k of i % 2 ? (["on", "off"] as const) : (["off", "on"] as const)) {
      const s = state(labs[k]);
      const before = k === "on" ? s.nodes.map((n) => cpu(n.agentPid)) : [];
      const t0 = performance.now();
      const g = iperf(labs[k], s.pods.find((p) => p.name === "b")!.ip);
      if (k === "on") agentCores.push(s.nodes.reduce((sum, n, j) => sum + cpu(n.agentPid) - before[j]!, 0) / ((performance.now() - t0) / 1000));
      gbps[k].push(g);
      say(`round ${i}/${rounds} observe ${k.padEnd(3)}: ${g.toFixed(2)} Gbit/s`);
    }
  }
  // Packet to flow line: each ping run is a new flow (its own echo id), shown as soon as it is seen.
  const lab = labs.on;
  const target = state(lab).pods.find((p) => p.name === "b")!.ip;
  const watcher = spawn(gauze, ["observe", "--name", lab, "--follow", "--last", "0", "-o", "json", "--from-pod", "a", "--protocol", "icmp"]);
  const arrivals = new Map<number, number>();
  let rest = "";
  watcher.stdout.on("data", (d: Buffer) => {
    const now = Date.now();
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) {
      const e = JSON.parse(l) as { time?: number; observationPoint?: string; icmp?: { type: number; id?: number } };
      if (e.observationPoint === "from-pod" && e.icmp?.type === 8 && e.time && e.icmp.id !== undefined && !arrivals.has(e.icmp.id)) arrivals.set(e.icmp.id, now - e.time);
    }
  });
  await new Promise((r) => setTimeout(r, 800));
  for (let i = 0; i < pings; i++) {
    inPod(lab, "a", ["ping", "-c", "1", "-W", "1", target]);
    await new Promise((r) => setTimeout(r, 30));
  }
  await new Promise((r) => setTimeout(r, 1500));
  watcher.kill("SIGINT");
  const delays = [...arrivals.values()];
  const med = (xs: number[]) => percentile(xs, 50);
  const report = {
    rounds, seconds,
    throughput: { observeOnGbps: +med(gbps.on).toFixed(2), observeOffGbps: +med(gbps.off).toFixed(2), ratio: +(med(gbps.on) / med(gbps.off)).toFixed(3), on: gbps.on.map((x) => +x.toFixed(2)), off: gbps.off.map((x) => +x.toFixed(2)) },
    agentCpuCores: { median: +med(agentCores).toFixed(3), perGbps: +(med(agentCores) / med(gbps.on)).toFixed(3) },
    packetToLine: { flows: delays.length, sent: pings, p50Ms: +percentile(delays, 50).toFixed(1), p99Ms: +percentile(delays, 99).toFixed(1) },
    target: { what: "throughput with observing at least 90 % of without", ok: med(gbps.on) >= 0.9 * med(gbps.off) },
  };
  if (asJson) console.log(JSON.stringify(report, null, 2));
  else {
    console.log(`bench/observe: ${rounds} rounds of ${seconds} s, iperf3 pod to pod across two nodes (VXLAN), medians`);
    console.log(`  throughput, observing      ${report.throughput.observeOnGbps} Gbit/s`);
    console.log(`  throughput, --no-observe   ${report.throughput.observeOffGbps} Gbit/s   (anchor)`);
    console.log(`  ratio                      ${report.throughput.ratio}   target >= 0.90: ${report.target.ok ? "met" : "NOT met"}`);
    console.log(`  both agents' CPU at load   ${report.agentCpuCores.median} cores (${report.agentCpuCores.perGbps} cores per Gbit/s)`);
    console.log(`  packet to flow line        p50 ${report.packetToLine.p50Ms} ms, p99 ${report.packetToLine.p99Ms} ms (${report.packetToLine.flows} of ${pings} new flows seen)`);
  }
} finally {
  for (const pid of servers) { try { process.kill(pid); } catch { /* gone */ } }
  for (const l of Object.values(labs)) spawnSync(gauze, ["lab", "down", "--name", l]);
}
