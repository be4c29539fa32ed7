// The eBPF datapath's model without a kernel: which remote subnets go where for each backend
// (host-gw, VXLAN, DirectRouting, dual-stack, peers it cannot reach), endpoint entries from pod
// attachments, map plans, the codecs' byte layout (what bpf/datapath.c reads), and the config
// switches (net-conf.json's Datapath, the plugin's datapath block, --datapath).
import { test } from "node:test";
import assert from "node:assert/strict";
import { endpointsFor, planMap, remotesFor } from "../../src/dataplane/ebpf-datapath.ts";
import { EP_CLASSIC, endpointCodec, endpointKeyCodec, remoteCodec, remoteKeyCodec } from "../../src/kernel/bpf/datapath.ts";
import { decode, encode } from "../../src/kernel/bpf/map.ts";
import { resolveNetwork } from "../../src/store/registry.ts";
import { parseDatapathFlag } from "../../src/agent/datapath.ts";
import { loadConfig } from "../../src/cni/config.ts";
import type { Lease } from "../../src/store/registry.ts";

const lease = (node: string, i: number, extra: Partial<Lease> = {}): Lease => ({
  node, subnet: `10.244.${i}.0/24`, publicIp: `172.18.0.${i + 2}`, backendType: "vxlan", backendData: { vtepMac: `0e:47:ac:12:00:0${i + 2}` }, expiresAt: 0,
  ipv6Subnet: `fd47:10:244:${i}::/64`, publicIpv6: `fd47::${i + 2}`, ...extra,
});
const leases = [lease("a", 0), lease("b", 1), lease("c", 2, { publicIp: "172.19.0.4" })];

test("remotes: host-gw via node IPs out of the underlay (peers off its subnet left out), VXLAN via VTEP addresses into the tunnel", () => {
  const underlay = { ifindex: 2, subnet: "172.18.0.2/24", subnet6: "fd47::2/64" };
  const hg = remotesFor(leases, "a", { backend: "host-gw", underlay, tunnel: 9 });
  assert.deepEqual([...hg], [
    ["10.244.1.0/24", { nexthop: "172.18.0.3", ifindex: 2, mode: "direct" }],
    ["fd47:10:244:1::/64", { nexthop: "fd47::3", ifindex: 2, mode: "direct" }],
    ["fd47:10:244:2::/64", { nexthop: "fd47::4", ifindex: 2, mode: "direct" }],
  ], "c's IPv4 node address is off the underlay subnet: the classic path (which skips it too)");
  const vx = remotesFor(leases, "a", { backend: "vxlan", underlay, tunnel: 9, tunnel6: 10 });
  assert.deepEqual(vx.get("10.244.2.0/24"), { nexthop: "10.244.2.0", ifindex: 9, mode: "tunnel" });
  assert.deepEqual(vx.get("fd47:10:244:1::/64"), { nexthop: "fd47:10:244:1::", ifindex: 10, mode: "tunnel" });
  const direct = remotesFor(leases, "a", { backend: "vxlan", directRouting: true, underlay, tunnel: 9 });
  assert.deepEqual([direct.get("10.244.1.0/24")?.mode, direct.get("10.244.2.0/24")?.mode], ["direct", "tunnel"], "DirectRouting: bare on the same subnet, tunnelled elsewhere");
  assert.equal(vx.has("10.244.0.0/24"), false, "its own subnet is not remote");
  assert.equal(remotesFor(leases, "a", { backend: "wireguard", underlay }).size, 0, "other backends keep the classic path");
  assert.equal(remotesFor([lease("b", 1, { problem: "garbled" })], "a", { backend: "vxlan", underlay, tunnel: 9 }).size, 0);
});

test("endpoints and plans: one entry per address, the classic flag, only what changed is written", () => {
  const eps = endpointsFor([{ ips: ["10.244.0.5/24", "fd47:10:244::5/64"], ifindex: 7, mac: "AA:BB:CC:00:00:01", gwMac: "0a:58:0a:f4:00:01", classic: true }]);
  assert.deepEqual([...eps.keys()], ["10.244.0.5", "fd47:10:244::5"]);
  assert.deepEqual(eps.get("10.244.0.5"), { ifindex: 7, flags: EP_CLASSIC, mac: "aa:bb:cc:00:00:01", gwMac: "0a:58:0a:f4:00:01" });
  const have = new Map([["10.244.0.5", { ...eps.get("10.244.0.5")!, flags: 0 }], ["10.244.0.9", eps.get("10.244.0.5")!]]);
  const p = planMap(have, eps);
  assert.deepEqual([p.put.map(([k]) => k), p.del], [["10.244.0.5", "fd47:10:244::5"], ["10.244.0.9"]]);
  assert.deepEqual(planMap(eps, eps), { put: [], del: [] });
});

test("codecs: the bytes bpf/datapath.c's structs hold, and back", () => {
  assert.deepEqual([...encode(endpointKeyCodec, "10.244.0.5")], [4, 0, 0, 0, 10, 244, 0, 5, ...new Array(12).fill(0)]);
  assert.equal(decode(endpointKeyCodec, encode(endpointKeyCodec, "fd47:10:244::5")), "fd47:10:244::5");
  const k = encode(remoteKeyCodec, "10.244.1.0/24");
  assert.equal(new DataView(k.buffer).getUint32(0, true), 56, "prefixlen counts family and padding: 32 + 24");
  assert.equal(decode(remoteKeyCodec, encode(remoteKeyCodec, "10.244.1.77/24")), "10.244.1.0/24", "host bits cleared");
  const r = { nexthop: "fd47::3", ifindex: 2, mode: "direct" as const };
  assert.deepEqual(decode(remoteCodec, encode(remoteCodec, r)), r);
  const e = { ifindex: 7, flags: 1, mac: "aa:bb:cc:00:00:01", gwMac: "0a:58:0a:f4:00:01" };
  const b = encode(endpointCodec, e);
  assert.deepEqual([...b.subarray(8, 14)], [0xaa, 0xbb, 0xcc, 0, 0, 1]);
  assert.deepEqual(decode(endpointCodec, b), e);
});

test("config: Datapath in net-conf.json, --datapath, the plugin's block; anything else named", () => {
  assert.equal(resolveNetwork({ Network: "10.244.0.0/16" }).datapath, "classic");
  assert.equal(resolveNetwork({ Network: "10.244.0.0/16", Datapath: "ebpf" }).datapath, "ebpf");
  assert.throws(() => resolveNetwork({ Network: "10.244.0.0/16", Datapath: "xdp" }), /Datapath "xdp" is not a datapath.*"classic".*"ebpf"/);
  assert.equal(parseDatapathFlag("ebpf"), "ebpf");
  assert.throws(() => parseDatapathFlag("EBPF"), /--datapath "EBPF": use classic .* or ebpf/);
  const env = { command: "ADD", containerId: "c1", netns: "/run/netns/x", ifname: "eth0", path: "/opt/cni/bin", args: {} } as unknown as Parameters<typeof loadConfig>[1];
  const conf = (datapath: unknown) => JSON.stringify({ cniVersion: "1.0.0", name: "gauze", type: "gauze", subnetFile: "/nonexistent/subnet.env", datapath });
  assert.deepEqual(loadConfig(conf({ type: "ebpf", pinDir: "/sys/fs/bpf/gauze/n1/datapath" }), env).datapath, { type: "ebpf", pinDir: "/sys/fs/bpf/gauze/n1/datapath" });
  assert.throws(() => loadConfig(conf({ type: "xdp" }), env), /datapath/);
  assert.equal(loadConfig(conf(undefined), env).datapath, undefined);
});
