// bench/soak: a chaos soak. A 3-node lab on its own etcd, pods on every node pinging a pod on the
// next node all the time, and for a bounded time, one fault after another at random: pods
// created and deleted, an agent killed with SIGKILL (and started again), the plugin killed
// with SIGKILL in the middle of an ADD, etcd stopped and started, a peer route or FDB entry
// deleted by hand, hostile records written into etcd, a node's own lease record garbled.
// At the end, after CNI GC with the live pods as the valid attachments, it checks what must
// hold whatever happened:
//   - no address handed out twice, every pod's address inside its node's subnet;
//   - no reservation and no host veth left without a live pod;
//   - no subnet leased twice, one lease per node, the node's subnet file agreeing;
//   - every node's gauze routes exactly the other nodes' valid leases, none outside the pod network;
// and prints the ping loss during each fault. Exit status 1 when any check fails.
//   node --import tsx bench/soak.ts [--duration 5m] [--seed N] [--json] [--keep]
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseCIDR, prefixContains } from "../src/net/cidr.ts";
import { validateLeases } from "../src/store/validate.ts";
import type { Lease } from "../src/store/registry.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const durationMs = parseDuration(opt("--duration", "5m"));
const seed = Number(opt("--seed", String(Date.now() % 100000)));
const asJson = args.includes("--json");
/** Leave the lab up at the end (to look at what a finding points to); gauze lab down --name gzsoak removes it. */
const keep = args.includes("--keep");
const ROOT = join(import.meta.dirname, "..");
const GAUZE = join(ROOT, "dist", "bin", "gauze");
const LAB = "gzsoak";
const POD_CIDR = "10.244.0.0/16";
const UNDERLAY = `/run/netns/gz-${LAB}-underlay`;
const ETCD = "http://127.0.0.1:2379";
const PREFIX = "/gauze.dev/network/subnets";
const PING_INTERVAL_S = 0.1;

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  if (!m) throw new Error(`--duration ${s}: use e.g. 90s or 5m`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 }[m[2] ?? "s"] ?? 1000);
}

// A small seeded PRNG: a run can be repeated with --seed.
let state = seed || 1;
const rand = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const progress = (s: string) => { if (!asJson) process.stderr.write(`${s}\n`); };

function run(argv: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", ...(o.input !== undefined ? { input: o.input } : {}), ...(o.env ? { env: o.env } : {}) });
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}
function must(argv: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = run(argv, o);
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const lab = (...a: string[]) => must([GAUZE, "lab", ...a, "--name", LAB]);

interface NodeStatus { name: string; ip: string; ready: boolean; subnet?: string; vtepMac?: string; agent?: { pid?: number; running: boolean; ready: boolean; reason: string } }
interface PodStatus { name: string; node: string; ip?: string; phase: string }
interface LabFile { nodes: { name: string; netns: string; root: string }[]; pods: { name: string; node: string; netns: string; containerId: string }[] }
const status = () => JSON.parse(lab("status", "--json")) as { nodes: NodeStatus[]; pods: PodStatus[] };
const labFile = () => JSON.parse(readFileSync(`/var/lib/gauze/lab/${LAB}/lab.json`, "utf8")) as LabFile;
const etcdRaw = (...a: string[]) => must(["nsenter", `--net=${UNDERLAY}`, process.execPath, "--import", "tsx", join(ROOT, "test", "support", "etcd-put.ts"), ETCD, ...a]);
const leases = () => JSON.parse(must(["nsenter", `--net=${UNDERLAY}`, GAUZE, "store", "leases", "--store", "etcd", "--etcd-endpoints", ETCD])) as Lease[];

// ---- pings: every sequence number's send time and whether it was answered ----

interface Pinger { from: string; to: string; proc: ChildProcess; sent: Map<number, number>; answered: Set<number> }

function startPinger(from: { name: string; netns: string }, to: { name: string; ip: string }): Pinger {
  const proc = spawn("nsenter", [`--net=/run/netns/${from.netns}`, "ping", "-n", "-D", "-O", "-i", String(PING_INTERVAL_S), to.ip], { stdio: ["ignore", "pipe", "ignore"] });
  const p: Pinger = { from: from.name, to: to.name, proc, sent: new Map(), answered: new Set() };
  let rest = "";
  proc.stdout!.on("data", (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      const ts = /^\[(\d+\.\d+)\]/.exec(line);
      const seq = /icmp_seq=(\d+)/.exec(line);
      if (!ts || !seq) continue;
      const at = Number(ts[1]) * 1000;
      const n = Number(seq[1]);
      const rtt = /time=([\d.]+) ms/.exec(line);
      // A reply: sent one round trip earlier. "no answer yet": printed as the next one is sent.
      if (rtt) { p.answered.add(n); p.sent.set(n, at - Number(rtt[1])); }
      else if (!p.sent.has(n)) p.sent.set(n, at - PING_INTERVAL_S * 1000);
    }
  });
  return p;
}

