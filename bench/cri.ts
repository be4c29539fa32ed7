// bench/cri: a pod sandbox started by a real runtime (podman 4.3 with its CNI backend, runc), on
// gauze against the reference chain (bridge with host-local; podman brings up lo itself), same
// run, interleaved. Measures `podman run -d` (create, network ADD, start) and `podman rm -f`
// (stop, network DEL, remove) wall time. Everything happens in gz-cri-* namespaces and a
// scratch podman root; nothing is pulled (busybox is imported from the host's busybox-static).
//   node --import tsx bench/cri.ts [--n 15] [--json]
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, must, percentile, run } from "./lib.ts";

const args = process.argv.slice(2);
const N = Number(args[args.indexOf("--n") + 1] ?? 15) || 15;
const asJson = args.includes("--json");
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const refDir = ["/usr/lib/cni", "/opt/cni/bin"].find((d) => run(["test", "-x", `${d}/bridge`]).status === 0)!;
const dir = mkdtempSync(join(tmpdir(), "gauze-cri-"));
const node = `gz-cri-${process.pid}`;
const env = { ...process.env, CONTAINERS_CONF: join(dir, "containers.conf") };
const podmanBase = ["podman", "--root", join(dir, "root"), "--runroot", join(dir, "runroot"), "--storage-driver", "vfs"];
const podman = (a: string[]) => run(["nsenter", `--net=/run/netns/${node}`, ...podmanBase, ...a], { env });

try {
  must(["ip", "netns", "add", node]);
  const rootfs = join(dir, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
  symlinkSync("busybox", join(rootfs, "bin", "sleep"));
  must(["tar", "-C", rootfs, "-cf", join(dir, "rootfs.tar"), "."]);
  mkdirSync(join(dir, "bin"));
  copyFileSync(gauze, join(dir, "bin", "gauze"));
  for (const p of ["bridge", "host-local"]) copyFileSync(join(refDir, p), join(dir, "bin", p));
  mkdirSync(join(dir, "net.d"));
  writeFileSync(join(dir, "net.d", "10-gauze.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "gzcri", plugins: [{ type: "gauze", bridge: "gzcri0", ipam: { ranges: [[{ subnet: "10.88.0.0/24" }]], dataDir: join(dir, "ipam") } }] }));
  writeFileSync(join(dir, "net.d", "20-ref.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "refcri", plugins: [{ type: "bridge", bridge: "gzcri1", isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.89.0.0/24" }]], dataDir: join(dir, "ipam") } }] }));
  writeFileSync(env.CONTAINERS_CONF, [
    "[containers]", 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
    "[network]", 'network_backend = "cni"', `cni_plugin_dirs = ["${join(dir, "bin")}"]`, `network_config_dir = "${join(dir, "net.d")}"`,
    "[engine]", 'cgroup_manager = "cgroupfs"', 'runtime = "runc"', 'events_logger = "file"', "",
  ].join("\n"));
  must([...podmanBase, "import", join(dir, "rootfs.tar"), "localhost/gz-cri-busybox"], { env });
  const times = { gauze: { run: [] as number[], rm: [] as number[] }, ref: { run: [] as number[], rm: [] as number[] } };
  for (let i = 0; i < N + 2; i++) {
    for (const [which, net] of [["gauze", "gzcri"], ["ref", "refcri"]] as const) {
      const r = podman(["run", "-d", "--name", `gz-cri-${which}-${i}`, "--network", net, "localhost/gz-cri-busybox", "sleep", "60"]);
      if (r.status !== 0) throw new Error(`${which}: ${r.stderr}`);
      const d = podman(["rm", "-f", "-t", "0", `gz-cri-${which}-${i}`]);
      if (d.status !== 0) throw new Error(`${which} rm: ${d.stderr}`);
      if (i >= 2) { times[which].run.push(r.ms); times[which].rm.push(d.ms); }
    }
  }
  const rows = (["run", "rm"] as const).map((what) => {
    const g = percentile(times.gauze[what], 50), r = percentile(times.ref[what], 50);
    return { what: what === "run" ? "podman run -d (sandbox start)" : "podman rm -f (sandbox teardown)", gauzeP50: g, refP50: r, ratio: g / r };
  });
  if (asJson) console.log(JSON.stringify({ bench: "cri", n: N, rows }, null, 2));
  else {
    console.log(`cri: podman 4.3 (CNI backend, runc), N=${N} each, interleaved; ms p50, gauze vs bridge+host-local`);
    for (const r of rows) console.log(`${r.what.padEnd(34)} gauze ${fmt(r.gauzeP50).padStart(7)}  ref ${fmt(r.refP50).padStart(7)}  ${r.ratio.toFixed(2)}x`);
  }
} finally {
  run([...podmanBase, "rm", "-af", "-t", "0"], { env });
  run([...podmanBase, "rmi", "-af"], { env });
  run(["ip", "netns", "del", node]);
  rmSync(dir, { recursive: true, force: true });
}
