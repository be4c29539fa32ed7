// The plugin's macvlan mode on its own: two "nodes" joined by one L2 link, a pod on each as a
// macvlan of the node's uplink, straight on that L2 (no bridge, no veth, no tunnel); CHECK, DEL
// (twice, and with the namespace gone), the node-cannot-reach-its-own-pod rule, and bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type AddResult, World, ipIn, json, nsPath, ping, plugin, reservations, must } from "./helpers.ts";

const w = new World("mv");
const n1 = w.netns("n1");
const n2 = w.netns("n2");
// The underlay: one veth between the two nodes, 10.98.0.0/24, a default route on each.
must(["ip", "link", "add", "gzmvu1", "netns", n1, "type", "veth", "peer", "name", "gzmvu2", "netns", n2]);
for (const [ns, dev, ip] of [[n1, "gzmvu1", "10.98.0.1"], [n2, "gzmvu2", "10.98.0.2"]] as const) {
  must(["ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", dev]);
  must(["ip", "-n", ns, "link", "set", dev, "up"]);
  must(["ip", "-n", ns, "route", "add", "default", "via", "10.98.0.254"]);
}
const dir = w.tempDir();
const conf = (range: [string, string], extra: Record<string, unknown> = {}) => ({
  cniVersion: "1.1.0", name: "gzmv", type: "gauze", mode: "macvlan", ...extra,
  ipam: { ranges: [[{ subnet: "10.98.0.0/24", rangeStart: range[0], rangeEnd: range[1], gateway: "10.98.0.254" }]], dataDir: dir },
});

test("macvlan mode: pods on the nodes' L2, reaching each other bare; CHECK; DEL twice and without a namespace", () => {
  const p1 = w.netns("p1");
  const p2 = w.netns("p2");
  const a = plugin({ node: n1, command: "ADD", containerId: "mva", netns: nsPath(p1) }, conf(["10.98.0.100", "10.98.0.109"]));
  assert.equal(a.status, 0, a.stdout + a.stderr);
  const ra = json<AddResult>(a);
  assert.deepEqual(ra.interfaces.map((i) => [i.name, i.sandbox]), [["eth0", nsPath(p1)]], "one interface, in the pod: nothing on the node");
  assert.deepEqual(ra.ips.map((i) => [i.address, i.gateway, i.interface]), [["10.98.0.100/24", "10.98.0.254", 0]]);
  const b = plugin({ node: n2, command: "ADD", containerId: "mvb", netns: nsPath(p2) }, { ...conf(["10.98.0.110", "10.98.0.119"]), master: "gzmvu2" });
  assert.equal(b.status, 0, b.stdout + b.stderr);
  const link = ipIn<{ linkinfo: { info_kind: string; info_data: { mode: string } }; mtu: number }[]>(p1, ["-d", "link", "show", "eth0"])[0]!;
  assert.deepEqual([link.linkinfo.info_kind, link.linkinfo.info_data.mode, link.mtu], ["macvlan", "bridge", 1500]);
  assert.ok(ping(p1, "10.98.0.110"), "pod to pod across the nodes");
  assert.ok(ping(p1, "10.98.0.2"), "pod to the other node");
  assert.equal(ping(n1, "10.98.0.100"), false, "the node cannot reach its own macvlan pod (the kernel's rule)");
  assert.deepEqual(ipIn<unknown[]>(n1, ["link", "show", "type", "veth"]).length, 1, "no veth made on the node (only the underlay's)");

  const check = plugin({ node: n1, command: "CHECK", containerId: "mva", netns: nsPath(p1) }, { ...conf(["10.98.0.100", "10.98.0.109"]), prevResult: ra });
  assert.equal(check.status, 0, check.stdout);
  must(["ip", "-n", p1, "link", "set", "eth0", "down"]);
  const drift = plugin({ node: n1, command: "CHECK", containerId: "mva", netns: nsPath(p1) }, { ...conf(["10.98.0.100", "10.98.0.109"]), prevResult: ra });
  assert.notEqual(drift.status, 0);
  assert.match(json<{ msg: string }>(drift).msg, /interface eth0 is down/);

  for (const netns of [nsPath(p1), nsPath(p1), ""]) {
    const d = plugin({ node: n1, command: "DEL", containerId: "mva", netns }, conf(["10.98.0.100", "10.98.0.109"]));
    assert.equal(d.status, 0, d.stdout);
  }
  assert.ok(!must(["ip", "-n", p1, "link"]).includes("eth0"), "the pod's macvlan is gone");
  assert.equal(reservations(dir, "gzmv").has("10.98.0.100"), false, "its address released");
});

test("macvlan mode: bad input is the spec's error JSON, and nothing is left reserved", () => {
  const p = w.netns("p3");
  const before = reservations(dir, "gzmv").size;
  const noMaster = plugin({ node: n1, command: "ADD", containerId: "mvx", netns: nsPath(p) }, { ...conf(["10.98.0.100", "10.98.0.109"]), master: "nosuch0" });
  assert.notEqual(noMaster.status, 0);
  assert.deepEqual([json<{ code: number }>(noMaster).code, /master interface nosuch0 does not exist/.test(json<{ msg: string }>(noMaster).msg)], [7, true]);
  assert.equal(reservations(dir, "gzmv").size, before, "the failed ADD released what IPAM reserved");
  const badMode = plugin({ node: n1, command: "ADD", containerId: "mvy", netns: nsPath(p) }, { ...conf(["10.98.0.100", "10.98.0.109"]), mode: "ipvlan" });
  assert.deepEqual([json<{ code: number }>(badMode).code, /mode.*"ipvlan" is not a mode/.test(json<{ msg: string }>(badMode).msg)], [7, true]);
});
