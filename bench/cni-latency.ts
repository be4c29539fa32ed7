// bench/cni-latency: ADD and DEL latency of the gauze plugin against the reference chain
// (loopback + bridge + host-local, as libcni would run them one after another), same machine,
// same run, interleaved so that machine noise hits both alike. Everything happens inside
// gz-bench-* namespaces; the node's bridge lives in its own namespace.
//   node --import tsx bench/cni-latency.ts [--n 60] [--json]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, must, percentile, run } from "./lib.ts";

const args = process.argv.slice(2);
const N = Number(args[args.indexOf("--n") + 1] ?? 60) || 60;
const asJson = args.includes("--json");
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const refDir = ["/usr/lib/cni", "/opt/cni/bin"].find((d) => run(["test", "-x", `${d}/bridge`]).status === 0);
if (!refDir) throw new Error("reference CNI plugins not found (apt-get install containernetworking-plugins)");

const tag = `gz-bench-${process.pid}`;
const node = `${tag}-node`;
const dataDir = mkdtempSync(join(tmpdir(), "gauze-bench-"));
const gauzeConf = JSON.stringify({ cniVersion: "1.0.0", name: "bench-gauze", type: "gauze", bridge: "gzb0", mtu: 1500, ipam: { ranges: [[{ subnet: "10.251.0.0/24" }]], dataDir } });
const bridgeConf = JSON.stringify({ cniVersion: "1.0.0", name: "bench-ref", type: "bridge", bridge: "gzr0", mtu: 1500, isGateway: true, isDefaultGateway: true, hairpinMode: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.252.0.0/24" }]], dataDir } });
const loConf = JSON.stringify({ cniVersion: "1.0.0", name: "bench-ref", type: "loopback" });

function plugin(bin: string, cmd: string, id: string, netns: string, conf: string) {
  const r = run(["nsenter", `--net=/run/netns/${node}`, bin], {
    input: conf,
    env: { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: refDir },
  });
  if (r.status !== 0) throw new Error(`${bin} ${cmd} ${id}: ${r.stdout}${r.stderr}`);
  return r.ms;
}

const times = { gauzeAdd: [] as number[], gauzeDel: [] as number[], refAdd: [] as number[], refDel: [] as number[] };
const pods: string[] = [];
try {
  must(["ip", "netns", "add", node]);
  for (let i = 0; i < N; i++) {
    const pod = `${tag}-p${i}`;
    must(["ip", "netns", "add", pod]);
    pods.push(pod);
  }
  const warm = 3;
  for (let i = 0; i < N; i++) {
    const ns = `/run/netns/${pods[i]}`;
    const g = `g${i}`;
    const r = `r${i}`;
    // gauze on this pod's namespace as eth0, the reference chain on the next... they need
    // separate namespaces: each pod gets one attachment of each, gauze eth0, reference eth1.
    const gAdd = plugin(gauze, "ADD", g, ns, gauzeConf);
    const refAdd = plugin(`${refDir}/loopback`, "ADD", r, ns, loConf) + pluginRef("ADD", r, ns);
    if (i >= warm) { times.gauzeAdd.push(gAdd); times.refAdd.push(refAdd); }
  }
  for (let i = 0; i < N; i++) {
    const ns = `/run/netns/${pods[i]}`;
    const gDel = plugin(gauze, "DEL", `g${i}`, ns, gauzeConf);
    const refDel = pluginRef("DEL", `r${i}`, ns) + plugin(`${refDir}/loopback`, "DEL", `r${i}`, ns, loConf);
    if (i >= warm) { times.gauzeDel.push(gDel); times.refDel.push(refDel); }
  }
} finally {
  for (const p of pods) run(["ip", "netns", "del", p]);
  run(["ip", "netns", "del", node]);
  rmSync(dataDir, { recursive: true, force: true });
}

function pluginRef(cmd: string, id: string, ns: string) {
  // The reference bridge on eth1 so that it does not collide with gauze's eth0 in the same pod.
  const r = run(["nsenter", `--net=/run/netns/${node}`, `${refDir}/bridge`], {
    input: bridgeConf,
    env: { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: ns, CNI_IFNAME: "eth1", CNI_PATH: refDir },
  });
  if (r.status !== 0) throw new Error(`bridge ${cmd} ${id}: ${r.stdout}${r.stderr}`);
  return r.ms;
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
  console.log(`cni-latency: N=${rows[0]!.n} per verb (after ${3} warm-up), ms, gauze vs reference loopback+bridge+host-local`);
  console.log("verb  gauze p50  gauze p95  ref p50  ref p95  ratio p50 (gauze/ref)");
  for (const r of rows) console.log(`${r.verb.padEnd(5)} ${fmt(r.gauzeP50).padStart(9)} ${fmt(r.gauzeP95).padStart(10)} ${fmt(r.refP50).padStart(8)} ${fmt(r.refP95).padStart(8)}  ${r.ratioP50.toFixed(2)}x`);
}
