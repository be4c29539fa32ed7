// Backend plans without a kernel: from a view of what the backend owns and the peers' leases to
// the changes to make. The agent applies these plans and doctor reports them, so these are the
// rules both follow: what is added, in which order, what counts as stale, what is left alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { VxlanBackend } from "../../src/backend/vxlan.ts";
import { HostGwBackend } from "../../src/backend/host-gw.ts";
import { type KernelView, GAUZE_ROUTE_PROTOCOL, createBackend, viewAfter } from "../../src/backend/backend.ts";
import type { Lease } from "../../src/store/registry.ts";
import { parseCIDR } from "../../src/net/cidr.ts";

const POD_NETWORK = parseCIDR("10.244.0.0/16")!.prefix;

const link = { iface: "eth0", index: 2, ip: "172.18.0.2", prefixLen: 16, mtu: 1500 };
const device = { index: 7, name: "gauze.1", mtu: 1450, flags: 1, up: true, operstate: "UNKNOWN", kind: "vxlan" };
const lease = (node: string, subnet: string, ip: string, mac?: string, type = "vxlan"): Lease =>
  ({ node, subnet, publicIp: ip, backendType: type, backendData: mac ? { vtepMac: mac } : {}, expiresAt: 0 });
const empty = (): KernelView => ({ device, routes: [], neighbours: [], fdb: [] });
const vx = () => new VxlanBackend({ link, network: POD_NETWORK, config: { Type: "vxlan" } });

test("vxlan: each peer gets its FDB entry, neighbour and onlink route, in that order across peers", () => {
  const plan = vx().plan(empty(), [lease("b", "10.244.2.0/24", "172.18.0.3", "0E:47:AC:12:00:03"), lease("c", "10.244.3.0/24", "172.18.0.4", "0e:47:ac:12:00:04")]);
  assert.deepEqual(plan.changes.map((c) => `${c.op} ${c.peer}: ${c.text}`), [
    "add b: FDB 0e:47:ac:12:00:03 dst 172.18.0.3", "add c: FDB 0e:47:ac:12:00:04 dst 172.18.0.4",
    "add b: neighbour 10.244.2.0 lladdr 0e:47:ac:12:00:03", "add c: neighbour 10.244.3.0 lladdr 0e:47:ac:12:00:04",
    "add b: route 10.244.2.0/24 via 10.244.2.0 onlink", "add c: route 10.244.3.0/24 via 10.244.3.0 onlink",
  ]);
  assert.equal(plan.peers, 2);
  // The view after the plan needs nothing more: what the agent keeps between passes.
  const after = viewAfter(empty(), plan.changes);
  assert.deepEqual(vx().plan(after, [lease("b", "10.244.2.0/24", "172.18.0.3", "0e:47:ac:12:00:03"), lease("c", "10.244.3.0/24", "172.18.0.4", "0e:47:ac:12:00:04")]).changes, []);
});

