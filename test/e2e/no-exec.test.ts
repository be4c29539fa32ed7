// The plugin programs the kernel in-process: ADD, CHECK, DEL, GC and STATUS exec nothing. Proved
// two ways at once: every ip and bridge binary on the machine is replaced (in a private mount
// namespace) by a trap that records any call, and strace counts every execve of the plugin's
// process tree: exactly one, the plugin itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, REF_DIR, World, gauzeConf, json, nsPath, pluginEnv, sh, type AddResult } from "./helpers.ts";

const w = new World("x");
const node = w.netns("node");
const dir = w.tempDir();
const dataDir = w.tempDir();
const conf = gauzeConf(dataDir, { name: "gzx", bridge: "gzxbr0" });
const marker = join(dir, "trapped");
const trap = join(dir, "trap");
writeFileSync(trap, `#!/bin/sh\necho "$0 $*" >> ${marker}\nexit 127\n`);
chmodSync(trap, 0o755);
const TOOLS = ["/usr/bin/ip", "/usr/sbin/ip", "/bin/ip", "/sbin/ip", "/usr/bin/bridge", "/usr/sbin/bridge", "/bin/bridge", "/sbin/bridge"];

/** Runs `argv` in the node's namespace with ip and bridge trapped, under strace; returns the run and its execs. */
function trapped(argv: string[], env: NodeJS.ProcessEnv, input = "") {
  const log = join(dir, `strace-${Math.random().toString(36).slice(2)}`);
  const script = `set -e; for p in ${TOOLS.join(" ")}; do if [ -f "$p" ] && [ ! -L "$p" ]; then mount --bind ${trap} "$p"; fi; done; exec strace -f -qq -e trace=execve -o ${log} "$@"`;
  const r = sh(["nsenter", `--net=${nsPath(node)}`, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", ...argv], { input, env });
  const execs = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter((l) => /execve\(/.test(l) && !/resumed/.test(l)) : [];
  return { ...r, execs };
}

test("the trap works: ip and bridge are unreachable in the plugin's mount namespace", () => {
  const r = trapped(["ip", "-V"], process.env);
  assert.notEqual(r.status, 0);
  assert.match(readFileSync(marker, "utf8"), /-V/);
  writeFileSync(marker, "");
});

test("ADD, CHECK, DEL, GC and STATUS run with ip and bridge gone and exec nothing", () => {
  const pod = w.netns("pod");
  const call = (command: string, stdin: object, extra: Partial<{ containerId: string; netns: string }> = {}) =>
    trapped([GAUZE], pluginEnv({ node, command, containerId: "ctr-x", netns: nsPath(pod), path: REF_DIR, ...extra }), JSON.stringify(stdin));
  const add = call("ADD", conf);
  assert.equal(add.status, 0, add.stdout + add.stderr);
  const result = json<AddResult>(add);
  assert.equal(result.ips[0]!.address, "10.99.0.2/24");
  const check = call("CHECK", { ...conf, prevResult: result });
  assert.equal(check.status, 0, check.stdout);
  const status = call("STATUS", conf);
  assert.equal(status.status, 0, status.stdout);
  const gc = call("GC", { ...conf, "cni.dev/valid-attachments": [{ containerID: "ctr-x", ifname: "eth0" }] });
  assert.equal(gc.status, 0, gc.stdout);
  const del = call("DEL", conf);
  assert.equal(del.status, 0, del.stdout);
  for (const [verb, r] of Object.entries({ ADD: add, CHECK: check, STATUS: status, GC: gc, DEL: del })) {
    assert.equal(r.execs.length, 1, `${verb}: ${r.execs.join("\n")}`);
    assert.match(r.execs[0]!, new RegExp(`execve\\("${GAUZE.replaceAll("/", "\\/")}"`), verb);
  }
  assert.equal(readFileSync(marker, "utf8"), "", "no ip or bridge call reached the trap");
  // And the kernel agrees with what ADD reported, through iproute2 as the oracle (outside the trap).
  assert.equal(sh(["ip", "-n", node, "link", "show", "gzxbr0"]).status, 0);
});
