// Dual-stack without a kernel: the IPv6 half of the network config (flannel's EnableIPv6 and
// IPv6Network), each node's IPv6 subnet by its IPv4 subnet's index, the subnet file's IPv6 keys
// and the CNI config they become, and the dual-stack plan: IPv4 and IPv6 entries from one lease,
// a peer with a missing or wrong IPv6 half skipped on IPv6 only, with the reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ipv6SubnetFor, resolveNetwork } from "../../src/store/registry.ts";
import { parseSubnetEnv, formatSubnetEnv } from "../../src/node/subnet-file.ts";
import { DualStackBackend, createNetworkBackend } from "../../src/backend/dual-stack.ts";
import { type KernelView, viewAfter } from "../../src/backend/backend.ts";
import { vtepMacFor } from "../../src/backend/vxlan.ts";
import "../../src/backend/host-gw.ts";
import type { Lease } from "../../src/store/registry.ts";
import { parseCIDR } from "../../src/net/cidr.ts";

const POD_NETWORK = parseCIDR("10.244.0.0/16")!.prefix;

const dual = { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56" };

test("EnableIPv6: IPv6Network with room for one subnet per IPv4 subnet; bad values are named with the fix", () => {
  const n = resolveNetwork(dual);
  assert.equal(n.ipv6?.subnetLen, 64);
  assert.equal(ipv6SubnetFor(n, "10.244.0.0/24"), "fd00:10:244::/64");
  assert.equal(ipv6SubnetFor(n, "10.244.3.0/24"), "fd00:10:244:3::/64");
  assert.equal(ipv6SubnetFor(n, "10.244.255.0/24"), "fd00:10:244:ff::/64");
  assert.equal(ipv6SubnetFor(n, "10.99.0.0/24"), undefined, "outside the IPv4 network: no IPv6 subnet");
  assert.equal(ipv6SubnetFor(resolveNetwork({ Network: "10.244.0.0/16" }), "10.244.3.0/24"), undefined, "single-stack");
  assert.equal(ipv6SubnetFor(resolveNetwork({ ...dual, IPv6SubnetLen: 80, IPv6Network: "fd00::/64" }), "10.244.1.0/24"), "fd00::1:0:0:0/80");
  assert.throws(() => resolveNetwork({ ...dual, IPv6Network: "fd00:10:244::/60" }), /holds 16 \/64 subnets, fewer than the 256 IPv4 subnets of 10\.244\.0\.0\/16.*use an IPv6Network of \/56 or shorter/);
  assert.throws(() => resolveNetwork({ ...dual, IPv6Network: "10.0.0.0/8" }), /IPv6Network "10\.0\.0\.0\/8" is not an IPv6 CIDR/);
  assert.throws(() => resolveNetwork({ ...dual, IPv6SubnetLen: 127 }), /IPv6SubnetLen 127 does not fit/);
  assert.throws(() => resolveNetwork({ ...dual, EnableIPv6: "yes" as unknown as boolean }), /EnableIPv6 "yes" is not true or false/);
  assert.throws(() => resolveNetwork({ Network: "fd00::/48" }), /Network fd00::\/48 is IPv6.*EnableIPv6 with IPv6Network/);
  assert.throws(() => resolveNetwork({ Network: "10.244.0.0/16", EnableIPv4: false }), /EnableIPv4 is false/);
});

test("the subnet file carries the IPv6 network and subnet (flannel's keys read too); half of the pair is an error", () => {
  const env = parseSubnetEnv("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64\n", "f");
  assert.deepEqual([env.ipv6Network, env.ipv6Subnet], ["fd00:10:244::/56", "fd00:10:244:1::1/64"]);
  assert.equal(parseSubnetEnv(formatSubnetEnv(env), "f").ipv6Subnet, "fd00:10:244:1::1/64");
  assert.throws(() => parseSubnetEnv("GAUZE_NETWORK=10.244.0.0/16\nGAUZE_SUBNET=10.244.1.1/24\nGAUZE_IPV6_SUBNET=fd00::1/64\n", "f"), /GAUZE_IPV6_SUBNET without GAUZE_IPV6_NETWORK/);
});

const link = { iface: "eth0", index: 2, ip: "172.18.0.2", prefixLen: 16, mtu: 1500 };
const link6 = { ...link, ip: "fd47::2", prefixLen: 64 };
const d4 = { index: 7, name: "gauze.1", mtu: 1450, flags: 1, up: true, operstate: "UNKNOWN", kind: "vxlan" };
const d6 = { index: 8, name: "gauze6.1", mtu: 1430, flags: 1, up: true, operstate: "UNKNOWN", kind: "vxlan" };
const peer = (node: string, i: number, over: Partial<Lease> = {}): Lease => ({
  node, subnet: `10.244.${i}.0/24`, publicIp: `172.18.0.${i + 2}`, backendType: "vxlan", expiresAt: 0,
  backendData: { vtepMac: vtepMacFor(`172.18.0.${i + 2}`), v6VtepMac: vtepMacFor(`fd47::${i + 2}`) },
  ipv6Subnet: `fd00:10:244:${i}::/64`, publicIpv6: `fd47::${i + 2}`, ...over,
});
const backend = () => createNetworkBackend({ type: "vxlan", link, network: POD_NETWORK, config: { Type: "vxlan" }, ipv6: { network: resolveNetwork(dual).ipv6!.network, subnetLen: 64, self: "a", link: link6 } });

test("dual-stack vxlan: one lease gives the IPv4 entries on gauze.1 and the IPv6 ones on gauze6.1; the plan then stands", () => {
  const b = backend();
  assert.ok(b instanceof DualStackBackend);
  assert.deepEqual([b.device, (b.options.ipv6 as { device: string; overhead: number }).device, (b.options.ipv6 as { overhead: number }).overhead], ["gauze.1", "gauze6.1", 70]);
  const view: KernelView = { device: d4, device6: d6, routes: [], neighbours: [], fdb: [] };
  const plan = b.plan(view, [peer("b", 1)]);
  assert.deepEqual(plan.changes.map((c) => c.text), [
    "FDB 0e:47:ac:12:00:03 dst 172.18.0.3", "neighbour 10.244.1.0 lladdr 0e:47:ac:12:00:03", "route 10.244.1.0/24 via 10.244.1.0 onlink",
    "FDB 0e:36:00:00:00:03 dst fd47::3", "neighbour fd00:10:244:1:: lladdr 0e:36:00:00:00:03", "route fd00:10:244:1::/64 via fd00:10:244:1:: onlink",
  ]);
  assert.deepEqual(plan.changes.map((c) => c.request?.what.includes("dev gauze6.1") || c.text.includes("fd") ? "6" : "4").join(""), "444666");
  assert.equal(plan.peers, 1);
  assert.deepEqual(plan.skipped, []);
  // Kept between passes: the view after the changes needs nothing more, on either family.
  assert.deepEqual(b.plan(viewAfter(view, plan.changes), [peer("b", 1)]).changes, []);
});

test("dual-stack: a peer with no IPv6 half, or a wrong one, is skipped on IPv6 only, with why; its IPv4 entries stay", () => {
  const view: KernelView = { device: d4, device6: d6, routes: [], neighbours: [], fdb: [] };
  const noHalf = peer("old", 2, { ipv6Subnet: undefined, publicIpv6: undefined });
  const outside = peer("out", 3, { ipv6Subnet: "fd99::/64" });
  const v4Addr = peer("v4", 4, { publicIpv6: "172.18.0.6" });
  const plan = backend().plan(view, [noHalf, outside, v4Addr]);
  assert.deepEqual(plan.skipped.map((x) => `${x.node} ${x.subnet}: ${x.why}`), [
    "old 10.244.2.0/24: IPv6: its lease has no IPv6 subnet (its agent runs without EnableIPv6?): reached over IPv4 only",
    "out 10.244.3.0/24: IPv6: subnet fd99::/64 is outside the pod network fd00:10:244::/56",
    "v4 10.244.4.0/24: IPv6: public IP 172.18.0.6 is IPv4, the underlay is IPv6",
  ]);
  assert.equal(plan.changes.filter((c) => c.text.startsWith("route 10.244.")).length, 3, "every peer keeps its IPv4 route");
  assert.equal(plan.changes.filter((c) => c.text.startsWith("route fd")).length, 0);
});

test("dual-stack host-gw: IPv6 subnets via the peers' IPv6 addresses on eth0; backends without IPv6 are refused by name", () => {
  const b = createNetworkBackend({ type: "host-gw", link, network: POD_NETWORK, config: { Type: "host-gw" }, ipv6: { network: resolveNetwork(dual).ipv6!.network, subnetLen: 64, self: "a", link: link6 } });
  const eth0 = { index: 2, name: "eth0", mtu: 1500, flags: 1, up: true, operstate: "UP" };
  const plan = b.plan({ device: eth0, device6: eth0, routes: [], neighbours: [], fdb: [] }, [peer("b", 1, { backendType: "host-gw" })]);
  assert.deepEqual(plan.changes.map((c) => c.text), ["route 10.244.1.0/24 via 172.18.0.3", "route fd00:10:244:1::/64 via fd47::3"]);
  assert.throws(() => createNetworkBackend({ type: "wireguard", link, network: POD_NETWORK, config: { Type: "wireguard" }, ipv6: { network: resolveNetwork(dual).ipv6!.network, subnetLen: 64, self: "a", link: link6 } }),
    /Backend\.Type wireguard does not carry an IPv6 pod network \(EnableIPv6 is true\) \(use vxlan or host-gw for dual-stack, or set EnableIPv6 to false\)/);
});
