// A plugin killed with SIGKILL in the middle of ADD: whatever it left, a later ADD never gets a
// duplicate address, and DEL or GC clean everything up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, World, type AddResult, gauzeConf, ipIn, json, nsPath, plugin, pluginEnv, reservations, ping } from "./helpers.ts";

const w = new World("k");
const node = w.netns("node");

/** Starts ADD, waits until it reports the fault point (or `delayMs`), then SIGKILLs it. */
function addAndKill(conf: object, id: string, pod: string, opts: { hangAt?: string; delayMs?: number }): Promise<void> {
  return new Promise((resolve) => {
    const env = pluginEnv({ node, command: "ADD", containerId: id, netns: nsPath(pod), extraEnv: opts.hangAt ? { GAUZE_FAULT: `${opts.hangAt}:hang` } : {} });
    const p = spawn("nsenter", [`--net=/run/netns/${node}`, GAUZE], { env });
    p.stdin.end(JSON.stringify(conf));
    const kill = () => p.kill("SIGKILL");
    if (opts.hangAt) p.stderr.on("data", (d: Buffer) => { if (d.toString().includes("hanging at fault point")) kill(); });
    else setTimeout(kill, opts.delayMs ?? 0);
    p.on("close", () => resolve());
  });
}

for (const point of ["after-ipam", "after-veth", "after-pod"]) {
  test(`SIGKILL ${point}: later ADDs get other addresses, DEL of the killed one cleans up`, async () => {
    const dir = w.tempDir();
    const conf = gauzeConf(dir, { bridge: `gzk${point.length}` });
    const victim = w.netns();
    await addAndKill(conf, "victim", victim, { hangAt: point });
    const held = reservations(dir);
    assert.equal(held.size, 1, "the killed ADD had reserved its address");
    const victimIp = [...held.keys()][0]!;
    const other = w.netns();
    const r = plugin({ node, command: "ADD", containerId: "other", netns: nsPath(other) }, conf);
    assert.equal(r.status, 0, r.stdout);
    assert.notEqual(json<AddResult>(r).ips[0]!.address.split("/")[0], victimIp, "no duplicate");
    // The runtime retries: DEL then ADD of the same attachment works, stale veth or not.
    assert.equal(plugin({ node, command: "DEL", containerId: "victim", netns: nsPath(victim) }, conf).status, 0);
    assert.equal(reservations(dir).size, 1);
    assert.deepEqual(portsOf(`gzk${point.length}`).length, 1, "only the other pod's veth remains");
    const again = plugin({ node, command: "ADD", containerId: "victim", netns: nsPath(w.netns()) }, conf);
    assert.equal(again.status, 0, again.stdout);
  });
}

function portsOf(bridge: string): string[] {
  return ipIn<{ ifname: string }[]>(node, ["link", "show", "master", bridge]).map((l) => l.ifname);
}

test("SIGKILL after the veth: GC removes the stale veth and reservation, ADD works again", async () => {
  const dir = w.tempDir();
  const conf = gauzeConf(dir, { bridge: "gzkst" });
  await addAndKill(conf, "stale", w.netns(), { hangAt: "after-veth" });
  assert.equal(portsOf("gzkst").length, 1, "the killed ADD left its host veth");
  assert.equal(plugin({ node, command: "GC" }, { ...conf, "cni.dev/valid-attachments": [] }).status, 0);
  assert.equal(reservations(dir).size, 0);
  assert.deepEqual(portsOf("gzkst"), []);
  const r = plugin({ node, command: "ADD", containerId: "stale", netns: nsPath(w.netns()) }, conf);
  assert.equal(r.status, 0, r.stdout);
});

test("SIGKILL after the veth, reservation cleared by hand: ADD replaces the stale host end", async () => {
  const dir = w.tempDir();
  // Its own subnet: several bridges with one subnet in one node would fight over the route.
  const conf = gauzeConf(dir, { bridge: "gzkrp" }, { ranges: [[{ subnet: "10.95.0.0/24" }]] });
  await addAndKill(conf, "stale2", w.netns(), { hangAt: "after-veth" });
  const [stale] = portsOf("gzkrp");
  assert.ok(stale);
  for (const ip of reservations(dir).keys()) rmSync(join(dir, "gztest", ip));
  const pod = w.netns();
  const r = plugin({ node, command: "ADD", containerId: "stale2", netns: nsPath(pod) }, conf);
  assert.equal(r.status, 0, r.stdout);
  assert.equal(json<AddResult>(r).interfaces[1]!.name, stale, "same deterministic name, new veth");
  assert.deepEqual(portsOf("gzkrp"), [stale]);
  assert.ok(ping(pod, "10.95.0.1"));
});

test("SIGKILL at random moments of 30 ADDs: no duplicates, GC leaves exactly the live pods", async () => {
  const dir = w.tempDir();
  const conf = gauzeConf(dir, { bridge: "gzkrnd", mtu: 1500 }, { ranges: [[{ subnet: "10.94.0.0/24" }]] });
  const survivors: { id: string; ip: string }[] = [];
  for (let i = 0; i < 30; i++) {
    const pod = w.netns();
    if (i % 3 === 0) {
      const r = plugin({ node, command: "ADD", containerId: `live${i}`, netns: nsPath(pod) }, conf);
      assert.equal(r.status, 0, r.stdout);
      survivors.push({ id: `live${i}`, ip: json<AddResult>(r).ips[0]!.address.split("/")[0]! });
    } else {
      await addAndKill(conf, `dead${i}`, pod, { delayMs: (i * 7) % 25 });
    }
  }
  const ips = survivors.map((s) => s.ip);
  assert.equal(new Set(ips).size, ips.length);
  const gc = plugin({ node, command: "GC" }, { ...conf, "cni.dev/valid-attachments": survivors.map((s) => ({ containerID: s.id, ifname: "eth0" })) });
  assert.equal(gc.status, 0, gc.stdout);
  assert.deepEqual([...reservations(dir).keys()].sort(), [...ips].sort());
  assert.deepEqual(portsOf("gzkrnd").length, survivors.length, "only the live pods' veths remain");
  assert.equal(readdirSync(join(dir, "gztest")).filter((f) => f.startsWith(".gauze-reserving")).length, 0, "no temp files left");
  for (const s of survivors) assert.ok(ping(node, s.ip), `${s.id} still reachable`);
});
