// bench/cni-latency: ADD and DEL latency of the gauze plugin against the reference chain
// (loopback + bridge + host-local, as libcni would run them one after another), same machine,
// same run, interleaved so that machine noise hits both alike. Everything happens inside
// gz-bench-* namespaces; the node's bridge lives in its own namespace.
// The measuring loop itself runs inside the node's namespace (one nsenter for the whole loop),
// so each plugin is exec'd directly, as a runtime on the node would: with an nsenter per call
// the reference chain, two execs, would pay the extra exec twice and gauze once.
//   node --import tsx bench/cni-latency.ts [--n 60] [--json]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, must, percentile, run } from "./lib.ts";

const args = process.argv.slice(2);
const N = Number(args[args.indexOf("--n") + 1] ?? 60) || 60;
const asJson = args.includes("--json");
const WARM = 3;
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const refDir = ["/usr/lib/cni", "/opt/cni/bin"].find((d) => run(["test", "-x", `${d}/bridge`]).status === 0);
if (!refDir) throw new Error("reference CNI plugins not found (apt-get install containernetworking-plugins)");

if (process.env.GZ_BENCH_INNER) inner(process.env.GZ_BENCH_INNER, process.env.GZ_BENCH_DATA!);
else outer();

/** Makes the namespaces, runs the loop inside the node's namespace, removes everything. */
function outer(): void {
  const tag = `gz-bench-${process.pid}`;
  const node = `${tag}-node`;
  const dataDir = mkdtempSync(join(tmpdir(), "gauze-bench-"));
  const made: string[] = [];
  try {
    must(["ip", "netns", "add", node]);
    made.push(node);
    for (let i = 0; i < N; i++) {
      must(["ip", "netns", "add", `${tag}-p${i}`]);
      made.push(`${tag}-p${i}`);
    }
    const r = spawnSync("nsenter", [`--net=/run/netns/${node}`, process.execPath, ...process.execArgv, process.argv[1]!, ...args], {
      stdio: "inherit", env: { ...process.env, GZ_BENCH_INNER: tag, GZ_BENCH_DATA: dataDir },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    for (const ns of made) run(["ip", "netns", "del", ns]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function inner(tag: string, dataDir: string): void {
  const gauzeConf = JSON.stringify({ cniVersion: "1.0.0", name: "bench-gauze", type: "gauze", bridge: "gzb0", mtu: 1500, ipam: { ranges: [[{ subnet: "10.251.0.0/24" }]], dataDir } });
  const bridgeConf = JSON.stringify({ cniVersion: "1.0.0", name: "bench-ref", type: "bridge", bridge: "gzr0", mtu: 1500, isGateway: true, isDefaultGateway: true, hairpinMode: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.252.0.0/24" }]], dataDir } });
  const loConf = JSON.stringify({ cniVersion: "1.0.0", name: "bench-ref", type: "loopback" });

  // gauze as eth0 and the reference chain as eth1 of the same pod namespace.
  function plugin(bin: string, cmd: string, id: string, netns: string, conf: string, ifname: string) {
    const r = run([bin], {
      input: conf,
      env: { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: refDir },
    });
    if (r.status !== 0) throw new Error(`${bin} ${cmd} ${id}: ${r.stdout}${r.stderr}`);
    return r.ms;
  }

  const times = { gauzeAdd: [] as number[], gauzeDel: [] as number[], refAdd: [] as number[], refDel: [] as number[] };
  for (let i = 0; i < N; i++) {
    const ns = `/run/netns/${tag}-p${i}`;
    const gAdd = plugin(gauze, "ADD", `g${i}`, ns, gauzeConf, "eth0");
    const refAdd = plugin(`${refDir}/loopback`, "ADD", `r${i}`, ns, loConf, "lo") + plugin(`${refDir}/bridge`, "ADD", `r${i}`, ns, bridgeConf, "eth1");
    if (i >= WARM) { times.gauzeAdd.push(gAdd); times.refAdd.push(refAdd); }
  }
  for (let i = 0; i < N; i++) {
    const ns = `/run/netns/${tag}-p${i}`;
    const gDel = plugin(gauze, "DEL", `g${i}`, ns, gauzeConf, "eth0");
    const refDel = plugin(`${refDir}/bridge`, "DEL", `r${i}`, ns, bridgeConf, "eth1") + plugin(`${refDir}/loopback`, "DEL", `r${i}`, ns, loConf, "lo");
    if (i >= WARM) { times.gauzeDel.push(gDel); times.refDel.push(refDel); }
  }

  const rows = (["Add", "Del"] as const).map((verb) => {
    const g = times[`gauze${verb}`];
    const r = times[`ref${verb}`];
    const gp50 = percentile(g, 50), rp50 = percentile(r, 50);
    return { verb: verb.toUpperCase(), n: g.length, gauzeP50: gp50, gauzeP95: percentile(g, 95), refP50: rp50, refP95: percentile(r, 95), ratioP50: gp50 / rp50 };
  });
  if (asJson) {
    console.log(JSON.stringify({ bench: "cni-latency", n: N, rows }, null, 2));
  } else {
    console.log(`cni-latency: N=${rows[0]!.n} per verb (after ${WARM} warm-up), ms, gauze vs reference loopback+bridge+host-local`);
    console.log("verb  gauze p50  gauze p95  ref p50  ref p95  ratio p50 (gauze/ref)");
    for (const r of rows) console.log(`${r.verb.padEnd(5)} ${fmt(r.gauzeP50).padStart(9)} ${fmt(r.gauzeP95).padStart(10)} ${fmt(r.refP50).padStart(8)} ${fmt(r.refP95).padStart(8)}  ${r.ratioP50.toFixed(2)}x`);
  }
}