test("vxlan: a moved peer is re-pointed; gauze's stale entries go; someone else's stay; unusable leases are skipped with why", () => {
  const view: KernelView = {
    device,
    routes: [
      { family: 4, dst: "10.244.2.0/24", gateway: "10.244.2.0", oif: 7, table: 254, protocol: GAUZE_ROUTE_PROTOCOL, scope: 0, type: 1, flags: 4 },
      { family: 4, dst: "10.244.9.0/24", gateway: "10.244.9.0", oif: 7, table: 254, protocol: GAUZE_ROUTE_PROTOCOL, scope: 0, type: 1, flags: 4 },
      { family: 4, dst: "192.0.2.0/24", oif: 7, table: 254, protocol: 4, scope: 253, type: 1, flags: 0 },
    ],
    neighbours: [
      { family: 4, index: 7, dst: "10.244.2.0", lladdr: "0e:47:ac:12:00:03", state: 0x80, flags: 0 },
      { family: 4, index: 7, dst: "10.244.9.0", lladdr: "0e:47:ac:12:00:09", state: 0x80, flags: 0 },
      { family: 4, index: 7, dst: "192.0.2.7", lladdr: "0e:00:00:00:00:07", state: 0x80, flags: 0 },
    ],
    fdb: [
      { index: 7, mac: "0e:47:ac:12:00:03", dst: "172.18.0.99", state: 0x80, flags: 2 },
      { index: 7, mac: "33:33:00:00:00:01", state: 0x80, flags: 2 },
    ],
  };
  const plan = vx().plan(view, [lease("b", "10.244.2.0/24", "172.18.0.3", "0e:47:ac:12:00:03"), lease("d", "10.244.4.0/24", "172.18.0.5"), lease("e", "10.244.5.0/24", "172.18.0.6", undefined, "host-gw")]);
  assert.deepEqual(plan.changes.map((c) => `${c.op}: ${c.text}`), [
    "add: FDB 0e:47:ac:12:00:03 dst 172.18.0.3",
    "del: route 10.244.9.0/24 via 10.244.9.0",
    "del: neighbour 10.244.9.0 lladdr 0e:47:ac:12:00:09",
    "del: FDB 0e:47:ac:12:00:03 dst 172.18.0.99",
  ]);
  assert.deepEqual(plan.skipped.map((s) => `${s.node}: ${s.why}`), ["d: no VTEP MAC in its lease", "e: backend host-gw, not vxlan"]);
  // The kept view after these changes: nothing left to do, and the foreign entries still there.
  const after = viewAfter(view, plan.changes);
  assert.deepEqual(vx().plan(after, [lease("b", "10.244.2.0/24", "172.18.0.3", "0e:47:ac:12:00:03")]).changes, []);
  assert.deepEqual(after.fdb.map((f) => `${f.mac} ${f.dst ?? "-"}`).sort(), ["0e:47:ac:12:00:03 172.18.0.3", "33:33:00:00:00:01 -"]);
  assert.ok(after.routes.some((r) => r.dst === "192.0.2.0/24") && after.neighbours.some((n) => n.dst === "192.0.2.7"));
});

test("vxlan: kernel events that match the plan need nothing; changes to what gauze owns do; foreign ones do not", () => {
  const b = vx();
  const plan = b.plan(empty(), [lease("b", "10.244.2.0/24", "172.18.0.3", "0e:47:ac:12:00:03")]);
  const route = (over: object) => ({ family: 4 as const, dst: "10.244.2.0/24", gateway: "10.244.2.0", oif: 7, table: 254, protocol: GAUZE_ROUTE_PROTOCOL, scope: 0, type: 1, flags: 4, ...over });
  assert.equal(b.concerns({ kind: "route", op: "new", route: route({}) }, device, plan.wanted), false, "our own add echoed");
  assert.equal(b.concerns({ kind: "route", op: "del", route: route({}) }, device, plan.wanted), true, "deleted by hand");
  assert.equal(b.concerns({ kind: "route", op: "new", route: route({ gateway: "10.244.200.0", protocol: 3 }) }, device, plan.wanted), true, "replaced by hand");
  assert.equal(b.concerns({ kind: "route", op: "new", route: route({ dst: "192.0.2.0/24", gateway: undefined, protocol: 4, flags: 0 }) }, device, plan.wanted), false, "someone else's route");
  assert.equal(b.concerns({ kind: "route", op: "del", route: route({ oif: 99 }) }, device, plan.wanted), false, "another device");
  assert.equal(b.concerns({ kind: "link", op: "new", link: { ...device, up: false } }, device, plan.wanted), true, "device set down");
  assert.equal(b.concerns({ kind: "fdb", op: "new", fdb: { index: 7, mac: "0e:47:ac:12:00:03", dst: "172.18.0.3", state: 0x80, flags: 2 } }, device, plan.wanted), false);
  assert.equal(b.concerns({ kind: "fdb", op: "new", fdb: { index: 7, mac: "0e:47:ac:12:00:03", dst: "172.18.255.9", state: 0x80, flags: 2 } }, device, plan.wanted), true);
});

