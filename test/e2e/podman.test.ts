// A real container runtime calls gauze: Debian's podman 4.3 with its CNI backend (runc,
// cgroupfs, lowered ulimits since CAP_SYS_RESOURCE is missing here, a busybox image made with
// `podman import`). podman runs inside a namespace that stands in for the node, entered with
// nsenter (ip netns exec would remount /sys and hide the cgroup mounts runc needs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, World, ipIn, must, sh } from "./helpers.ts";

const w = new World("o");
const node = w.netns("node");
const dir = w.tempDir();
const env = { ...process.env, CONTAINERS_CONF: join(dir, "containers.conf") };
const podmanBase = ["podman", "--root", join(dir, "root"), "--runroot", join(dir, "runroot"), "--storage-driver", "vfs"];

function podman(args: string[]) {
  return sh(["timeout", "120", "nsenter", `--net=/run/netns/${node}`, ...podmanBase, ...args], { env });
}

test("podman (CNI backend) runs two containers on gauze; they ping each other; rm releases everything", { timeout: 300_000 }, (t) => {
  t.after(() => {
    sh([...podmanBase, "rm", "-af", "-t", "0"], { env });
    sh([...podmanBase, "rmi", "-af"], { env });
  });
  const rootfs = join(dir, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
  for (const a of ["sh", "ip", "ping", "sleep", "cat"]) symlinkSync("busybox", join(rootfs, "bin", a));
  must(["tar", "-C", rootfs, "-cf", join(dir, "rootfs.tar"), "."]);
  mkdirSync(join(dir, "bin"));
  copyFileSync(GAUZE, join(dir, "bin", "gauze"));
  mkdirSync(join(dir, "net.d"));
  const ipamDir = join(dir, "ipam");
  writeFileSync(join(dir, "net.d", "10-gauze.conflist"), JSON.stringify({
    cniVersion: "1.0.0", name: "gauzetest",
    plugins: [{ type: "gauze", bridge: "gzbrpod", ipam: { ranges: [[{ subnet: "10.87.0.0/24" }]], dataDir: ipamDir } }],
  }));
  writeFileSync(env.CONTAINERS_CONF, [
    "[containers]", 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
    "[network]", 'network_backend = "cni"', `cni_plugin_dirs = ["${join(dir, "bin")}"]`, `network_config_dir = "${join(dir, "net.d")}"`,
    "[engine]", 'cgroup_manager = "cgroupfs"', 'runtime = "runc"', 'events_logger = "file"', "",
  ].join("\n"));
  const imp = sh([...podmanBase, "import", join(dir, "rootfs.tar"), "localhost/gz-busybox"], { env });
  assert.equal(imp.status, 0, imp.stderr);

  const a = podman(["run", "-d", "--name", "gz-a", "--network", "gauzetest", "localhost/gz-busybox", "sleep", "120"]);
  assert.equal(a.status, 0, a.stderr);
  const ipA = podman(["inspect", "-f", "{{.NetworkSettings.Networks.gauzetest.IPAddress}}", "gz-a"]).stdout.trim();
  assert.match(ipA, /^10\.87\.0\.\d+$/);
  const b = podman(["run", "--rm", "--network", "gauzetest", "localhost/gz-busybox", "sh", "-c", `ip -4 addr show eth0 && ping -c 2 -W 2 ${ipA}`]);
  assert.equal(b.status, 0, b.stdout + b.stderr);
  assert.match(b.stdout, /inet 10\.87\.0\.\d+\/24/);
  assert.match(b.stdout, /2 packets received/);
  assert.equal(readdirSync(join(ipamDir, "gauzetest")).filter((f) => /^10\./.test(f)).length, 1, "the --rm container's address is released");
  assert.equal(podman(["rm", "-f", "-t", "0", "gz-a"]).status, 0);
  assert.deepEqual(readdirSync(join(ipamDir, "gauzetest")).filter((f) => /^10\./.test(f)), [], "every address released");
  assert.deepEqual(ipIn<{ ifname: string }[]>(node, ["link", "show", "master", "gzbrpod"]), [], "every veth removed");
});
