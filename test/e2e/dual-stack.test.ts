// Dual-stack (EnableIPv6) in the lab: every pod gets an IPv4 and an IPv6 address, and reaches
// every other pod over both, across nodes. VXLAN runs a second device (gauze6.1) over the nodes'
// IPv6 underlay addresses, and the capture shows what IPv6 adds: 70 bytes per packet instead of
// 50. host-gw routes IPv6 subnets via the peers' IPv6 addresses (0 bytes). vxlan-direct on two
// underlay subnets routes same-subnet IPv6 peers bare and tunnels the others. A node joins and
// leaves (its IPv6 routes go everywhere), an agent restart loses no IPv6 traffic beyond 1 s, and
// what the agent cannot do (dual-stack on a backend that has no IPv6, a node without an IPv6
// address) it says, staying NotReady.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { GAUZE, captureOne, lossDuring, must, sh } from "./helpers.ts";

const base = `t${process.pid % 1000}`;
const labs: string[] = [];
after(() => { for (const l of labs) sh([GAUZE, "lab", "down", "--name", l]); });

interface Status {
  podCidr6?: string;
  nodes: { name: string; ip: string; ip6?: string; subnet: string; subnet6?: string; ready: boolean; reason?: string; agent?: { reason: string } }[];
  pods: { name: string; node: string; ip: string; ip6?: string; phase: string }[];
}
const status = (lab: string) => JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as Status;
const ping = (lab: string, from: string, ip: string) => sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-${from}`, "ping", "-c", "1", "-W", "1", ip]).status === 0;
const routes6 = (node: string) => JSON.parse(must(["ip", "-6", "-n", `gz-${node}`, "-j", "route", "show", "proto", "71"]) || "[]") as { dst: string; gateway?: string; dev: string }[];

function up(lab: string, backend: string, nodes: number, subnets = "1"): Status {
  labs.push(lab);
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", String(nodes), "--backend", backend, "--underlay-subnets", subnets, "--ipv6"]);
  for (const n of status(lab).nodes) must([GAUZE, "lab", "pod", "run", `p${n.name.slice(lab.length + 1)}`, "--node", n.name, "--name", lab]);
  return status(lab);
}

function fullMesh(lab: string): void {
  const st = status(lab);
  const failed: string[] = [];
  for (const a of st.pods) {
    for (const b of st.pods) {
      if (a === b) continue;
      if (!ping(lab, a.name, b.ip)) failed.push(`${a.name} -> ${b.name} ${b.ip}`);
      if (!ping(lab, a.name, b.ip6!)) failed.push(`${a.name} -> ${b.name} ${b.ip6}`);
    }
  }
  assert.deepEqual(failed, [], `${lab}: every pod reaches every other pod over IPv4 and IPv6`);
}



test("vxlan dual-stack: both families across 3 nodes, a second device over IPv6 (70 bytes on the wire), join, leave and restart", { timeout: 180_000 }, async () => {
  const lab = `${base}d4`;
  const st = up(lab, "vxlan", 3);
  assert.equal(st.podCidr6, "fd47:10:244::/56");
  // Each node's IPv6 subnet has the index of its IPv4 one (10.244.1.0/24 -> fd47:10:244:1::/64).
  for (const n of st.nodes) {
    const index = Number(n.subnet.split(".")[2]);
    assert.equal(n.subnet6, index === 0 ? "fd47:10:244::/64" : `fd47:10:244:${index.toString(16)}::/64`, `${n.name}: ${n.subnet} / ${n.subnet6}`);
  }
  assert.ok(st.pods.every((p) => p.ip6?.startsWith("fd47:10:244:")), st.pods.map((p) => p.ip6).join(" "));
  fullMesh(lab);

  // iproute2 as the oracle: the IPv6 tunnel is its own device, from the node's IPv6 address, 1500 - 70.
  const me = st.nodes[0]!;
  const dev = (JSON.parse(must(["ip", "-n", `gz-${me.name}`, "-d", "-j", "link", "show", "gauze6.1"])) as { mtu: number; linkinfo: { info_kind: string; info_data: { id: number; local6: string; port: number; learning: boolean } } }[])[0]!;
  assert.deepEqual([dev.linkinfo.info_kind, dev.linkinfo.info_data.id, dev.linkinfo.info_data.local6, dev.linkinfo.info_data.port, dev.linkinfo.info_data.learning, dev.mtu], ["vxlan", 1, me.ip6, 8472, false, 1430]);
  for (const peer of st.nodes.slice(1)) {
    const r = routes6(me.name).find((x) => x.dst === peer.subnet6)!;
    assert.deepEqual([r.dev, r.gateway], ["gauze6.1", peer.subnet6!.split("/")[0]], `${peer.name}: routed through the IPv6 tunnel`);
  }
  // IPv6 pod traffic leaving the IPv6 pod network is masqueraded as the IPv4 one is (ip6tables, same chains).
  const nat6 = must(["ip", "netns", "exec", `gz-${me.name}`, "ip6tables-save", "-t", "nat"]);
  assert.ok(nat6.includes("-A GAUZE-POSTRTG -s fd47:10:244::/56 ! -d ff00::/8 -j MASQUERADE --random-fully"), nat6);
  assert.ok(nat6.includes("-A GAUZE-POSTRTG -s fd47:10:244::/56 -d fd47:10:244::/56 -j RETURN"), nat6);
  const pod = st.pods.find((p) => p.node === me.name)!;
  const far = st.pods.find((p) => p.node !== me.name)!;
  // On the wire, from the capture: an IPv6 ping is 104 bytes inside, 70 added by VXLAN over IPv6; IPv4 still 50.
  const v6 = await captureOne(lab, me.name, "ip6 and udp port 8472", pod.name, far.ip6!);
  assert.equal(v6.tunnel?.overheadBytes, 70);
  const [outer, inner] = v6.layers.filter((l) => l.layer === "ipv6");
  assert.deepEqual([outer!.source, outer!.destination, outer!.payloadLen! + 40, inner!.payloadLen! + 40], [me.ip6, st.nodes.find((n) => n.name === far.node)!.ip6, 174, 104]);
  const v4 = await captureOne(lab, me.name, "ip and udp port 8472", pod.name, far.ip);
  assert.equal(v4.tunnel?.overheadBytes, 50);
  // trace over IPv6: the same hops as over IPv4, 104 bytes on the pod links and 174 outside (+70).
  const tr = JSON.parse(must([GAUZE, "trace", pod.name, far.ip6!, "--name", lab, "--json"])) as { replied: boolean; hops: { observationPoint: string; direction: string; ipLen: number; interface: { name: string }; tunnel?: { outerIpLen: number; overheadBytes: number } }[] };
  assert.ok(tr.replied);
  const out = tr.hops.find((h) => h.direction === "request" && h.observationPoint === "to-network")!;
  assert.deepEqual([out.ipLen, out.tunnel?.outerIpLen, out.tunnel?.overheadBytes], [104, 174, 70]);
  assert.equal(tr.hops.find((h) => h.direction === "request" && h.observationPoint === "to-overlay")!.interface.name, "gauze6.1");

  // doctor judges the IPv6 entries by the same plan: a route deleted while the agent is away is named.
  must([GAUZE, "lab", "node", "stop-agent", me.name, "--name", lab]);
  const victim = st.nodes[1]!;
  must(["ip", "-6", "-n", `gz-${me.name}`, "route", "del", victim.subnet6!]);
  const report = JSON.parse(sh([GAUZE, "doctor", "--node", me.name, "--name", lab, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[] }[] };
  const peers = report.checks.find((c) => c.id === "overlay.peers")!;
  assert.equal(peers.status, "fail");
  assert.ok(peers.evidence.some((e) => e.includes(`route ${victim.subnet6}`)), peers.evidence.join("; "));
  // The restarted agent puts it back; a restart under traffic loses no more than 1 s of IPv6 pings.
  must([GAUZE, "lab", "node", "start-agent", me.name, "--name", lab]);
  for (let i = 0; i < 30 && !routes6(me.name).some((r) => r.dst === victim.subnet6); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(routes6(me.name).some((r) => r.dst === victim.subnet6), "the restarted agent programs the IPv6 route again");
  const restart = await lossDuring(lab, pod.name, far.ip6!, () => {
    must([GAUZE, "lab", "node", "stop-agent", me.name, "--name", lab]);
    must([GAUZE, "lab", "node", "start-agent", me.name, "--name", lab]);
  });
  assert.ok(restart.sent > 15 && restart.lost <= 10, `agent restart: ${restart.lost} of ${restart.sent} IPv6 pings lost at 0.1 s`);

  // Join and leave: the new node's pod answers over IPv6; after it leaves, its IPv6 route is gone everywhere.
  must([GAUZE, "lab", "node", "add", "--name", lab, "--node", `${lab}-late`]);
  must([GAUZE, "lab", "pod", "run", "late", "--node", `${lab}-late`, "--name", lab]);
  const late = status(lab).pods.find((p) => p.name === "late")!;
  const lateSubnet6 = status(lab).nodes.find((n) => n.name === `${lab}-late`)!.subnet6!;
  assert.ok(ping(lab, pod.name, late.ip6!), `a joining node's pod answers on ${late.ip6}`);
  must([GAUZE, "lab", "node", "rm", `${lab}-late`, "--name", lab]);
  const nodes = st.nodes.map((n) => n.name);
  for (let i = 0; i < 30 && nodes.some((n) => routes6(n).some((r) => r.dst === lateSubnet6)); i++) await new Promise((r) => setTimeout(r, 100));
  for (const n of nodes) assert.ok(!routes6(n).some((r) => r.dst === lateSubnet6), `${n}: the departed node's IPv6 route is gone`);
});

