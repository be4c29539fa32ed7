// Bad input and faults: each answer is the spec's error JSON on stdout with the right code and
// a non-zero exit, and a failed ADD leaves nothing behind (no veth, no reservation).
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { World, gauzeConf, ipIn, json, nsPath, plugin, reservations, sh, type PluginCall, GAUZE } from "./helpers.ts";

const w = new World("e");
const node = w.netns("node");
const pod = w.netns("pod");
const dataDir = w.tempDir();
const conf = gauzeConf(dataDir);

interface ErrJson { cniVersion: string; code: number; msg: string; details?: string }

function hostVeths(): string[] {
  return ipIn<{ ifname: string }[]>(node, ["link", "show"]).map((l) => l.ifname).filter((n) => /^gz[0-9a-f]{12}$/.test(n));
}

function expectError(call: Partial<PluginCall>, stdin: string | object, code: number, msg: RegExp): ErrJson {
  const before = { veths: hostVeths(), held: reservations(dataDir).size };
  const r = plugin({ node, command: "ADD", containerId: "ctr-bad", netns: nsPath(pod), ...call }, stdin);
  assert.notEqual(r.status, 0, "non-zero exit");
  const e = json<ErrJson>(r);
  assert.equal(e.code, code, `code for ${e.msg}`);
  assert.match(e.msg, msg);
  assert.ok(typeof e.cniVersion === "string" && e.cniVersion.length > 0);
  assert.deepEqual(hostVeths(), before.veths, "no veth left behind");
  assert.equal(reservations(dataDir).size, before.held, "no reservation left behind");
  assert.equal(sh(["ip", "-n", pod, "link", "show", "dev", "eth0"]).status, 1, "nothing in the pod");
  return e;
}

const cases: [string, Partial<PluginCall>, string | object, number, RegExp][] = [
  ["malformed JSON", {}, "{\"cniVersion\": \"1.1.0\", ", 6, /not valid JSON/],
  ["empty stdin", {}, "", 6, /no network configuration/],
  ["JSON that is not an object", {}, "[1,2]", 6, /must be a JSON object/],
  ["unknown CNI_COMMAND", { command: "ATTACH" }, conf, 4, /CNI_COMMAND "ATTACH" is not a CNI verb/],
  ["empty CNI_COMMAND", { command: "" }, conf, 4, /CNI_COMMAND is empty/],
  ["unsupported cniVersion", {}, { ...conf, cniVersion: "0.2.0" }, 1, /cniVersion 0\.2\.0 is not supported/],
  ["future cniVersion", {}, { ...conf, cniVersion: "9.9.9" }, 1, /not supported/],
  ["missing cniVersion", {}, { ...conf, cniVersion: undefined }, 7, /no cniVersion/],
  ["CHECK before 0.4.0", { command: "CHECK" }, { ...conf, cniVersion: "0.3.1" }, 1, /CHECK is not defined for cniVersion 0\.3\.1/],
  ["missing CNI_NETNS", { netns: "" }, conf, 4, /CNI_NETNS is missing/],
  ["CNI_NETNS that does not exist", { netns: "/run/netns/gz-does-not-exist" }, conf, 3, /does not exist/],
  ["CNI_NETNS that is not a namespace", { netns: GAUZE }, conf, 4, /is not a network namespace/],
  ["relative CNI_NETNS", { netns: "netns/x" }, conf, 4, /not an absolute path/],
  ["CNI_IFNAME too long", { ifname: "eth0123456789abc" }, conf, 4, /at most 15/],
  ["CNI_IFNAME with a slash", { ifname: "eth/0" }, conf, 4, /may not contain/],
  ["CNI_IFNAME empty", { ifname: "" }, conf, 4, /CNI_IFNAME "" is empty/],
  ["CNI_CONTAINERID missing", { containerId: "" }, conf, 4, /CNI_CONTAINERID is missing/],
  ["CNI_CONTAINERID with bad characters", { containerId: "../etc" }, conf, 4, /CNI_CONTAINERID "\.\.\/etc" is invalid/],
  ["unknown CNI_ARGS key", { args: "FOO=bar" }, conf, 4, /unknown key FOO=bar/],
  ["garbled CNI_ARGS", { args: "novalue" }, conf, 4, /not KEY=VALUE/],
  ["bad CIDR", {}, gauzeConf(dataDir, {}, { ranges: [[{ subnet: "10.99.0.0/33" }]] }), 7, /ipam\.ranges\[0\]\[0\]\.subnet.*not a CIDR/],
  ["subnet too small", {}, gauzeConf(dataDir, {}, { ranges: [[{ subnet: "10.99.0.0/31" }]] }), 7, /too small/],
  ["rangeStart outside the subnet", {}, gauzeConf(dataDir, {}, { ranges: [[{ subnet: "10.99.0.0/24", rangeStart: "10.98.0.5" }]] }), 7, /rangeStart.*outside subnet/],
  ["bad route", {}, gauzeConf(dataDir, {}, { routes: [{ dst: "everywhere" }] }), 7, /ipam\.routes\[0\]\.dst/],
  ["mtu of the wrong type", {}, gauzeConf(dataDir, { mtu: "big" }), 7, /"mtu" must be an integer/],
  ["mtu out of range", {}, gauzeConf(dataDir, { mtu: 70000 }), 7, /"mtu" must be an integer/],
  ["boolean of the wrong type", {}, gauzeConf(dataDir, { isGateway: "yes" }), 7, /"isGateway" must be true or false/],
  ["bad network name", {}, gauzeConf(dataDir, { name: "../../etc" }), 7, /"name"/],
  ["unsupported bridge option", {}, gauzeConf(dataDir, { vlan: 100 }), 2, /unsupported field vlan=100/],
  ["missing delegated IPAM plugin", { path: "/nonexistent" }, gauzeConf(dataDir, {}, { type: "no-such-ipam" }), 7, /failed to find plugin "no-such-ipam" in path \[\/nonexistent\]/],
  ["IP request outside the range", { args: "IP=10.1.2.3" }, conf, 7, /in none of the configured ranges/],
  ["IP request for the gateway", { args: "IP=10.99.0.1" }, conf, 7, /gateway/],
];