/** Pings sent in [from, to) and how many of them were never answered. */
function lossIn(pingers: Pinger[], from: number, to: number): { sent: number; lost: number } {
  let sent = 0;
  let lost = 0;
  for (const p of pingers) {
    for (const [seq, at] of p.sent) {
      if (at < from || at >= to) continue;
      sent++;
      if (!p.answered.has(seq)) lost++;
    }
  }
  return { sent, lost };
}

// ---- faults ----

interface Fault { kind: string; detail: string; start: number; end: number }
const counts = { podAdds: 0, podDels: 0, podAddFailures: 0, pluginKills: 0, pluginKillsLeftForGc: 0, agentKills: 0, etcdOutages: 0, routeDrifts: 0, fdbDrifts: 0, hostileRecords: 0, garbledLeases: 0 };
let churnSerial = 0;
let killSerial = 0;
const killNetns: string[] = [];

const faults: Record<string, () => Promise<string>> = {
  async "pod-churn"() {
    const st = status();
    const done: string[] = [];
    for (let i = 0; i < 2; i++) {
      const name = `churn-${churnSerial++}`;
      const node = pick(st.nodes).name;
      const r = run([GAUZE, "lab", "pod", "run", name, "--node", node, "--name", LAB]);
      counts.podAdds++;
      if (r.status !== 0) counts.podAddFailures++;
      done.push(`+${name}@${node}`);
    }
    const churn = status().pods.filter((p) => p.name.startsWith("churn-"));
    if (churn.length > 4) {
      const victim = pick(churn);
      lab("pod", "rm", victim.name);
      counts.podDels++;
      done.push(`-${victim.name}`);
    }
    return done.join(" ");
  },
  async "agent-kill"() {
    const n = pick(status().nodes);
    if (n.agent?.pid) process.kill(n.agent.pid, "SIGKILL");
    counts.agentKills++;
    await sleep(800);
    lab("node", "start-agent", n.name);
    return n.name;
  },
  async "plugin-kill"() {
    // As a runtime's ADD cut short (the runtime itself killed, the node rebooting): SIGKILL at a
    // random moment. Half the time the runtime retries with DEL; otherwise only GC is left.
    const f = labFile();
    const n = pick(f.nodes);
    const conflist = JSON.parse(readFileSync(join(n.root, "etc/cni/net.d/10-gauze.conflist"), "utf8")) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    const conf = JSON.stringify({ cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] });
    const netns = `gz-${LAB}-k${killSerial++}`;
    must(["ip", "netns", "add", netns]);
    killNetns.push(netns);
    const id = randomBytes(16).toString("hex");
    const env = { PATH: process.env.PATH, CNI_COMMAND: "ADD", CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: "eth0", CNI_PATH: join(n.root, "opt/cni/bin") };
    const bin = join(n.root, "opt/cni/bin/gauze");
    const delay = Math.floor(rand() * 25);
    await new Promise<void>((resolve) => {
      const p = spawn("nsenter", [`--net=/run/netns/${n.netns}`, bin], { env, stdio: ["pipe", "ignore", "ignore"] });
      p.stdin!.end(conf);
      setTimeout(() => p.kill("SIGKILL"), delay);
      p.on("close", () => resolve());
    });
    counts.pluginKills++;
    const retried = rand() < 0.5;
    if (retried) run(["nsenter", `--net=/run/netns/${n.netns}`, bin], { input: conf, env: { ...env, CNI_COMMAND: "DEL" } });
    else counts.pluginKillsLeftForGc++;
    return `${n.name} after ${delay} ms, ${retried ? "DEL retried" : "left for GC"}`;
  },
  async "etcd-outage"() {
    lab("etcd", "stop");
    counts.etcdOutages++;
    await sleep(2500);
    lab("etcd", "start");
    return "2.5 s";
  },
  async "route-drift"() {
    const n = pick(status().nodes);
    const routes = JSON.parse(must(["ip", "-n", `gz-${n.name}`, "-j", "route", "show", "proto", "71"]) || "[]") as { dst: string }[];
    if (!routes.length) return `${n.name}: no route to delete`;
    const r = pick(routes);
    run(["ip", "-n", `gz-${n.name}`, "route", "del", r.dst, "proto", "71"]);
    counts.routeDrifts++;
    return `${n.name}: ${r.dst}`;
  },
  async "fdb-drift"() {
    const n = pick(status().nodes);
    const entries = JSON.parse(must(["bridge", "-n", `gz-${n.name}`, "-j", "fdb", "show", "dev", "gauze.1"]) || "[]") as { mac: string; dst?: string }[];
    const peers = entries.filter((e) => e.dst && e.mac !== "00:00:00:00:00:00");
    if (!peers.length) return `${n.name}: no FDB entry to delete`;
    const e = pick(peers);
    run(["bridge", "-n", `gz-${n.name}`, "fdb", "del", e.mac, "dev", "gauze.1", "dst", e.dst!]);
    counts.fdbDrifts++;
    return `${n.name}: ${e.mac}`;
  },
  async "hostile-lease"() {
    const rec = (node: string, ip: string) => JSON.stringify({ PublicIP: ip, BackendType: "vxlan", BackendData: { VtepMAC: "0e:47:00:00:00:09" }, Node: node, Expires: Date.now() + 3_600_000 });
    const k = counts.hostileRecords;
    const records: [string, string][] = [
      [`${PREFIX}/0.0.0.0-1`, rec("evil-half", "172.18.0.250")],
      [`${PREFIX}/10.99.${k % 250}.0-24`, rec(`evil-outside-${k}`, "172.18.0.251")],
      [`${PREFIX}/10.244.${200 + (k % 50)}.0-24`, "not json"],
    ];
    etcdRaw("put", ...records.flat());
    counts.hostileRecords += records.length;
    return records.map(([key]) => key.slice(PREFIX.length + 1)).join(" ");
  },
  async "lease-garbled"() {
    const n = pick(status().nodes);
    if (!n.subnet) return `${n.name}: no subnet`;
    etcdRaw("put", `${PREFIX}/${n.subnet.replace("/", "-")}`, "{garbled");
    counts.garbledLeases++;
    // The agent takes its own subnet back (the record is not another node's lease).
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      if (leases().some((l) => l.node === n.name && l.subnet === n.subnet && !l.problem)) return `${n.name}: ${n.subnet} taken back`;
    }
    return `${n.name}: ${n.subnet} NOT taken back`;
  },
};

