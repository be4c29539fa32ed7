// The two ends of a node's life with gauze. install-cni replaces the plugin atomically while a
// runtime keeps exec'ing it; uninstall leaves a node exactly as it was before the install:
// links, routes, iptables rules, files and the registry, compared with a snapshot taken on the
// node before gauze was installed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { GAUZE, World, must, sh } from "./helpers.ts";

const w = new World("iu");
const name = `t${process.pid % 1000}iu`;
after(() => { sh([GAUZE, "lab", "down", "--name", name]); });

test("install-cni: the plugin is replaced while a runtime keeps exec'ing it, and every exec runs a whole file", async () => {
  const dir = w.tempDir();
  const binDir = join(dir, "bin");
  // Two sources with different inodes, so that every install really writes.
  for (const v of ["a", "b"]) { mkdirSync(join(dir, v)); copyFileSync(GAUZE, join(dir, v, "gauze")); }
  const first = JSON.parse(must([join(dir, "a", "gauze"), "install-cni", "--bin-dir", binDir, "--json"])) as { path: string; bytes: number; written: boolean };
  assert.equal(first.path, join(binDir, "gauze"));
  assert.equal(first.written, true);
  assert.equal(statSync(first.path).size, statSync(GAUZE).size);
  assert.equal(statSync(first.path).mode & 0o777, 0o755);
  // A runtime's view: exec the plugin in a loop while installs replace it.
  const runtime = spawn("bash", ["-c", `ok=0; bad=0; for i in $(seq 150); do if CNI_COMMAND=VERSION "${first.path}" </dev/null | grep -q cniVersion; then ok=$((ok+1)); else bad=$((bad+1)); fi; done; echo "$ok $bad"`]);
  let out = "";
  runtime.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  const done = new Promise<void>((r) => runtime.on("close", () => r()));
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const r = sh([join(dir, i % 2 ? "a" : "b", "gauze"), "install-cni", "--bin-dir", binDir, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { written: boolean }).written, true);
  }
  await done;
  const [ok, bad] = out.trim().split(" ").map(Number);
  assert.equal(bad, 0, `${bad} of ${ok! + bad!} execs failed during the installs`);
  assert.deepEqual(readdirSync(binDir), ["gauze"], "no temp file left behind");
  // Installing the file onto itself writes nothing.
  const same = JSON.parse(must([first.path, "install-cni", "--bin-dir", binDir, "--json"])) as { written: boolean };
  assert.equal(same.written, false);
  // A bin dir that cannot be written is a clear error.
  const ro = sh([GAUZE, "install-cni", "--bin-dir", "/proc/gauze-not-writable"]);
  assert.notEqual(ro.status, 0);
  assert.match(ro.stderr, /cannot install|mounted writable|ENOENT|EACCES|read-only|no such/i);
});

interface Snapshot { links: string[]; routes: string[]; rules: string[]; files: string[] }

function snapshot(node: string, root: string): Snapshot {
  const links = (JSON.parse(must(["ip", "-n", `gz-${node}`, "-d", "-j", "link", "show"])) as { ifname: string; linkinfo?: { info_kind?: string } }[])
    .map((l) => `${l.ifname} ${l.linkinfo?.info_kind ?? ""}`).sort();
  const routes = (JSON.parse(must(["ip", "-n", `gz-${node}`, "-j", "route", "show", "table", "all"])) as Record<string, unknown>[])
    .filter((r) => r.table !== "local").map((r) => `${r.dst} ${r.gateway ?? ""} ${r.dev ?? ""} ${r.protocol ?? ""}`).sort();
  // Rules, chains and any policy that is not the default. An empty table with the built-in
  // chains at ACCEPT (what the first rule written into a namespace creates; iptables has no way
  // to delete a table) behaves as no table at all.
  const builtin = /^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ACCEPT/;
  const rules = must(["nsenter", `--net=/run/netns/gz-${node}`, "iptables-save"]).split("\n")
    .filter((l) => l && !l.startsWith("#") && !l.startsWith("*") && l !== "COMMIT" && !builtin.test(l)).map((l) => l.replace(/\[\d+:\d+\]/g, "")).sort();
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      // The agent's log is the lab's; var/lib/cni/results is the runtime's cache of its pods' results.
      if (["var/log", "var/lib/cni/results"].includes(relative(root, p))) continue;
      files.push(relative(root, p) + (e.isDirectory() ? "/" : ""));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return { links, routes, rules, files: files.sort() };
}

