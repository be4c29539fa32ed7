// bench/convergence: how long after a node joins until every other node can reach it (its route,
// neighbour and FDB entry programmed), at several cluster sizes. A lab of N-1 nodes is brought
// up, then node N joins; each other node's kernel is polled (ip/bridge in its namespace) until
// the new node's entries are all there. Reported per size: p50 and max over the other nodes,
// measured from the moment the new node's lease was written.
//   node --import tsx bench/convergence.ts [--nodes 4,16,32] [--json]
import { statSync } from "node:fs";
import { join } from "node:path";
import { must, percentile, run } from "./lib.ts";

const args = process.argv.slice(2);
const sizes = (args[args.indexOf("--nodes") + 1] ?? "4,16,32").split(",").map(Number);
const asJson = args.includes("--json");
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");

interface Row { nodes: number; upSeconds: number; p50Ms: number; maxMs: number }
const rows: Row[] = [];

function programmed(nodeNs: string, subnet: string, vtep: string, mac: string, nodeIp: string): boolean {
  const r = run(["nsenter", `--net=/run/netns/${nodeNs}`, "sh", "-c", "ip route show dev gauze.1; ip neigh show dev gauze.1; bridge fdb show dev gauze.1"]);
  return r.stdout.includes(`${subnet} via ${vtep}`) && r.stdout.includes(`${vtep} lladdr ${mac}`) && r.stdout.includes(`${mac} dst ${nodeIp}`);
}

for (const n of sizes) {
  const name = `gzconv${n}`;
  run([gauze, "lab", "down", "--name", name]);
  try {
    const t0 = performance.now();
    must([gauze, "lab", "up", "--name", name, "--nodes", String(n - 1)]);
    const upSeconds = (performance.now() - t0) / 1000;
    const before = (JSON.parse(must([gauze, "lab", "status", "--name", name, "--json"]).stdout) as { nodes: { name: string }[] }).nodes.map((x) => x.name);
    const joiner = `${name}-joiner`;
    must([gauze, "lab", "node", "add", "--name", name, "--node", joiner]);
    const st = JSON.parse(must([gauze, "lab", "status", "--name", name, "--json"]).stdout) as { nodes: { name: string; ip: string; subnet: string; vtepMac: string }[] };
    const j = st.nodes.find((x) => x.name === joiner)!;
    const leaseFile = join("/var/lib/gauze/lab", name, "registry", "leases", `${j.subnet.replace("/", "-")}.json`);
    // The lease file's mtime is when the registry learnt of the node (the join, as others see it).
    const leasedAt = statSync(leaseFile).mtimeMs;
    const vtep = j.subnet.split("/")[0]!;
    const times: number[] = [];
    const pending = new Set(before);
    const deadline = Date.now() + 30_000;
    while (pending.size && Date.now() < deadline) {
      for (const node of [...pending]) {
        if (programmed(`gz-${node}`, j.subnet, vtep, j.vtepMac, j.ip)) {
          times.push(Date.now() - leasedAt);
          pending.delete(node);
        }
      }
    }
    if (pending.size) throw new Error(`${pending.size} nodes never got the new node's entries`);
    rows.push({ nodes: n, upSeconds, p50Ms: percentile(times, 50), maxMs: Math.max(...times) });
  } finally {
    run([gauze, "lab", "down", "--name", name]);
  }
}

if (asJson) console.log(JSON.stringify({ bench: "convergence", rows }, null, 2));
else {
  console.log("convergence: a node joins; time until every other node has its route, neighbour and FDB entry");
  console.log("nodes  lab up (s)  p50 (ms)  max (ms)   (upper bounds: each node is polled in turn, ~3 ms a poll)");
  for (const r of rows) console.log(`${String(r.nodes).padStart(5)} ${r.upSeconds.toFixed(1).padStart(11)} ${String(Math.round(r.p50Ms)).padStart(9)} ${String(Math.round(r.maxMs)).padStart(9)}`);
}