test("host-gw: routes via node IPs on the underlay; a peer off this node's L2 subnet is refused with the reason", () => {
  const gw = new HostGwBackend({ link, network: POD_NETWORK, config: { Type: "host-gw" } });
  const plan = gw.plan({ device: { ...device, index: 2, name: "eth0" }, routes: [], neighbours: [], fdb: [] }, [lease("b", "10.244.2.0/24", "172.18.0.3", undefined, "host-gw"), lease("far", "10.244.3.0/24", "10.1.0.9", undefined, "host-gw")]);
  assert.deepEqual(plan.changes.map((c) => c.text), ["route 10.244.2.0/24 via 172.18.0.3"]);
  assert.match(plan.skipped[0]!.why, /outside this node's underlay subnet 172\.18\.0\.2\/16: host-gw needs every node on one L2 segment/);
});

test("options are the backend's own: defaults, bad values and unknown options are named", () => {
  assert.deepEqual(vx().options, { vni: 1, port: 8472, directRouting: false });
  assert.deepEqual(new VxlanBackend({ link, network: POD_NETWORK, config: { VNI: 42, Port: 4789 } }).options, { vni: 42, port: 4789, directRouting: false });
  assert.throws(() => new VxlanBackend({ link, network: POD_NETWORK, config: { VNI: 0 } }), /Backend\.VNI 0 is not a VNI \(use an integer from 1 to 16777215\)/);
  assert.throws(() => new VxlanBackend({ link, network: POD_NETWORK, config: { Port: "8472" } }), /Backend\.Port "8472" is not a UDP port/);
  assert.throws(() => new VxlanBackend({ link, network: POD_NETWORK, config: { GBP: true } }), /Backend\.GBP is not an option of the vxlan backend/);
  assert.throws(() => createBackend("ipip", { link, network: POD_NETWORK, config: {} }), /Backend\.Type "ipip" is not a backend gauze has \(use one of vxlan, host-gw\)/);
});

test("VXLAN checksum offload stays on unless the kernel has the --random-fully checksum bug", async () => {
  const { checksumOffloadBroken } = await import("../../src/backend/vxlan.ts");
  const cases: [[number, number, number], boolean][] = [
    [[6, 1, 0], false], [[5, 7, 0], false], [[5, 10, 200], false],
    [[5, 6, 12], true], [[5, 6, 13], false], [[5, 4, 40], true], [[5, 4, 41], false],
    [[4, 19, 122], true], [[4, 19, 123], false], [[4, 14, 181], false], [[5, 5, 19], true], [[3, 10, 0], true],
  ];
  for (const [v, broken] of cases) assert.equal(checksumOffloadBroken(v), broken, v.join("."));
  assert.equal(checksumOffloadBroken(undefined), true, "unknown kernel: the safe side");
});

test("vxlan DirectRouting: a peer on this node's underlay subnet is routed via its node IP on eth0, others through the tunnel", () => {
  const here = { ...link, prefixLen: 24 };
  const dr = () => new VxlanBackend({ link: here, network: POD_NETWORK, config: { Type: "vxlan", DirectRouting: true } });
  const peers = [lease("near", "10.244.2.0/24", "172.18.0.3", "0e:47:ac:12:00:03"), lease("far", "10.244.3.0/24", "172.18.1.4", "0e:47:ac:12:01:04")];
  const plan = dr().plan(empty(), peers);
  assert.deepEqual(plan.changes.map((c) => `${c.op} ${c.peer}: ${c.text}`), [
    "add far: FDB 0e:47:ac:12:01:04 dst 172.18.1.4", "add far: neighbour 10.244.3.0 lladdr 0e:47:ac:12:01:04",
    "add far: route 10.244.3.0/24 via 10.244.3.0 onlink", "add near: route 10.244.2.0/24 via 172.18.0.3",
  ]);
  const direct = plan.changes.find((c) => c.peer === "near")!;
  assert.equal(direct.entry.kind === "route" && direct.entry.route.oif, 2, "on the underlay interface, not the VXLAN device");
  assert.equal(plan.peers, 2);
  assert.deepEqual(dr().plan(viewAfter(empty(), plan.changes), peers).changes, [], "nothing left to do");
  // Without DirectRouting every peer is tunnelled, near or not.
  assert.equal(new VxlanBackend({ link: here, network: POD_NETWORK, config: { Type: "vxlan" } }).plan(empty(), peers).changes.filter((c) => c.text.startsWith("route") && !c.text.endsWith("onlink")).length, 0);
  // A peer that moves onto this subnet: one direct route replaces the tunnel route; its FDB entry and neighbour go.
  const tunnelled = viewAfter(empty(), vx().plan(empty(), [peers[0]!]).changes);
  assert.deepEqual(dr().plan(tunnelled, [peers[0]!]).changes.map((c) => `${c.op}: ${c.text}`), [
    "add: route 10.244.2.0/24 via 172.18.0.3", "del: neighbour 10.244.2.0 lladdr 0e:47:ac:12:00:03", "del: FDB 0e:47:ac:12:00:03 dst 172.18.0.3",
  ]);
  assert.throws(() => new VxlanBackend({ link: here, network: POD_NETWORK, config: { Type: "vxlan", DirectRouting: "yes" } }), /Backend\.DirectRouting "yes" is not true or false/);
});
