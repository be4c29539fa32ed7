// bench/policy: what NetworkPolicy costs. Three parts, one run:
//  1. programming: for worlds of 100 and 1000 pods and policies, the agent's whole pass (index,
//     this node's allow rules, the nftables model and script) and nft loading it as one
//     transaction into a fresh namespace (gz-bpol-*), then one policy changed: the pass again and
//     the incremental transaction. Two shapes: "realistic" (a policy selects one app of its
//     namespace and allows a few peers, as clusters write them) and "harsh" (the oracle tests'
//     random worlds: a fifth of the policies select every pod of their namespace, every feature
//     used). CPU of the pass (this process) and of nft (its rusage) reported with the wall time.
//  2. latency in a lab: 1000 Pods (API objects on the lab's two nodes, addresses in their
//     subnets) and 1000 policies in the lab's API, then N single-policy updates: from the API's
//     answer to the write to the change programmed on every node (the agents' /v1/policy), p50
//     and p99. Target: p99 under 1 s.
//  3. the dataplane: iperf3 throughput and sockperf TCP request-response latency pod to pod with
//     0 (A), 10, 1000 policies in force and 0 again (A'), the A/A pair showing the noise band.
//   node_modules/.bin/bun bench/policy.ts [--updates 20] [--seconds 3] [--rounds 3] [--json] [--skip-lab] [--skip-dataplane]
// (under bun, the runtime the agent runs: the pass costs what it costs on a node)
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get } from "node:http";
import { percentile } from "./lib.ts";
import { compileWorld, nodeAllowRules, parsePolicy } from "../src/policy/index.ts";
import type { PolicyWorld } from "../src/policy/index.ts";
import { POLICY_TABLE, changes, compilePolicy, script } from "../src/dataplane/policy-nft.ts";
import { randomWorld } from "../test/fixtures/policy/random-world.ts";
import { realisticWorld } from "../test/fixtures/policy/realistic-world.ts";

const args = process.argv.slice(2);
const opt = (k: string, d: number) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : d);
const updates = opt("--updates", 20), seconds = opt("--seconds", 3), rounds = opt("--rounds", 3);
const asJson = args.includes("--json");
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const say = (s: string) => { if (!asJson) process.stderr.write(s + "\n"); };
const dir = mkdtempSync(join(tmpdir(), "gauze-bpol-"));

// --- 1. programming -------------------------------------------------------------------------

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** nft -f in a namespace: wall and CPU (its rusage, through GNU time). */
function nftLoad(ns: string, text: string): { wallMs: number; cpuMs: number } {
  const f = join(dir, "script.nft");
  writeFileSync(f, text);
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%U %S", "nsenter", `--net=/run/netns/${ns}`, "nft", "-f", f], { encoding: "utf8" });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`nft: ${r.stderr.slice(0, 400)}`);
  const [u, s] = r.stderr.trim().split("\n").pop()!.split(" ").map(Number);
  return { wallMs, cpuMs: ((u ?? 0) + (s ?? 0)) * 1000 };
}

interface ProgrammingRow { shape: string; pods: number; policies: number; localPods: number; rules: number; chains: number; scriptKiB: number; passMs: number; passCpuMs: number; nftMs: number; nftCpuMs: number; updatePassMs: number; updateScriptBytes: number; updateNftMs: number }