// ---- the end: what must hold ----

interface Finding { check: string; problem: string }

function checkInvariants(): { findings: Finding[]; summary: Record<string, number> } {
  const findings: Finding[] = [];
  const st = status();
  const f = labFile();
  const running = st.pods.filter((p) => p.phase === "Running");
  // Addresses: each handed out once, inside the pod's node's subnet.
  const byIp = new Map<string, string[]>();
  for (const p of running) if (p.ip) (byIp.get(p.ip) ?? byIp.set(p.ip, []).get(p.ip)!).push(p.name);
  for (const [ip, pods] of byIp) if (pods.length > 1) findings.push({ check: "duplicate IP", problem: `${ip} held by ${pods.join(", ")}` });
  for (const p of running) {
    const n = st.nodes.find((x) => x.name === p.node);
    const sub = n?.subnet ? parseCIDR(n.subnet) : undefined;
    if (p.ip && sub && !prefixContains(sub.prefix, parseCIDR(`${p.ip}/32`)!.host)) findings.push({ check: "pod outside its node's subnet", problem: `${p.name} ${p.ip} on ${p.node} (${n!.subnet})` });
  }
  // Reservations and veths: exactly the live pods' on each node.
  const held = attachments();
  for (const r of held.reservations) if (!r.live) findings.push({ check: "leaked reservation", problem: `${r.node}: ${r.ip} held by ${r.owner.slice(0, 12)}, no live pod` });
  for (const v of held.veths) if (!v.live) findings.push({ check: "leaked veth", problem: `${v.node}: ${v.ifname} (${v.owner.slice(0, 12)})` });
  const reservations = held.reservations.length;
  const veths = held.veths.length;
  // Leases: one per node, no subnet twice, agreeing with the node's own view.
  const all = leases();
  const net = parseCIDR(POD_CIDR)!.prefix;
  const { valid, invalid } = validateLeases(all, { network: net, subnetLen: 24, self: "", underlayFamily: 4, backendTypes: ["vxlan", "host-gw"] });
  for (const n of st.nodes) {
    const mine = valid.filter((l) => l.node === n.name);
    if (mine.length !== 1) findings.push({ check: "lease per node", problem: `${n.name} has ${mine.length} valid leases` });
    else if (mine[0]!.subnet !== n.subnet) findings.push({ check: "lease per node", problem: `${n.name} reports ${n.subnet}, its lease is ${mine[0]!.subnet}` });
    if (!n.ready) findings.push({ check: "nodes Ready", problem: `${n.name}: ${n.agent?.reason ?? "not ready"}` });
  }
  const dupSubnets = invalid.filter((i) => /claimed by \d+ nodes/.test(i.why));
  for (const d of dupSubnets) findings.push({ check: "duplicate subnet", problem: `${d.subnet}: ${d.why}` });
  // Routes: each node's gauze routes are exactly the other nodes' valid leases, all inside the pod network.
  for (const n of st.nodes) {
    const routes = (JSON.parse(must(["ip", "-n", `gz-${n.name}`, "-j", "route", "show", "proto", "71"]) || "[]") as { dst: string }[]).map((r) => r.dst);
    const want = valid.filter((l) => l.node !== n.name).map((l) => l.subnet).sort();
    if (JSON.stringify([...routes].sort()) !== JSON.stringify(want)) findings.push({ check: "routes match leases", problem: `${n.name}: has ${routes.join(",")}, leases say ${want.join(",")}` });
    for (const r of routes) {
      const c = r === "default" ? undefined : parseCIDR(r);
      if (!c || !prefixContains(net, c.prefix.ip) || c.prefix.bits < net.bits) findings.push({ check: "route outside the pod network", problem: `${n.name}: ${r}` });
    }
  }
  return { findings, summary: { pods: running.length, reservations, veths, leases: valid.length, refusedRecords: invalid.length } };
}

