// gauze's IPAM and the reference host-local plugin on one data directory: either order,
// interleaved and in parallel, they never hand out one address twice, honour each other's
// round-robin cursor, and release each other's reservations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { World, REF_DIR, type AddResult, gauzeConf, json, nsPath, plugin, pluginAsync, reservations, sh, ping } from "./helpers.ts";

const w = new World("c");
const node = w.netns("node");
const scratch = w.netns("scratch");

function hostLocal(command: string, id: string, dataDir: string, subnet: string) {
  const conf = { cniVersion: "1.0.0", name: "gztest", ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir } };
  return plugin({ node, command, containerId: id, netns: nsPath(scratch), bin: `${REF_DIR}/host-local` }, conf);
}

function gauzeAdd(id: string, dataDir: string, subnet: string) {
  const pod = w.netns();
  const r = plugin({ node, command: "ADD", containerId: id, netns: nsPath(pod) }, gauzeConf(dataDir, { bridge: "gzbrc" }, { ranges: [[{ subnet }]] }));
  assert.equal(r.status, 0, r.stdout);
  return json<AddResult>(r).ips[0]!.address.split("/")[0]!;
}

function hlAdd(id: string, dataDir: string, subnet: string) {
  const r = hostLocal("ADD", id, dataDir, subnet);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return json<AddResult>(r).ips[0]!.address.split("/")[0]!;
}

test("host-local first, then gauze: gauze continues after host-local's cursor", () => {
  const dir = w.tempDir();
  const got = [hlAdd("h1", dir, "10.91.0.0/24"), hlAdd("h2", dir, "10.91.0.0/24"), gauzeAdd("g1", dir, "10.91.0.0/24"), gauzeAdd("g2", dir, "10.91.0.0/24"), hlAdd("h3", dir, "10.91.0.0/24")];
  assert.deepEqual(got, ["10.91.0.2", "10.91.0.3", "10.91.0.4", "10.91.0.5", "10.91.0.6"]);
  const held = reservations(dir);
  assert.equal(held.get("10.91.0.4"), "g1\r\neth0");
  assert.equal(held.get("10.91.0.2"), "h1\r\neth0");
});

test("gauze first, then host-local; each releases the other's reservations", () => {
  const dir = w.tempDir();
  const got = [gauzeAdd("g1", dir, "10.92.0.0/29"), gauzeAdd("g2", dir, "10.92.0.0/29"), hlAdd("h1", dir, "10.92.0.0/29")];
  assert.deepEqual(got, ["10.92.0.2", "10.92.0.3", "10.92.0.4"]);
  // host-local DEL of a gauze reservation, gauze DEL of a host-local one.
  assert.equal(hostLocal("DEL", "g1", dir, "10.92.0.0/29").status, 0);
  assert.equal(plugin({ node, command: "DEL", containerId: "h1", netns: "" }, gauzeConf(dir, { bridge: "gzbrc" }, { ranges: [[{ subnet: "10.92.0.0/29" }]] })).status, 0);
  assert.deepEqual([...reservations(dir).keys()].sort(), ["10.92.0.3"]);
  // Fill the /29 (5 usable after the gateway) alternating; nothing twice, then both say full.
  const more = [hlAdd("h2", dir, "10.92.0.0/29"), gauzeAdd("g3", dir, "10.92.0.0/29"), hlAdd("h3", dir, "10.92.0.0/29"), gauzeAdd("g4", dir, "10.92.0.0/29")];
  const all = ["10.92.0.3", ...more];
  assert.equal(new Set(all).size, 5, `distinct: ${all.join(" ")}`);
  assert.notEqual(hostLocal("ADD", "h9", dir, "10.92.0.0/29").status, 0);
  const g = plugin({ node, command: "ADD", containerId: "g9", netns: nsPath(w.netns()) }, gauzeConf(dir, { bridge: "gzbrc" }, { ranges: [[{ subnet: "10.92.0.0/29" }]] }));
  assert.equal(json<{ code: number }>(g).code, 11);
});

test("50 parallel ADDs (40 gauze, 10 host-local on the same directory): 50 distinct addresses, gauze pods all reachable", async () => {
  const dir = w.tempDir();
  const conf = gauzeConf(dir, { bridge: "gzbrp", mtu: 1500 }, { ranges: [[{ subnet: "10.93.0.0/24" }]] });
  const pods = Array.from({ length: 40 }, (_, i) => w.netns(`par${i}`));
  const hlConf = { cniVersion: "1.0.0", name: "gztest", ipam: { type: "host-local", ranges: [[{ subnet: "10.93.0.0/24" }]], dataDir: dir } };
  const runs = await Promise.all([
    ...pods.map((p, i) => pluginAsync({ node, command: "ADD", containerId: `par${i}`, netns: nsPath(p) }, conf)),
    ...Array.from({ length: 10 }, (_, i) => pluginAsync({ node, command: "ADD", containerId: `hl${i}`, netns: nsPath(scratch), bin: `${REF_DIR}/host-local` }, hlConf)),
  ]);
  runs.forEach((r, i) => assert.equal(r.status, 0, `call ${i}: ${r.stdout}${r.stderr}`));
  const ips = runs.map((r) => json<AddResult>(r).ips[0]!.address.split("/")[0]!);
  assert.equal(new Set(ips).size, 50, "no address handed out twice");
  assert.equal(reservations(dir).size, 50);
  const unreachable = ips.slice(0, 40).filter((ip) => !ping(node, ip));
  assert.deepEqual(unreachable, [], "every gauze pod answers through the bridge");
  // And the pods reach each other (first to last).
  assert.ok(sh(["ip", "netns", "exec", pods[0]!, "ping", "-c", "1", "-W", "1", ips[39]!]).status === 0);
});