test("uninstall leaves every node as it was before the install: links, routes, rules, files, lease", { timeout: 120_000 }, () => {
  sh([GAUZE, "lab", "down", "--name", name]);
  must([GAUZE, "lab", "up", "--name", name, "--no-cni"]);
  const nodes = [`${name}-control-plane`, `${name}-worker`];
  const root = (n: string) => `/var/lib/gauze/lab/${name}/nodes/${n}`;
  const before = Object.fromEntries(nodes.map((n) => [n, snapshot(n, root(n))]));
  must([GAUZE, "lab", "install", "--name", name]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", "control-plane", "--name", name]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", "worker", "--name", name]);
  const installed = snapshot(nodes[0]!, root(nodes[0]!));
  assert.ok(installed.links.some((l) => l.startsWith("gauze.1 vxlan")) && installed.links.some((l) => l.startsWith("cni0 bridge")), "installed: the device and the bridge are there");
  assert.ok(installed.rules.some((l) => l.includes("GAUZE")), "installed: gauze's chains are there");
  // Something that is not gauze's, which uninstall must leave alone.
  must(["ip", "-n", `gz-${nodes[0]}`, "link", "add", "gzkeep0", "type", "bridge"]);
  must([GAUZE, "lab", "uninstall", "--name", name]);
  assert.equal(sh(["ip", "-n", `gz-${nodes[0]}`, "link", "show", "gzkeep0"]).status, 0, "a link that is not gauze's stays");
  must(["ip", "-n", `gz-${nodes[0]}`, "link", "del", "gzkeep0"]);
  for (const n of nodes) {
    const now = snapshot(n, root(n));
    assert.deepEqual(now.links, before[n]!.links, `${n}: links`);
    assert.deepEqual(now.routes, before[n]!.routes, `${n}: routes`);
    assert.deepEqual(now.rules, before[n]!.rules, `${n}: iptables rules`);
    assert.deepEqual(now.files, before[n]!.files, `${n}: files`);
  }
  const leases = readdirSync(`/var/lib/gauze/lab/${name}/registry/leases`).filter((f) => f.endsWith(".json"));
  assert.deepEqual(leases, [], "no lease left in the registry");
  const st = JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { nodes: { ready: boolean; reason?: string }[] };
  assert.ok(st.nodes.every((n) => !n.ready && /cni plugin not initialized/.test(n.reason ?? "")), "the nodes are NotReady as before the install");
  // And gauze installs again cleanly on the uninstalled nodes.
  must([GAUZE, "lab", "install", "--name", name]);
  assert.ok((JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { nodes: { ready: boolean }[] }).nodes.every((n) => n.ready));
});

test("a foreign config that sorts before gauze's is named by the agent (not ready) and by doctor, and clearing it clears both", { timeout: 60_000 }, async () => {
  // Runs on the lab the uninstall test left installed.
  const node = `${name}-worker`;
  const confDir = `/var/lib/gauze/lab/${name}/nodes/${node}/etc/cni/net.d`;
  const foreign = join(confDir, "05-cilium.conflist");
  const status = () => (JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { nodes: { name: string; agent?: { ready: boolean; reason: string } }[] }).nodes.find((n) => n.name === node)!.agent!;
  const until = async (f: () => boolean) => { for (let i = 0; i < 50 && !f(); i++) await new Promise((r) => setTimeout(r, 100)); };
  const { writeFileSync, rmSync } = await import("node:fs");
  writeFileSync(foreign, JSON.stringify({ cniVersion: "0.3.1", name: "cilium", plugins: [{ type: "cilium-cni" }] }));
  try {
    await until(() => !status().ready);
    const a = status();
    assert.equal(a.ready, false);
    assert.match(a.reason, /the runtime uses .*05-cilium\.conflist, not 10-gauze\.conflist: it sorts first/);
    const report = JSON.parse(sh([GAUZE, "doctor", "--node", node, "--name", name, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[]; fix: string }[] };
    const c = report.checks.find((x) => x.id === "cni.config-first")!;
    assert.equal(c.status, "fail");
    assert.ok(c.evidence.some((e) => e.includes("05-cilium.conflist")) && c.evidence.some((e) => /new pods get cilium \(cilium-cni\)/.test(e)), c.evidence.join(" | "));
    assert.match(c.fix, /move .*05-cilium\.conflist out of/);
  } finally {
    rmSync(foreign, { force: true });
  }
  await until(() => status().ready);
  assert.equal(status().ready, true, "ready again once the foreign config is gone");
  const report = JSON.parse(sh([GAUZE, "doctor", "--node", node, "--name", name, "--json"]).stdout) as { checks: { id: string; status: string }[] };
  assert.equal(report.checks.find((x) => x.id === "cni.config-first")!.status, "ok");
});