function programming(shape: "realistic" | "harsh", n: number): ProgrammingRow {
  const world = shape === "realistic" ? realisticWorld(n, n) : randomWorld({ seed: 42, namespaces: Math.max(2, n / 100), pods: n, policies: n, hostNetwork: 0 });
  const node = "n1";
  const pass = (w: PolicyWorld) => {
    const c0 = cpuMs(), t0 = performance.now();
    const rules = nodeAllowRules(compileWorld(w), node);
    const model = compilePolicy(rules);
    return { rules, model, ms: performance.now() - t0, cpu: cpuMs() - c0 };
  };
  const ns = `gz-bpol-${shape}-${n}`;
  spawnSync("ip", ["netns", "del", ns]);
  spawnSync("ip", ["netns", "add", ns]);
  try {
    const a = pass(world);
    const full = script(a.model, false);
    const load = nftLoad(ns, full);
    // One policy changed (a port), as an edit would: the whole pass again, then only what changed.
    const i = world.policies.findIndex((p) => p.ingress.length > 0);
    const changedWorld = { ...world, policies: world.policies.map((p, j) => (j === i ? parsePolicy({ metadata: { namespace: p.namespace, name: p.name }, spec: { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ ports: [{ port: 8443 }] }] } }).policy! : p)) };
    const b = pass(changedWorld);
    const inc = changes(a.model, b.model);
    const upd = inc ? nftLoad(ns, inc) : { wallMs: 0, cpuMs: 0 };
    return {
      shape, pods: n, policies: world.policies.length, localPods: a.rules.length / 2, rules: [...a.model.chains.values()].reduce((s, c) => s + c.length, 0), chains: a.model.chains.size,
      scriptKiB: +(full.length / 1024).toFixed(0), passMs: +a.ms.toFixed(0), passCpuMs: +a.cpu.toFixed(0), nftMs: +load.wallMs.toFixed(0), nftCpuMs: +load.cpuMs.toFixed(0),
      updatePassMs: +b.ms.toFixed(0), updateScriptBytes: inc.length, updateNftMs: +upd.wallMs.toFixed(0),
    };
  } finally {
    spawnSync("ip", ["netns", "del", ns]);
  }
}

// --- 2 and 3. a lab -------------------------------------------------------------------------