/** Every node's address reservations and host veths, each with its owner and whether a live pod holds it. */
function attachments(): { reservations: { node: string; ip: string; owner: string; live: boolean }[]; veths: { node: string; ifname: string; owner: string; live: boolean }[] } {
  const f = labFile();
  const running = new Set(status().pods.filter((p) => p.phase === "Running").map((p) => p.name));
  const out: ReturnType<typeof attachments> = { reservations: [], veths: [] };
  for (const n of f.nodes) {
    const live = new Set(f.pods.filter((p) => p.node === n.name && running.has(p.name)).map((p) => p.containerId));
    const netDir = join(n.root, "var/lib/cni/networks");
    for (const net of readdirSync(netDir)) {
      for (const file of readdirSync(join(netDir, net))) {
        if (!parseCIDR(`${file}/32`) && !parseCIDR(`${file}/128`)) continue;
        const owner = readFileSync(join(netDir, net, file), "utf8").split(/\r?\n/)[0]!.trim();
        out.reservations.push({ node: n.name, ip: file, owner, live: live.has(owner) });
      }
    }
    const links = JSON.parse(must(["ip", "-n", `gz-${n.name}`, "-d", "-j", "link", "show", "type", "veth"]) || "[]") as { ifname: string; ifalias?: string }[];
    for (const l of links) {
      const m = /^gauze:[^:]+:([0-9a-f]+)\//.exec(l.ifalias ?? "");
      if (m) out.veths.push({ node: n.name, ifname: l.ifname, owner: m[1]!, live: live.has(m[1]!) });
    }
  }
  return out;
}