test("host-gw dual-stack: IPv6 subnets routed via the peers' IPv6 addresses, the pod's own packet on the wire", { timeout: 120_000 }, async () => {
  const lab = `${base}d5`;
  const st = up(lab, "host-gw", 3);
  fullMesh(lab);
  const me = st.nodes[0]!;
  for (const peer of st.nodes.slice(1)) {
    const r = routes6(me.name).find((x) => x.dst === peer.subnet6)!;
    assert.deepEqual([r.dev, r.gateway], ["eth0", peer.ip6], `${peer.name}: via its IPv6 node address`);
  }
  const pod = st.pods.find((p) => p.node === me.name)!;
  const far = st.pods.find((p) => p.node !== me.name)!;
  const wire = await captureOne(lab, me.name, `icmp6 and host ${far.ip6}`, pod.name, far.ip6!);
  assert.equal(wire.tunnel, undefined);
  const ip = wire.layers.find((l) => l.layer === "ipv6")!;
  assert.deepEqual([ip.source, ip.destination, ip.payloadLen! + 40], [pod.ip6, far.ip6, 104], "0 bytes added");
});

test("vxlan-direct dual-stack on two underlay subnets: same-subnet IPv6 peers routed bare, the others tunnelled", { timeout: 120_000 }, () => {
  const lab = `${base}d6`;
  const st = up(lab, "vxlan-direct", 3, "2");
  fullMesh(lab);
  const me = st.nodes[0]!;
  for (const peer of st.nodes.slice(1)) {
    const r = routes6(me.name).find((x) => x.dst === peer.subnet6)!;
    const same = peer.ip.split(".")[2] === me.ip.split(".")[2];
    assert.deepEqual([r.dev, r.gateway], same ? ["eth0", peer.ip6] : ["gauze6.1", peer.subnet6!.split("/")[0]], `${peer.name} ${same ? "direct" : "tunnelled"}`);
  }
});