const LAB = "gzbpol";
function cli(...a: string[]): string {
  const r = spawnSync(gauze, a, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`gauze ${a.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const labState = () => JSON.parse(readFileSync(`/var/lib/gauze/lab/${LAB}/lab.json`, "utf8")) as { nodes: { name: string; root: string; netns: string }[]; pods: { name: string; namespace?: string; ip: string; netns: string }[] };

/** The generation a node's agent has in force (its /v1/policy, over its unix socket). */
function generation(node: { root: string }): Promise<number> {
  return new Promise((resolve) => {
    get({ socketPath: `${node.root}/run/gauze/agent.sock`, path: "/v1/policy" }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => { body += d.toString(); });
      res.on("end", () => { try { resolve((JSON.parse(body) as { generation?: number }).generation ?? 0); } catch { resolve(0); } });
    }).on("error", () => resolve(0));
  });
}

function policyDoc(ns: string, name: string, port: number, app = "bulk"): string {
  return `---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  podSelector: {matchLabels: {app: ${app}}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: ${port}}]}]\n`;
}

/** 1000 Pods as API objects only (no sandboxes): the agents program chains for them all the same. */
function apiPods(n: number, subnets: { node: string; subnet: string }[]): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = subnets[i % subnets.length]!;
    const base = s.subnet.split(".").slice(0, 3).join(".");
    const ip = `${base}.${100 + (Math.floor(i / subnets.length) % 150)}`;
    docs.push(`---\napiVersion: v1\nkind: Pod\nmetadata: {name: bulk${i}, namespace: bulk${i % 20}, labels: {app: ${i % 3 ? "bulk" : "web"}}}\nspec: {nodeName: ${s.node}, containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}\nstatus: {phase: Running, podIP: ${ip}, podIPs: [{ip: ${ip}}]}\n`);
  }
  return docs.join("");
}

function iperf(from: string, ip: string): number {
  const r = spawnSync("nsenter", [`--net=/run/netns/${from}`, "iperf3", "-c", ip, "-t", String(seconds), "-J"], { encoding: "utf8" });
  return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
}
function sockperf(from: string, ip: string): { p50Us: number; p99Us: number } {
  const r = spawnSync("nsenter", [`--net=/run/netns/${from}`, "sockperf", "ping-pong", "--tcp", "-i", ip, "-p", "11111", "-t", String(seconds), "--full-rtt"], { encoding: "utf8" });
  const grab = (p: string) => Number(new RegExp(`percentile ${p} =\\s+([\\d.]+)`).exec(r.stdout)?.[1] ?? NaN);
  return { p50Us: grab("50.000"), p99Us: grab("99.000") };
}

async function lab(): Promise<{ latency: { policies: number; pods: number; updates: number; p50Ms: number; p99Ms: number; maxMs: number }; dataplane: { phase: string; policies: number; gbps: number; ratio: number; rrP50Us: number; rrP99Us: number }[] }> {
  spawnSync(gauze, ["lab", "down", "--name", LAB]);
  cli("lab", "up", "--name", LAB, "--no-observe");
  const procs: ReturnType<typeof spawn>[] = [];
  try {
    cli("lab", "pod", "run", "bench/server", "--node", "worker", "--image", "agnhost", "--labels", "app=bulk", "--ports", "http:8080/TCP", "--name", LAB);
    cli("lab", "pod", "run", "bench/client", "--node", "control-plane", "--image", "agnhost", "--labels", "app=web", "--ports", "http:8080/TCP", "--name", LAB);
    const st = labState();
    const server = st.pods.find((p) => p.name === "server")!, client = st.pods.find((p) => p.name === "client")!;
    procs.push(spawn("nsenter", [`--net=/run/netns/${server.netns}`, "iperf3", "-s"], { stdio: "ignore" }));
    procs.push(spawn("nsenter", [`--net=/run/netns/${server.netns}`, "sockperf", "server", "--tcp", "-p", "11111"], { stdio: "ignore" }));
    await new Promise((r) => setTimeout(r, 500));
    const status = JSON.parse(cli("lab", "status", "--name", LAB, "--json")) as { nodes: { name: string; subnet: string }[] };
    // The bench's own policies let iperf3 (5201) and sockperf (11111) through to the server: 10 of them.
    const ten = Array.from({ length: 10 }, (_, i) => policyDoc("bench", `allow${i}`, i === 0 ? 5201 : i === 1 ? 11111 : 6000 + i)).join("");
    const tenFile = join(dir, "ten.yml");
    writeFileSync(tenFile, ten);
    const bulkFile = join(dir, "bulk.yml");
    writeFileSync(bulkFile, Array.from({ length: 20 }, (_, i) => `---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bulk${i}}\n`).join("") + apiPods(1000, status.nodes.map((n) => ({ node: n.name, subnet: n.subnet }))));
    const thousandFile = join(dir, "thousand.yml");
    writeFileSync(thousandFile, Array.from({ length: 990 }, (_, i) => policyDoc(`bulk${i % 20}`, `pol${i}`, 7000 + (i % 500))).join(""));
    const waitAll = async (rv: number) => {
      const until = Date.now() + 30_000;
      while (Date.now() < until) {
        const g = await Promise.all(st.nodes.map(generation));
        if (g.every((x) => x >= rv)) return;
        await new Promise((r) => setTimeout(r, 5));
      }
      throw new Error(`not programmed within 30 s (generation ${rv})`);
    };
    const applyRv = (file: string) => Math.max(...(JSON.parse(cli("lab", "apply", "-f", file, "--name", LAB, "--json")) as { resourceVersion?: string }[]).map((x) => Number(x.resourceVersion ?? 0)));
    const deleteAll = async (file: string) => { cli("lab", "delete", "-f", file, "--name", LAB); await new Promise((r) => setTimeout(r, 300)); };

    // 3. the dataplane, phases interleaved per round.
    const skipDataplane = args.includes("--skip-dataplane");
    say(skipDataplane ? "dataplane: skipped" : `dataplane: ${rounds} round(s) of ${seconds} s iperf3 and sockperf per phase`);
    const phases = ["0 (A)", "10", "1000", "0 (A')"] as const;
    const samples = new Map<string, { gbps: number[]; p50: number[]; p99: number[] }>(phases.map((p) => [p, { gbps: [], p50: [], p99: [] }]));
    await waitAll(applyRv(bulkFile));
    for (let r = 0; r < (skipDataplane ? 0 : rounds); r++) {
      for (const ph of phases) {
        if (ph === "10") await waitAll(applyRv(tenFile));
        if (ph === "1000") await waitAll(applyRv(thousandFile));
        const s = samples.get(ph)!;
        s.gbps.push(iperf(client.netns, server.ip));
        const rr = sockperf(client.netns, server.ip);
        s.p50.push(rr.p50Us); s.p99.push(rr.p99Us);
        if (ph === "1000") { await deleteAll(thousandFile); await deleteAll(tenFile); }
        say(`  round ${r + 1} ${ph}: ${s.gbps.at(-1)!.toFixed(2)} Gbit/s, RR p50 ${rr.p50Us} us`);
      }
    }
    const med = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
    const base = med(samples.get("0 (A)")!.gbps);
    const dataplane = skipDataplane ? [] : phases.map((ph) => {
      const s = samples.get(ph)!;
      return { phase: ph, policies: ph.startsWith("0") ? 0 : Number(ph), gbps: +med(s.gbps).toFixed(2), ratio: +(med(s.gbps) / base).toFixed(3), rrP50Us: +med(s.p50).toFixed(1), rrP99Us: +med(s.p99).toFixed(1) };
    });

    // 2. latency of single-policy updates at 1000 pods and 1000 policies.
    say(`latency: ${updates} single-policy updates with 1000 Pods and 1000 policies in the API`);
    await waitAll(applyRv(tenFile));
    await waitAll(applyRv(thousandFile));
    const lat: number[] = [];
    for (let i = 0; i < updates; i++) {
      const f = join(dir, "one.yml");
      writeFileSync(f, policyDoc("bulk3", "pol3", 9000 + i));
      const rv = applyRv(f);
      const tWrite = performance.now();
      await waitAll(rv);
      lat.push(performance.now() - tWrite);
    }
    lat.sort((a, b) => a - b);
    return { latency: { policies: 1000, pods: 1002, updates, p50Ms: +percentile(lat, 50).toFixed(0), p99Ms: +percentile(lat, 99).toFixed(0), maxMs: +lat.at(-1)!.toFixed(0) }, dataplane };
  } finally {
    for (const p of procs) p.kill();
    spawnSync(gauze, ["lab", "down", "--name", LAB]);
  }
}

async function main(): Promise<void> {
  const prog: ProgrammingRow[] = [];
  for (const shape of ["realistic", "harsh"] as const) {
    for (const n of [100, 1000]) {
      say(`programming: ${shape}, ${n} pods x ${n} policies`);
      prog.push(programming(shape, n));
    }
  }
  const labResult = args.includes("--skip-lab") ? undefined : await lab();
  rmSync(dir, { recursive: true, force: true });
  if (asJson) { console.log(JSON.stringify({ table: POLICY_TABLE, programming: prog, ...(labResult ?? {}) }, null, 2)); return; }
  const lines = ["programming (node n1: half the pods; pass = index + allow rules + nft model; nft = one transaction into an empty namespace; update = one policy edited)",
    "shape      pods  policies  local  chains  rules  script  pass ms (cpu)  nft ms (cpu)  update: pass ms, bytes, nft ms"];
  for (const r of prog) lines.push(`${r.shape.padEnd(10)} ${String(r.pods).padStart(4)} ${String(r.policies).padStart(9)} ${String(r.localPods).padStart(6)} ${String(r.chains).padStart(7)} ${String(r.rules).padStart(6)} ${`${r.scriptKiB} KiB`.padStart(7)}  ${`${r.passMs} (${r.passCpuMs})`.padStart(13)}  ${`${r.nftMs} (${r.nftCpuMs})`.padStart(12)}  ${r.updatePassMs}, ${r.updateScriptBytes}, ${r.updateNftMs}`);
  if (labResult) {
    const l = labResult.latency;
    lines.push("", `latency in a lab (${l.pods} pods, ${l.policies} policies, 2 nodes): API write to in force on every node over ${l.updates} updates: p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms`);
    lines.push("", "dataplane (vxlan, pod to pod across nodes; medians of the rounds)", "policies   Gbit/s  ratio  RR p50 us  RR p99 us");
    for (const d of labResult.dataplane) lines.push(`${d.phase.padEnd(9)} ${d.gbps.toFixed(2).padStart(7)} ${d.ratio.toFixed(3).padStart(6)} ${String(d.rrP50Us).padStart(10)} ${String(d.rrP99Us).padStart(10)}`);
  }
  console.log(lines.join("\n"));
}

await main();
