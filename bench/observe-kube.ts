// bench/observe-kube: what reaching the agents through the Kubernetes API costs against the
// lab's direct unix socket, on a running manifest-mode lab (gauze lab up --manifest
// deploy/kube-gauze.yml). One GET (/v1/observer: pod names come from the API itself) through pods/exec (the cluster source: WebSocket to
// the API server, podman exec of `gauze agent-api` in the agent container) and through the socket,
// interleaved; then the delay of a flow line on a follow stream: a ping from a pod, and the time
// from sending it to its flow line arriving, through each path at once (both streams open).
// Then the API server's requests a minute from clients, without and with observe --follow.
//   node --import tsx bench/observe-kube.ts --name <lab> [--gets 20] [--pings 10] [--api-seconds 30] [--json]
import { spawn, spawnSync } from "node:child_process";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { percentile } from "./lib.ts";
import { clusterSource } from "../src/observe/cluster-source.ts";
import { follow, get } from "../src/observe/client.ts";
import type { AgentEndpoint } from "../src/observe/source.ts";

const args = process.argv.slice(2);
const opt = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const lab = opt("--name", "");
const gets = Number(opt("--gets", "20")), pings = Number(opt("--pings", "10"));
if (!lab) throw new Error("give --name <lab> of a running manifest-mode lab");
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const cli = (...a: string[]) => spawnSync(gauze, a, { encoding: "utf8" }).stdout.trim();

const kubeconfig = cli("lab", "kubeconfig", "--name", lab);
const status = JSON.parse(cli("lab", "status", "--name", lab, "--json")) as { nodes: { name: string; root?: string }[]; pods: { name: string; node: string; ip?: string }[] };
const node = status.nodes[0]!.name;
const src = await clusterSource({ kubeconfig });
const viaApi = src.agents(node)[0]!;
const direct: AgentEndpoint = { node, socket: `/var/lib/gauze/lab/${lab}/nodes/${node}/run/gauze/agent.sock` };

const t = async (ep: AgentEndpoint) => { const t0 = performance.now(); await get(ep, "/v1/observer", 10_000); return performance.now() - t0; };
const api: number[] = [], sock: number[] = [];
for (let i = 0; i < gets; i++) { api.push(await t(viaApi)); sock.push(await t(direct)); }

// Flow delay: both streams open on the node of the first pod, a ping to the second pod.
const [a, b] = status.pods.filter((p) => p.ip);
const delays = { api: [] as number[], socket: [] as number[] };
if (a && b) {
  const nodeA = a.node;
  const eps = { api: src.agents(nodeA)[0]!, socket: { node: nodeA, socket: `/var/lib/gauze/lab/${lab}/nodes/${nodeA}/run/gauze/agent.sock` } };
  const waiting: { id: number; sent: number; seen: Partial<Record<"api" | "socket", number>> }[] = [];
  const streams = (["api", "socket"] as const).map((k) => follow(eps[k], "/v1/flows?last=0&follow=1", (i) => {
    if (!("event" in i)) return;
    const e = i.event;
    for (const w of waiting) if (e.source.ip === a.ip && e.destination.ip === b.ip && w.seen[k] === undefined) { w.seen[k] = performance.now() - w.sent; break; }
  }));
  await new Promise((r) => setTimeout(r, 1500)); // both streams open (the exec one takes a session)
  for (let i = 0; i < pings; i++) {
    // A new flow each time: the flow table's quiet timeout is not waited out, so each ping uses its own ICMP id (a new process).
    const w: (typeof waiting)[number] = { id: i, sent: performance.now(), seen: {} };
    waiting.push(w);
    spawnSync(gauze, ["lab", "exec", a.name, "--name", lab, "--", "ping", "-c", "1", "-W", "1", b.ip!]);
    await new Promise((r) => setTimeout(r, 1200));
    for (const k of ["api", "socket"] as const) if (w.seen[k] !== undefined) delays[k].push(w.seen[k]!);
    waiting.length = 0;
  }
  for (const s of streams) s.stop();
}
src.close();

// The API server's load: client requests (tokens; not the lab's own kubelets and controllers on
// its admin socket) over `--api-seconds` with nothing of gauze's observing, then as long with
// `gauze observe --kubeconfig --follow` running, counted by the lab's API itself.
const apiSeconds = Number(opt("--api-seconds", "30"));
const counts = () => new Promise<Record<string, number>>((resolve, reject) => {
  const r = httpRequest({ socketPath: `/var/lib/gauze/lab/${lab}/kube/admin.sock`, path: "/admin/requests" }, (res) => {
    let t = "";
    res.on("data", (d: Buffer) => { t += d.toString(); });
    res.on("end", () => resolve(JSON.parse(t) as Record<string, number>));
  });
  r.on("error", reject);
  r.end();
});
const clientDelta = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.entries(b).filter(([k]) => k.startsWith("client ")).map(([k, v]) => [k.slice(7), v - (a[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
const perMinute = (d: Record<string, number>) => +((Object.values(d).reduce((x, y) => x + y, 0) * 60) / apiSeconds).toFixed(1);
const c0 = await counts();
await new Promise((r) => setTimeout(r, apiSeconds * 1000));
const c1 = await counts();
const watcher = spawn(gauze, ["observe", "--kubeconfig", kubeconfig, "--follow", "--last", "0"], { stdio: "ignore" });
await new Promise((r) => setTimeout(r, apiSeconds * 1000));
const c2 = await counts();
watcher.kill("SIGINT");
const idle = clientDelta(c0, c1), observing = clientDelta(c1, c2);
const fmt = (xs: number[]) => xs.length ? `p50 ${percentile(xs, 50).toFixed(1)} ms, p90 ${percentile(xs, 90).toFixed(1)} ms (n=${xs.length})` : "none seen";
const report = {
  get: { api: { p50: percentile(api, 50), p90: percentile(api, 90) }, socket: { p50: percentile(sock, 50), p90: percentile(sock, 90) } },
  flowDelay: { api: delays.api.length ? percentile(delays.api, 50) : null, socket: delays.socket.length ? percentile(delays.socket, 50) : null, n: delays.api.length },
  apiRequestsPerMinute: { seconds: apiSeconds, nodes: status.nodes.length, idle: perMinute(idle), observing: perMinute(observing), idleByKind: idle, observingByKind: observing },
};
if (args.includes("--json")) console.log(JSON.stringify(report, null, 2));
else {
  console.log(`GET /v1/observer through pods/exec: ${fmt(api)}`);
  console.log(`GET /v1/observer on the socket:      ${fmt(sock)}`);
  console.log(`ping to flow line, pods/exec:    ${fmt(delays.api)}`);
  console.log(`ping to flow line, socket:       ${fmt(delays.socket)}`);
  const kinds = (d: Record<string, number>) => Object.entries(d).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`API requests a minute from clients (${status.nodes.length} nodes, ${apiSeconds} s each): ${report.apiRequestsPerMinute.idle} without observing (${kinds(idle)}), ${report.apiRequestsPerMinute.observing} with observe --kubeconfig --follow (${kinds(observing)})`);
}
process.exit(0);