function gcEveryNode(): void {
  const f = labFile();
  for (const n of f.nodes) {
    const conflist = JSON.parse(readFileSync(join(n.root, "etc/cni/net.d/10-gauze.conflist"), "utf8")) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    const valid = f.pods.filter((p) => p.node === n.name).map((p) => ({ containerID: p.containerId, ifname: "eth0" }));
    const conf = JSON.stringify({ cniVersion: "1.1.0", name: conflist.name, ...conflist.plugins[0], "cni.dev/valid-attachments": valid });
    const env = { PATH: process.env.PATH, CNI_COMMAND: "GC", CNI_PATH: join(n.root, "opt/cni/bin") };
    const r = run(["nsenter", `--net=/run/netns/${n.netns}`, join(n.root, "opt/cni/bin/gauze")], { input: conf, env });
    if (r.status !== 0) throw new Error(`GC on ${n.name} failed: ${r.stdout}${r.stderr}`);
  }
}

// ---- the run ----

async function main(): Promise<number> {
  run([GAUZE, "lab", "down", "--name", LAB]);
  const pingers: Pinger[] = [];
  const log: Fault[] = [];
  try {
    const t0 = Date.now();
    lab("up", "--nodes", "3", "--store", "etcd", "--pod-cidr", POD_CIDR);
    const nodes = status().nodes;
    for (const [i, n] of nodes.entries()) lab("pod", "run", `ping-${i}`, "--node", n.name);
    const f = labFile();
    const st = status();
    for (let i = 0; i < nodes.length; i++) {
      const from = f.pods.find((p) => p.name === `ping-${i}`)!;
      const to = st.pods.find((p) => p.name === `ping-${(i + 1) % nodes.length}`)!;
      pingers.push(startPinger(from, { name: to.name, ip: to.ip! }));
    }
    progress(`soak: lab up in ${Date.now() - t0} ms; ${pingers.length} pingers; faults for ${durationMs / 1000} s (seed ${seed})`);
    await sleep(1000);
    const quiet = { start: Date.now(), end: 0 };
    await sleep(1000);
    quiet.end = Date.now();
    // Every kind once per round, in a random order: a short run still injects each of them.
    const bag: string[] = [];
    const until = Date.now() + durationMs;
    while (Date.now() < until) {
      if (!bag.length) bag.push(...Object.keys(faults).sort(() => rand() - 0.5));
      const kind = bag.pop()!;
      const start = Date.now();
      let detail: string;
      try {
        detail = await faults[kind]!();
      } catch (e) {
        detail = `the fault itself failed: ${(e as Error).message.split("\n")[0]}`;
      }
      await sleep(1200); // recovery time inside the fault's window
      log.push({ kind, detail, start, end: Date.now() });
      progress(`  ${kind.padEnd(14)} ${detail}`);
    }
    // Settle: every agent running and Ready, then GC as kubelet's runtime would run it.
    for (const n of status().nodes) if (!n.agent?.running) lab("node", "start-agent", n.name);
    for (let i = 0; i < 100 && !status().nodes.every((n) => n.ready); i++) await sleep(100);
    status(); // lab status is a kubelet pass: pods left Pending are set up again
    for (const ns of killNetns) run(["ip", "netns", "del", ns]);
    const before = attachments();
    const orphans = { reservations: before.reservations.filter((r) => !r.live).length, veths: before.veths.filter((v) => !v.live).length };
    gcEveryNode();
    await sleep(500);
    const { findings, summary } = checkInvariants();
    const byKind = new Map<string, { faults: number; sent: number; lost: number; worst: number }>();
    for (const fault of log) {
      const l = lossIn(pingers, fault.start, fault.end);
      const k = byKind.get(fault.kind) ?? { faults: 0, sent: 0, lost: 0, worst: 0 };
      byKind.set(fault.kind, { faults: k.faults + 1, sent: k.sent + l.sent, lost: k.lost + l.lost, worst: Math.max(k.worst, l.lost) });
    }
    const baseline = lossIn(pingers, quiet.start, quiet.end);
    const report = {
      seed, durationS: durationMs / 1000, operations: counts, faults: log.length, removedByGc: orphans,
      lossByFault: Object.fromEntries([...byKind].sort()), baseline, end: summary,
      leaks: findings.filter((x) => /leaked/.test(x.check)).length,
      duplicates: findings.filter((x) => /duplicate/.test(x.check)).length,
      findings, faultLog: log.map((x) => ({ kind: x.kind, detail: x.detail, at: x.start - quiet.start, ms: x.end - x.start, ...lossIn(pingers, x.start, x.end) })),
      // When each unanswered ping was sent (ms after the quiet period began), per pinger: where to look.
      unanswered: pingers.map((p) => ({ from: p.from, to: p.to, at: [...p.sent].filter(([seq]) => !p.answered.has(seq)).map(([, at]) => Math.round(at - quiet.start)) })),
    };
    if (asJson) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(`\nsoak: ${log.length} faults in ${(durationMs / 1000).toFixed(0)} s (seed ${seed})`);
      console.log(`operations: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")}`);
      console.log(`\n${"fault".padEnd(16)}${"count".padStart(6)}${"pings".padStart(8)}${"lost".padStart(6)}${"worst".padStart(7)}`);
      for (const [k, v] of [...byKind].sort()) console.log(`${k.padEnd(16)}${String(v.faults).padStart(6)}${String(v.sent).padStart(8)}${String(v.lost).padStart(6)}${String(v.worst).padStart(7)}`);
      console.log(`${"(no fault)".padEnd(16)}${"".padStart(6)}${String(baseline.sent).padStart(8)}${String(baseline.lost).padStart(6)}`);
      console.log(`\nleft by killed ADDs, removed by GC: ${orphans.reservations} reservations, ${orphans.veths} veths`);
      console.log(`at the end: ${summary.pods} pods, ${summary.reservations} reservations, ${summary.veths} veths, ${summary.leases} leases, ${summary.refusedRecords} records refused`);
      console.log(`leaks ${report.leaks}, duplicates ${report.duplicates}, findings ${findings.length}`);
      for (const x of findings) console.log(`  ${x.check}: ${x.problem}`);
    }
    return findings.length ? 1 : 0;
  } finally {
    for (const p of pingers) p.proc.kill("SIGTERM");
    for (const ns of killNetns) run(["ip", "netns", "del", ns]);
    if (!keep) run([GAUZE, "lab", "down", "--name", LAB]);
  }
}

process.exit(await main());
