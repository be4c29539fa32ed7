// bench/drift: how fast the agent puts back what someone changed by hand. A 2-node lab; on the
// control-plane node this bench deletes or changes one of the agent's entries through netlink
// and times, from the moment the kernel made the change to the moment the kernel event shows
// the entry back, both read from the kernel's own event stream (no polling). Each kind of
// drift `--rounds` times. The anchor is flannel, which puts entries back only when its lease
// watch next fires (nothing at all for a hand deletion until the peer's lease changes).
//   bun bench/drift.ts [--rounds 30] [--json]
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Rtnl, delFdb, delNeigh, delRoute, replaceFdb, setLink } from "../src/kernel/netlink/index.ts";
import { type KernelEvent, watchKernel } from "../src/kernel/netlink/monitor.ts";
import { inNetns } from "../src/kernel/netns.ts";
import { percentile } from "./lib.ts";

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1] ?? 30) || 30;
const asJson = args.includes("--json");
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const name = "gzdrift";
const cp = `/run/netns/gz-${name}-control-plane`;

function cli(...a: string[]): string {
  const r = spawnSync(gauze, a, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gauze ${a.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

spawnSync(gauze, ["lab", "down", "--name", name]);
try {
  cli("lab", "up", "--name", name, "--nodes", "2");
  const st = JSON.parse(cli("lab", "status", "--name", name, "--json")) as { nodes: { name: string; ip: string; subnet: string; vtepMac: string }[] };
  const w = st.nodes.find((n) => n.name === `${name}-worker`)!;
  const peer = { subnet: w.subnet, vtep: w.subnet.split("/")[0]!, mac: w.vtepMac, ip: w.ip };
  const nl = Rtnl.open({ netns: cp });
  const dev = () => nl.link("gauze.1")!;
  let waiting: ((e: KernelEvent) => boolean) | undefined;
  let resolve: ((at: number) => void) | undefined;
  const watch = inNetns(cp, () => watchKernel({
    onEvents: (events) => { for (const e of events) if (waiting?.(e)) { const r = resolve!; waiting = undefined; r(performance.now()); } },
    onOverrun: () => undefined,
  }));
  const cases: { kind: string; breakIt: () => void; back: (e: KernelEvent) => boolean }[] = [
    { kind: "peer route deleted", breakIt: () => nl.run([delRoute({ dst: peer.subnet, dev: dev() })]),
      back: (e) => e.kind === "route" && e.op === "new" && e.route.dst === peer.subnet && e.route.gateway === peer.vtep },
    { kind: "neighbour deleted", breakIt: () => nl.run([delNeigh(dev(), peer.vtep)]),
      back: (e) => e.kind === "neigh" && e.op === "new" && e.neigh.dst === peer.vtep && e.neigh.lladdr === peer.mac },
    { kind: "FDB entry re-pointed", breakIt: () => nl.run([replaceFdb(dev(), peer.mac, "172.18.255.9")]),
      back: (e) => e.kind === "fdb" && e.op === "new" && e.fdb.mac === peer.mac && e.fdb.dst === peer.ip },
    { kind: "FDB entry deleted", breakIt: () => nl.run([delFdb(dev(), peer.mac, peer.ip)]),
      back: (e) => e.kind === "fdb" && e.op === "new" && e.fdb.mac === peer.mac && e.fdb.dst === peer.ip },
    { kind: "overlay device set down", breakIt: () => nl.run([setLink(dev(), { up: false })]),
      back: (e) => e.kind === "route" && e.op === "new" && e.route.dst === peer.subnet },
  ];
  const rows: { kind: string; n: number; p50: number; p95: number; max: number }[] = [];
  for (const c of cases) {
    const ms: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const back = new Promise<number>((r) => { resolve = r; });
      waiting = c.back;
      const t0 = performance.now();
      c.breakIt();
      const timeout = new Promise<number>((_, rej) => setTimeout(() => rej(new Error(`${c.kind}: not back within 5 s`)), 5000));
      ms.push((await Promise.race([back, timeout])) - t0);
      await new Promise((r) => setTimeout(r, 20)); // let the agent settle before the next round
    }
    rows.push({ kind: c.kind, n: ms.length, p50: percentile(ms, 50), p95: percentile(ms, 95), max: Math.max(...ms) });
  }
  watch.stop();
  nl.close();
  if (asJson) console.log(JSON.stringify({ bench: "drift", rounds, rows }, null, 2));
  else {
    console.log(`drift: ${rounds} rounds each; ms from the hand change to the entry back (kernel events, both ends)`);
    console.log("kind                       p50     p95     max   (target: back within 1000 ms; flannel: at its next lease event)");
    for (const r of rows) console.log(`${r.kind.padEnd(25)} ${r.p50.toFixed(1).padStart(6)} ${r.p95.toFixed(1).padStart(7)} ${r.max.toFixed(1).padStart(7)}`);
  }
} finally {
  spawnSync(gauze, ["lab", "down", "--name", name]);
}
process.exit(0);