test("dual-stack refusals: a backend without IPv6, a node without an IPv6 address: NotReady with the reason", { timeout: 90_000 }, async () => {
  const lab = `${base}d7`;
  labs.push(lab);
  sh([GAUZE, "lab", "down", "--name", lab]);
  const r = sh([GAUZE, "lab", "up", "--name", lab, "--backend", "wireguard", "--ipv6"]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--ipv6 with --backend wireguard: dual-stack runs on vxlan, vxlan-direct and host-gw/);
  // A lab without IPv6 on the underlay, told to run dual-stack: the agents say what is missing.
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "1"]);
  const cfgPath = `/var/lib/gauze/lab/${lab}/registry/config.json`;
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8")) as Record<string, unknown>;
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, EnableIPv6: true, IPv6Network: "fd47:10:244::/56" }));
  const node = status(lab).nodes[0]!.name;
  must([GAUZE, "lab", "node", "stop-agent", node, "--name", lab]);
  must(["ip", "-n", `gz-${node}`, "-6", "addr", "flush", "dev", "eth0", "scope", "global"]);
  sh([GAUZE, "lab", "node", "start-agent", node, "--name", lab]);
  let reason = "";
  for (let i = 0; i < 40 && !reason.includes("IPv6"); i++) {
    await new Promise((res) => setTimeout(res, 100));
    reason = status(lab).nodes[0]!.agent?.reason ?? "";
  }
  assert.match(reason, /EnableIPv6 is true and eth0 has no global IPv6 address/);
  // The node keeps what it had: its IPv4 routes and device are not torn down by the refusal.
  assert.ok(must(["ip", "-n", `gz-${node}`, "link", "show", "gauze.1"]).includes("gauze.1"));
});
