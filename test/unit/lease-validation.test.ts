// Leases are input: every rule a lease must pass before an agent programs anything from it,
// and allocation that hostile records cannot starve.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type LeaseRules, badPublicIp, validateLeases } from "../../src/store/validate.ts";
import { type Lease, leaseRecord, parseRecord, pickFreeSubnet, resolveNetwork } from "../../src/store/registry.ts";
import { parseCIDR } from "../../src/net/cidr.ts";

const rules: LeaseRules = { network: parseCIDR("10.244.0.0/16")!.prefix, subnetLen: 24, self: "a", selfSubnet: "10.244.0.0/24", underlayFamily: 4, backendTypes: ["vxlan", "host-gw"] };
const lease = (over: Partial<Lease>): Lease => ({ subnet: "10.244.1.0/24", node: "b", publicIp: "172.18.0.3", backendType: "vxlan", backendData: { vtepMac: "0e:47:ac:12:00:03" }, expiresAt: 1e15, ...over });

test("valid peers pass; our own record is not a peer", () => {
  const r = validateLeases([lease({}), lease({ subnet: "10.244.2.0/24", node: "c", publicIp: "172.18.0.4" }), lease({ node: "a", subnet: "10.244.0.0/24" })], rules);
  assert.deepEqual(r.valid.map((l) => l.node), ["b", "c"]);
  assert.deepEqual(r.invalid, []);
});

test("each kind of bad lease is refused with why, and the good ones still pass", () => {
  const bad = [
    lease({ key: "/gauze.dev/network/subnets/default", subnet: "default", node: "evil1" }),
    lease({ key: "k-half", subnet: "0.0.0.0/1", node: "evil2" }),
    lease({ key: "k-out", subnet: "10.99.0.0/24", node: "evil3" }),
    lease({ key: "k-len", subnet: "10.244.8.0/23", node: "evil4" }),
    lease({ key: "k-host", subnet: "10.244.9.7/24", node: "evil5" }),
    lease({ key: "k-mine", subnet: "10.244.0.0/24", node: "evil6" }),
    lease({ key: "k-ip", subnet: "10.244.10.0/24", node: "evil7", publicIp: "0.0.0.0" }),
    lease({ key: "k-mc", subnet: "10.244.11.0/24", node: "evil8", publicIp: "239.1.1.1" }),
    lease({ key: "k-v6", subnet: "10.244.12.0/24", node: "evil9", publicIp: "fd00::1" }),
    lease({ key: "k-type", subnet: "10.244.13.0/24", node: "evil10", backendType: "ipip" }),
    leaseRecord("k-json", "10.244.14.0/24", "value is not JSON"),
    lease({ key: "k-dup1", subnet: "10.244.15.0/24", node: "d1" }),
    lease({ key: "k-dup2", subnet: "10.244.15.0/24", node: "d2" }),
  ];
  const r = validateLeases([lease({}), ...bad], rules);
  assert.deepEqual(r.valid.map((l) => l.node), ["b"]);
  assert.deepEqual(r.invalid.map((x) => `${x.key}: ${x.why}`), [
    '/gauze.dev/network/subnets/default: subnet "default" is not a CIDR',
    "k-half: subnet 0.0.0.0/1 is outside the pod network 10.244.0.0/16",
    "k-out: subnet 10.99.0.0/24 is outside the pod network 10.244.0.0/16",
    "k-len: subnet 10.244.8.0/23 is a /23, the network's leases are /24",
    "k-host: subnet 10.244.9.7/24 has host bits set (10.244.9.0/24 meant?)",
    "k-mine: subnet 10.244.0.0/24 is this node's own (a)",
    "k-ip: public IP 0.0.0.0 is not a host address",
    "k-mc: public IP 239.1.1.1 is multicast",
    "k-v6: public IP fd00::1 is IPv6, the underlay is IPv4",
    'k-type: backend "ipip" is not one this agent knows (vxlan, host-gw)',
    "k-json: value is not JSON",
    "k-dup1: subnet 10.244.15.0/24 is claimed by 2 nodes (d1, d2)",
    "k-dup2: subnet 10.244.15.0/24 is claimed by 2 nodes (d1, d2)",
  ]);
});

test("records: fields of the wrong type are problems, not crashes", () => {
  assert.equal(parseRecord("[1]"), "value is not a JSON object");
  assert.equal(parseRecord("{"), "value is not JSON");
  assert.equal(leaseRecord("k", "10.244.1.0/24", { node: 5, publicIp: "1.2.3.4", backendType: "vxlan", vtepMac: undefined, expiresAt: 1 }).problem, "no node name");
  assert.equal(leaseRecord("k", "10.244.1.0/24", { node: "n", publicIp: "1.2.3.4", backendType: "vxlan", vtepMac: 7, expiresAt: 1 }).problem, "VTEP MAC is not a string");
  assert.equal(leaseRecord("k", "10.244.1.0/24", { node: "n", publicIp: "1.2.3.4", backendType: "vxlan", vtepMac: undefined, expiresAt: "soon" }).problem, "no expiry time");
  assert.equal(badPublicIp("127.0.0.1", 4), "public IP 127.0.0.1 is a loopback address");
  assert.equal(badPublicIp("172.18.0.2", 4), undefined);
});

test("allocation: a hostile /1 or an out-of-network lease cannot make the network look full", () => {
  const n = resolveNetwork({ Network: "10.244.0.0/22", SubnetLen: 24 });
  const taken = ["10.244.0.0/24", "0.0.0.0/1", "10.0.0.0/8", "10.244.0.0/16", "garbage", "10.244.2.0/24"];
  const got = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const p = pickFreeSubnet(n, taken, 4);
    assert.ok(p);
    got.add(`${p.ip.value}/${p.bits}`);
  }
  const cidr = (t: string) => { const c = parseCIDR(t)!.prefix; return `${c.ip.value}/${c.bits}`; };
  assert.deepEqual([...got].sort(), [cidr("10.244.1.0/24"), cidr("10.244.3.0/24")].sort());
  assert.equal(pickFreeSubnet(n, ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]), undefined);
});
