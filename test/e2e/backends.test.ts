// Every backend in the lab, end to end: 4 nodes with 2 pods each reach each other in a full
// mesh; a node joins (its pods reachable) and leaves (its routes gone everywhere); an agent
// restart loses no traffic beyond 1 s. vxlan-direct on two underlay subnets: peers on the same
// subnet are routed bare via their node IP, the others through the tunnel, both checked on the
// wire. Switching a lab's backend moves every node over and leaves nothing of the old one.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { GAUZE, captureOne, lossDuring, must, sh } from "./helpers.ts";

const base = `t${process.pid % 1000}`;
const labs: string[] = [];
after(() => { for (const l of labs) sh([GAUZE, "lab", "down", "--name", l]); });

interface Status { nodes: { name: string; ip: string; subnet: string; ready: boolean }[]; pods: { name: string; node: string; ip: string; phase: string }[] }
const status = (lab: string) => JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as Status;
const ping = (lab: string, from: string, ip: string) => sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-${from}`, "ping", "-c", "1", "-W", "1", ip]).status === 0;
const routes = (node: string) => JSON.parse(must(["ip", "-n", `gz-${node}`, "-j", "route", "show", "proto", "71"]) || "[]") as { dst: string; gateway?: string; dev: string }[];

function fullMesh(lab: string): void {
  const st = status(lab);
  const failed: string[] = [];
  for (const a of st.pods) for (const b of st.pods) if (a !== b && !ping(lab, a.name, b.ip)) failed.push(`${a.name} -> ${b.name} (${b.ip})`);
  assert.deepEqual(failed, [], `${lab}: every pod reaches every other pod`);
}



const CASES = [["vxlan", "1", "classic"], ["host-gw", "1", "classic"], ["vxlan-direct", "2", "classic"], ["macvlan", "1", "classic"], ["wireguard", "1", "classic"],
  // The same on the eBPF datapath, for the backends it redirects for.
  ["vxlan", "1", "ebpf"], ["host-gw", "1", "ebpf"], ["vxlan-direct", "2", "ebpf"]] as const;
for (const [backend, subnets, datapath] of CASES) {
  test(`${backend}${subnets === "2" ? " on two underlay subnets" : ""}${datapath === "ebpf" ? " on the eBPF datapath" : ""}: full mesh of 4 nodes x 2 pods; join and leave; an agent restart loses nothing beyond 1 s`, { timeout: 180_000 }, async () => {
    const lab = `${base}${({ vxlan: "bv", "host-gw": "bh", "vxlan-direct": "bd", macvlan: "bm", wireguard: "bw" } as const)[backend]}${datapath === "ebpf" ? "e" : ""}`;
    labs.push(lab);
    sh([GAUZE, "lab", "down", "--name", lab]);
    must([GAUZE, "lab", "up", "--name", lab, "--nodes", "4", "--backend", backend, "--underlay-subnets", subnets, "--datapath", datapath]);
    const nodes = status(lab).nodes.map((n) => n.name);
    for (const n of nodes) for (const i of [1, 2]) must([GAUZE, "lab", "pod", "run", `${n.slice(lab.length + 1)}-${i}`, "--node", n, "--name", lab]);
    fullMesh(lab);

    const first = status(lab).pods[0]!;
    const far = status(lab).pods.find((p) => p.node === nodes[1])!;
    const restart = await lossDuring(lab, first.name, far.ip, () => {
      must([GAUZE, "lab", "node", "stop-agent", nodes[0]!, "--name", lab]);
      must([GAUZE, "lab", "node", "start-agent", nodes[0]!, "--name", lab]);
    });
    assert.ok(restart.sent > 15 && restart.lost <= 10, `agent restart: ${restart.lost} of ${restart.sent} pings lost at 0.1 s`);

    must([GAUZE, "lab", "node", "add", "--name", lab, "--node", `${lab}-late`]);
    must([GAUZE, "lab", "pod", "run", "late-1", "--node", `${lab}-late`, "--name", lab]);
    const late = status(lab).pods.find((p) => p.name === "late-1")!;
    const lateSubnet = status(lab).nodes.find((n) => n.name === `${lab}-late`)!.subnet;
    assert.ok(ping(lab, first.name, late.ip), "a joining node's pod is reachable");
    must([GAUZE, "lab", "node", "rm", `${lab}-late`, "--name", lab]);
    // Its eBPF objects go with it: pins (the datapath's once stayed, holding programs and links) and programs.
    assert.ok(!existsSync(`/sys/fs/bpf/gauze/${lab}-late`), `${lab}-late's pins are gone`);
    for (let i = 0; i < 30 && nodes.some((n) => routes(n).some((r) => r.dst === lateSubnet)); i++) await new Promise((r) => setTimeout(r, 100));
    for (const n of nodes) assert.ok(!routes(n).some((r) => r.dst === lateSubnet), `${n}: the departed node's route is gone`);
    if (datapath === "ebpf") {
      // The remotes map follows the leases too (bpftool, the oracle: no key for the departed
      // subnet), and doctor finds every program attached and the maps agreeing on every node.
      for (const n of nodes) {
        // Each key: prefix length (4 bytes), family (1), padding (3), then the address.
        const entries = JSON.parse(must(["bpftool", "-j", "map", "dump", "pinned", `/sys/fs/bpf/gauze/${n}/datapath/remotes`])) as { key: string[] }[];
        const subnets = entries.map((e) => `${e.key.slice(8, 12).map((x) => parseInt(x, 16)).join(".")}/${parseInt(e.key[0]!, 16) - 32}`);
        assert.equal(subnets.filter((s) => !s.includes(":")).length, nodes.length - 1, `${n}: one remote per other node: ${subnets.join(" ")}`);
        assert.ok(!subnets.includes(lateSubnet), `${n}: no remote entry for ${lateSubnet} left: ${subnets.join(" ")}`);
        const report = JSON.parse(sh([GAUZE, "doctor", "--node", n, "--name", lab, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[] }[] };
        for (const id of ["datapath.programs", "datapath.maps"]) assert.equal(report.checks.find((x) => x.id === id)?.status, "ok", `${n} ${id}: ${JSON.stringify(report.checks.find((x) => x.id === id))}`);
      }
    }

    if (backend === "vxlan-direct") {
      const st = status(lab);
      const me = st.nodes[0]!;
      for (const peer of st.nodes.slice(1)) {
        const r = routes(me.name).find((x) => x.dst === peer.subnet)!;
        const sameSubnet = peer.ip.split(".")[2] === me.ip.split(".")[2];
        assert.deepEqual([r.dev, r.gateway], sameSubnet ? ["eth0", peer.ip] : ["gauze.1", peer.subnet.split("/")[0]], `${peer.name} (${peer.ip}) ${sameSubnet ? "direct" : "tunnelled"}`);
      }
      // On the wire: bare ICMP to the peer on the same subnet, VXLAN (+50 bytes) to the other.
      const near = st.pods.find((p) => p.node === st.nodes.find((n) => n !== me && n.ip.split(".")[2] === me.ip.split(".")[2])!.name)!;
      const other = st.pods.find((p) => p.node === st.nodes.find((n) => n.ip.split(".")[2] !== me.ip.split(".")[2])!.name)!;
      const capture = (filter: string, to: string) => captureOne(lab, me.name, filter, first.name, to);
      const bare = await capture(`icmp and host ${near.ip}`, near.ip);
      assert.equal(bare.tunnel, undefined);
      assert.equal(bare.layers.find((l) => l.layer === "ipv4")!.totalLen, 84);
      const tunnelled = await capture("udp port 8472", other.ip);
      assert.equal(tunnelled.tunnel?.overheadBytes, 50);
    }
    if (backend === "wireguard") {
      const st = status(lab);
      const other = st.pods.find((p) => p.node !== first.node)!;
      // On the wire: only UDP to 51820 between node IPs; the pods' packet is sealed (84 bytes padded to 96), 60 bytes added.
      const wire = await captureOne(lab, first.node, "udp port 51820", first.name, other.ip);
      assert.deepEqual(wire.layers.map((l) => l.layer), ["eth", "ipv4", "udp", "wireguard"], "no inner IP or ICMP can be read");
      assert.deepEqual(wire.sealed, { protocol: "wireguard", outerIpLen: 156, innerPaddedLen: 96, overheadBytes: 60 });
      // The private key stays on its node (0600); the public one is in the lease, and wg (the oracle) shows every peer.
      const root = `/var/lib/gauze/lab/${lab}/nodes/${first.node}`;
      assert.equal(statSync(`${root}/run/gauze/wireguard.key`).mode & 0o777, 0o600);
      const dump = must(["nsenter", `--net=/run/netns/gz-${first.node}`, GAUZE, "mount-exec", "--bind", `${root}/run:/run`, "--", "wg", "show", "gauze-wg", "dump"]).trim().split("\n").slice(1);
      const peers = dump.map((l) => l.split("\t")).map((f) => `${f[2]} ${f[3]}`).sort();
      const want = st.nodes.filter((n) => n.name !== first.node).map((n) => `${n.ip}:51820 ${n.subnet}`).sort();
      assert.deepEqual(peers, want, "one peer per other node: its node IP and its subnet");
    }
    if (backend === "macvlan") {
      const st = status(lab);
      // Pods are stations on the underlay: addresses from its upper half, no route programmed anywhere.
      assert.ok(st.pods.every((p) => p.ip.startsWith("172.18.")), st.pods.map((p) => p.ip).join(" "));
      for (const n of nodes) assert.deepEqual(routes(n), [], `${n}: macvlan needs no routes`);
      const other = st.pods.find((p) => p.node !== first.node)!;
      const wire = await captureOne(lab, first.node, `icmp and host ${other.ip}`, first.name, other.ip);
      assert.equal(wire.tunnel, undefined);
      const ip = wire.layers.find((l) => l.layer === "ipv4")!;
      assert.deepEqual([ip.source, ip.destination, ip.totalLen], [first.ip, other.ip, 84], "the pod's own packet on the wire, 0 bytes added");
      // The node cannot reach its own macvlan pods: doctor says so, with the way around it.
      const report = JSON.parse(sh([GAUZE, "doctor", "--node", first.node, "--name", lab, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[]; fix?: string }[] };
      const c = report.checks.find((x) => x.id === "overlay.macvlan-host")!;
      assert.equal(c.status, "warn");
      assert.match(c.evidence[0]!, /this node cannot reach its own pod 172\.18\./);
      assert.match(c.fix ?? "", /type macvlan mode bridge/);
      assert.deepEqual(report.checks.filter((x) => x.status === "fail").map((x) => x.id), [], "nothing else is wrong");
    }
  });
}

test("switching a lab's backend: vxlan to host-gw and back; every node moves over, nothing of the old backend stays", { timeout: 120_000 }, () => {
  const lab = `${base}bv`;
  const nodes = status(lab).nodes.map((n) => n.name);
  must([GAUZE, "lab", "backend", "host-gw", "--name", lab]);
  for (const n of nodes) {
    assert.ok(!must(["ip", "-n", `gz-${n}`, "link", "show"]).includes("gauze.1"), `${n}: no VXLAN device on host-gw`);
    assert.ok(routes(n).every((r) => r.dev === "eth0"), `${n}: routes via node IPs`);
  }
  fullMesh(lab);
  must([GAUZE, "lab", "backend", "vxlan", "--name", lab]);
  for (const n of nodes) assert.ok(routes(n).every((r) => r.dev === "gauze.1"), `${n}: back on the tunnel, no host-gw route left`);
  fullMesh(lab);
});