for (const [name, call, stdin, code, msg] of cases) {
  test(`error: ${name} -> code ${code}`, () => {
    const e = expectError(call, stdin, code, msg);
    assert.ok(e.details === undefined || e.details.length > 10, "details say what to do");
  });
}

test("error: missing CNI_COMMAND with other CNI_ variables is a plugin error, not the CLI", () => {
  const r = sh(["env", "-u", "CNI_COMMAND", "CNI_CONTAINERID=x", "CNI_IFNAME=eth0", GAUZE], { input: JSON.stringify(conf) });
  assert.equal(r.status, 1);
  assert.equal(json<ErrJson>(r).code, 4);
});

test("error: CNI_IFNAME that already exists in the pod rolls back the reservation", () => {
  // (this kernel has no dummy driver: a veth pair stands in for "something already there")
  assert.equal(sh(["ip", "-n", pod, "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p"]).status, 0);
  try {
    const e = expectError({ ifname: "eth9" }, conf, 4, /interface eth9 already exists/);
    assert.match(e.details ?? "", /CNI_IFNAME/);
  } finally {
    sh(["ip", "-n", pod, "link", "del", "eth9"]);
  }
});

test("error: a bridge name taken by another kind of interface", () => {
  assert.equal(sh(["ip", "-n", node, "link", "add", "gznotbr0", "type", "veth", "peer", "name", "gznotbr1"]).status, 0);
  // Both paths: bridge read first (no mtu) and bridge created tolerantly in the batch (mtu set).
  expectError({}, gauzeConf(dataDir, { bridge: "gznotbr0", mtu: 1500 }), 7, /gznotbr0 exists but is a veth/);
  expectError({}, gauzeConf(dataDir, { bridge: "gznotbr0" }), 7, /gznotbr0 exists but is a veth/);
});

test("error: an exhausted range answers code 11 and hands out nothing twice", () => {
  const tiny = gauzeConf(dataDir, { name: "gzfull" }, { ranges: [[{ subnet: "10.96.0.0/30" }]] });
  const p1 = w.netns("full1");
  const ok = plugin({ node, command: "ADD", containerId: "ctr-full1", netns: nsPath(p1) }, tiny);
  assert.equal(ok.status, 0, ok.stdout);
  const p2 = w.netns("full2");
  const r = plugin({ node, command: "ADD", containerId: "ctr-full2", netns: nsPath(p2) }, tiny);
  const e = json<ErrJson>(r);
  assert.equal(e.code, 11);
  assert.match(e.msg, /no free address in range set 10\.96\.0\.1-10\.96\.0\.2/);
  assert.equal(reservations(dataDir, "gzfull").size, 1);
  assert.equal(sh(["ip", "-n", p2, "link", "show", "dev", "eth0"]).status, 1);
});

test("error: ADD twice for one attachment is refused and the first stays intact", () => {
  const p = w.netns("twice");
  const first = plugin({ node, command: "ADD", containerId: "ctr-twice", netns: nsPath(p) }, conf);
  assert.equal(first.status, 0);
  const second = plugin({ node, command: "ADD", containerId: "ctr-twice", netns: nsPath(p) }, conf);
  assert.equal(json<ErrJson>(second).code, 4);
  assert.match(json<ErrJson>(second).msg, /already allocated to ctr-twice\/eth0/);
  const chk = plugin({ node, command: "CHECK", containerId: "ctr-twice", netns: nsPath(p) }, { ...conf, prevResult: json(first) });
  assert.equal(chk.status, 0, chk.stdout);
  plugin({ node, command: "DEL", containerId: "ctr-twice", netns: nsPath(p) }, conf);
});

for (const point of ["after-ipam", "after-veth", "after-pod"]) {
  test(`rollback: a failure injected ${point} leaves no veth, address or pod interface`, () => {
    expectError({ extraEnv: { GAUZE_FAULT: point } }, conf, 5, new RegExp(`injected fault at ${point}`));
  });
}

test("rollback: masquerade rules are undone too", () => {
  const mconf = gauzeConf(dataDir, { ipMasq: true });
  expectError({ extraEnv: { GAUZE_FAULT: "after-pod" } }, mconf, 5, /injected fault/);
  const nat = sh(["ip", "netns", "exec", node, "iptables", "-t", "nat", "-S"]).stdout;
  assert.doesNotMatch(nat, /GZ-/);
});

test("a subnet file that is missing makes ADD fail with code 11 and says to start the agent", () => {
  const e = expectError({}, { cniVersion: "1.1.0", name: "gznofile", type: "gauze", subnetFile: join(dataDir, "none.env") }, 11, /none\.env does not exist/);
  assert.match(e.details ?? "", /agent/);
  const bad = join(dataDir, "bad.env");
  writeFileSync(bad, "GAUZE_NETWORK=10.0.0.0/8\n");
  expectError({}, { cniVersion: "1.1.0", name: "gzbadfile", type: "gauze", subnetFile: bad }, 7, /lacks GAUZE_SUBNET/);
});
