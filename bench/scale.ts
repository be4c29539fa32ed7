// bench/scale: 1000 nodes. A lab on a real etcd; 999 simulated nodes register leases; one real
// agent on a fresh lab node programs a route, a neighbour and an FDB entry for each. Measures
// the time to full convergence, the time for one change to reach the kernel, the agent's RSS
// and CPU, and the requests etcd served (its own gRPC counter) for both.
//   node --import tsx bench/scale.ts [--peers 999] [--json]
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { must, run } from "./lib.ts";

const args = process.argv.slice(2);
const peers = Number(args[args.indexOf("--peers") + 1] ?? 999) || 999;
const asJson = args.includes("--json");
const root = join(import.meta.dirname, "..");
const gauze = join(root, "dist", "bin", "gauze");
const name = "gzscale";
const underlay = `/run/netns/gz-${name}-underlay`;
const node = `${name}-node`;

function load(...a: string[]): Record<string, number | string> {
  const r = must(["nsenter", `--net=${underlay}`, process.execPath, "--import", "tsx", join(root, "bench", "scale-load.ts"), ...a]);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

function kernelCounts(): { routes: number; neigh: number; fdb: number; text: string } {
  const r = run(["nsenter", `--net=/run/netns/gz-${node}`, "sh", "-c", "ip route show dev gauze.1; echo ==; ip neigh show dev gauze.1 nud permanent; echo ==; bridge fdb show dev gauze.1"]);
  const [a = "", b = "", c = ""] = r.stdout.split("==\n");
  const lines = (s: string) => s.split("\n").filter((l) => l.trim()).length;
  return { routes: lines(a), neigh: lines(b), fdb: lines(c.split("\n").filter((l) => l.includes(" dst ")).join("\n")), text: r.stdout };
}

function agentUsage(pid: number): { rssMb: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return { rssMb: rss, cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100 };
}

run([gauze, "lab", "down", "--name", name]);
try {
  // One lab node with its agent (the second peer every simulated node sees), on etcd, a /10.
  must([gauze, "lab", "up", "--name", name, "--nodes", "1", "--store", "etcd", "--pod-cidr", "10.64.0.0/10"]);
  const reg = load("register", String(peers - 1));
  const req0 = Number(load("requests").requests);
  const t0 = Date.now();
  must([gauze, "lab", "node", "add", "--name", name, "--node", node]);
  const want = peers; // the simulated ones and the control-plane
  let c = kernelCounts();
  while ((c.routes < want || c.neigh < want || c.fdb < want) && Date.now() - t0 < 60_000) c = kernelCounts();
  const convergeMs = Date.now() - t0;
  const status = JSON.parse(must([gauze, "lab", "status", "--name", name, "--json"]).stdout) as { nodes: { name: string; agent?: { pid?: number } }[] };
  const pid = status.nodes.find((n) => n.name === node)!.agent!.pid!;
  const usage1 = agentUsage(pid);
  const req1 = Number(load("requests").requests);
  const ch = load("change");
  const t1 = Number(ch.sent);
  // The agent logs each reconcile with its time: the change reached the kernel when the pass that
  // applied it logged (it logs after the batches ran). Cross-checked in the kernel below.
  const logFile = `/var/lib/gauze/lab/${name}/nodes/${node}/var/log/gauze-agent.log`;
  // The first pass logged after the put was sent that changed the kernel applied it (it logs
  // once its batch is done); the kernel is checked below.
  let appliedAt = 0;
  let passMs = 0;
  const until = Date.now() + 10_000;
  while (!appliedAt && Date.now() < until) {
    for (const line of readFileSync(logFile, "utf8").trim().split("\n")) {
      const l = JSON.parse(line) as { msg: string; time: string; added?: number; ms?: number; queuedMs?: number };
      if (l.msg === "reconciled" && Date.parse(l.time) >= t1 && (l.added ?? 0) > 0) { appliedAt = Date.parse(l.time); passMs = +((l.ms ?? 0) + (l.queuedMs ?? 0)).toFixed(2); break; }
    }
  }
  if (!kernelCounts().text.includes("0e:99:ff:ff:ff:01 dst")) throw new Error("the change never reached the kernel");
  const changeMs = appliedAt - t1;
  const usage2 = agentUsage(pid);
  const req2 = Number(load("requests").requests);
  const result = {
    bench: "scale", peers, registerMs: Math.round(Number(reg.ms)), convergenceMs: convergeMs, changeMs, changePassMs: passMs,
    kernel: { routes: c.routes, neighbours: c.neigh, fdb: c.fdb },
    agent: { rssMb: +usage2.rssMb.toFixed(1), cpuSecondsToConverge: +usage1.cpuSeconds.toFixed(2), cpuSecondsForChange: +(usage2.cpuSeconds - usage1.cpuSeconds).toFixed(3) },
    etcdRequests: { joinAndConverge: req1 - req0, oneChange: req2 - req1 },
  };
  if (asJson) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`scale: ${peers} peers for one agent (real etcd, real kernel)`);
    console.log(`  full convergence after the node joined:  ${convergeMs} ms  routes ${c.routes}, neighbours ${c.neigh}, FDB ${c.fdb}`);
    console.log(`  one change (a peer's new VTEP MAC):       ${changeMs} ms  (etcd put sent to the agent's applied batch, from its log; in the agent, event to applied: ${passMs} ms; the rest is etcd's write and its watch delivery)`);
    console.log(`  agent RSS ${result.agent.rssMb} MB (target < 150), CPU ${result.agent.cpuSecondsToConverge} s to converge, ${result.agent.cpuSecondsForChange} s for the change`);
    console.log(`  etcd gRPC requests: ${result.etcdRequests.joinAndConverge} for join + convergence, ${result.etcdRequests.oneChange} for the change (includes the bench's own)`);
    console.log(`  (registering ${peers - 1} simulated leases took ${result.registerMs} ms)`);
  }
} finally {
  if (process.env.KEEP) process.exit(0);
  run([gauze, "lab", "down", "--name", name]);
}
