// Drops through tracefs against the real kernel: a packet dropped by a firewall rule in a gz-
// namespace is reported with this kernel's reason name, the function, the protocol and the
// process it was sent by; a pid filter keeps other processes' drops out; the instance is gone after.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { addNetns, delNetns, netnsPath } from "../../src/kernel/netns.ts";
import { DropWatch, dropReasons, tracefsRoot } from "../../src/kernel/tracefs.ts";
import { TRACEFS, ensureMounted, unmount } from "../../src/kernel/pseudofs.ts";

const ns = `gz-t${process.pid % 100000}`;
// A fresh machine has tracefs unmounted: the test mounts it for itself and unmounts what it mounted.
const mount = ensureMounted(TRACEFS);
after(() => {
  try { delNetns(ns); } catch { /* gone */ }
  if (mount.ok && mount.mounted) unmount(TRACEFS);
});

test("drops: the kernel's reason by name, where, and under which process; filtered to given processes", async () => {
  addNetns(ns);
  const p = netnsPath(ns);
  const sh = (...a: string[]) => spawnSync("nsenter", [`--net=${p}`, ...a], { encoding: "utf8" });
  sh("ip", "link", "set", "lo", "up");
  assert.equal(sh("iptables", "-A", "OUTPUT", "-p", "icmp", "-j", "DROP").status, 0);
  const names = dropReasons();
  assert.ok([...names.values()].includes("NETFILTER_DROP") && [...names.values()].includes("IP_OUTNOROUTES"));
  const name = `gauze-test-${process.pid}`;
  const w = DropWatch.open(name);
  try {
    const t0 = BigInt(Date.now()) * 1_000_000n;
    const ping = spawn("nsenter", [`--net=${p}`, "ping", "-c", "1", "-W", "1", "127.0.0.1"]);
    await new Promise((r) => ping.on("close", r));
    await new Promise((r) => setTimeout(r, 100));
    const all = w.read();
    const mine = all.filter((d) => d.comm === "ping" && d.reason === "NETFILTER_DROP");
    assert.equal(mine.length, 1, all.map((d) => `${d.comm} ${d.pid} ${d.reason} ${d.location}`).join("; "));
    assert.equal(mine[0]!.protocol, 2048);
    assert.match(mine[0]!.location, /^nf|^nft_do_chain|^ip/);
    const ms = Number(mine[0]!.tsNs - t0) / 1e6;
    assert.ok(ms > -50 && ms < 2000, `the drop's wall-clock time is now (${ms} ms)`);
    // Only the given process: another ping's drop is filtered out in the kernel.
    w.setPids([1]);
    const other = spawn("nsenter", [`--net=${p}`, "ping", "-c", "1", "-W", "1", "127.0.0.1"]);
    await new Promise((r) => other.on("close", r));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(w.read().filter((d) => d.comm === "ping"), []);
  } finally {
    w.close();
  }
  assert.ok(!existsSync(`${tracefsRoot()}/instances/${name}`), "the instance is removed");
});
