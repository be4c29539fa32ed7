// gauze's image, built with podman from local files only: what is in it (the executable, nft
// iptables with its modules and the libraries ldd finds, CA certificates; no shell, no package
// manager), its size, its default command (the agent), and that iptables inside it programs a
// node's namespace with only NET_ADMIN and NET_RAW.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, World, must, sh } from "./helpers.ts";

const w = new World("im");
const node = w.netns("node");
const dir = w.tempDir();
const root = join(dir, "root");
const conf = join(dir, "containers.conf");
writeFileSync(conf, ['[containers]', 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]', '[engine]', 'cgroup_manager = "cgroupfs"', 'runtime = "runc"', 'events_logger = "file"', ""].join("\n"));
const podman = (...args: string[]) => sh(["podman", "--root", root, "--runroot", join(root, "run"), "--storage-driver", "vfs", ...args], { env: { ...process.env, CONTAINERS_CONF: conf } });
after(() => { podman("rm", "-a", "-f", "-t", "0"); podman("rmi", "-a", "-f"); });

test("the image: what is in it, its size, its default command; it runs the agent's tools in a node namespace", { timeout: 180_000 }, () => {
  const r = JSON.parse(must([GAUZE, "image", "--podman-root", root, "--tag", "localhost/gauze:test", "--json"])) as { tag: string; size: number; files: { path: string; bytes: number }[] };
  const paths = r.files.map((f) => f.path);
  for (const p of ["/usr/local/bin/gauze", "/usr/sbin/xtables-nft-multi", "/usr/sbin/iptables-restore", "/etc/ssl/certs/ca-certificates.crt"]) assert.ok(paths.includes(p), `${p} in the image`);
  assert.ok(paths.some((p) => /xtables\/libxt_MASQUERADE\.so$/.test(p)) && paths.some((p) => /xtables\/libxt_comment\.so$/.test(p)), "iptables' modules for the rules gauze writes");
  assert.ok(paths.some((p) => /libc\.so\.6$/.test(p)));
  for (const p of ["/bin/sh", "/usr/bin/apt", "/usr/bin/dpkg", "/sbin/ip", "/bin/ip"]) assert.ok(!paths.includes(p), `${p} is not in the image`);
  const exe = r.files.find((f) => f.path === "/usr/local/bin/gauze")!.bytes;
  assert.ok(r.size >= exe && r.size < exe + 20e6, `the image is the executable plus less than 20 MB (${(r.size / 1e6).toFixed(1)} MB, executable ${(exe / 1e6).toFixed(1)} MB)`);
  const cfg = JSON.parse(podman("image", "inspect", "localhost/gauze:test").stdout) as { Config: { Entrypoint: string[]; Cmd: string[] } }[];
  assert.deepEqual([cfg[0]!.Config.Entrypoint, cfg[0]!.Config.Cmd], [["/usr/local/bin/gauze"], ["agent"]], "the default command is the agent");
  const v = podman("run", "--rm", "--network", "none", "localhost/gauze:test", "version", "--json");
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /"gauze":"/);
  // iptables inside the image, in a namespace standing in for a node, with the agent's capabilities.
  const rule = ["-t", "nat", "-A", "POSTROUTING", "-s", "10.244.0.0/16", "!", "-d", "10.244.0.0/16", "-m", "comment", "--comment", "gauze image test", "-j", "MASQUERADE"];
  const ipt = podman("run", "--rm", "--network", `ns:/run/netns/${node}`, "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--entrypoint", '["/usr/sbin/iptables"]', "localhost/gauze:test", ...rule);
  assert.equal(ipt.status, 0, ipt.stderr);
  assert.match(must(["nsenter", `--net=/run/netns/${node}`, "iptables-save", "-t", "nat"]), /-A POSTROUTING -s 10\.244\.0\.0\/16 ! -d 10\.244\.0\.0\/16 -m comment --comment "gauze image test" -j MASQUERADE/);
});
