// The eBPF datapath end to end (`gauze lab up --datapath ebpf`), over host-gw and VXLAN: pods on
// two nodes reach each other in a full mesh, and the packets skip the bridge and netfilter: an
// nftables counter on each node's forward hook stays at 0 and tcpdump on the receiving node's
// cni0 sees no echo while the pings pass (the classic datapath routes every one of them through
// both). The plugin's program is found on each pod's veth; one detached by hand is put back by
// the agent within about a second; an agent restart loses no pings (programs and maps pinned);
// lab down leaves no pin. Lab names hb<pid>…, their namespaces gz-hb…, all removed after.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { GAUZE, lossDuring, must, sh } from "./helpers.ts";

const base = `hb${process.pid % 1000}`;
const labs: string[] = [];
after(() => { for (const l of labs) sh([GAUZE, "lab", "down", "--name", l]); });

interface Status { nodes: { name: string; ip: string; subnet: string; ready: boolean }[]; pods: { name: string; node: string; ip: string; phase: string }[] }
const status = (lab: string) => JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as Status;
const podNs = (lab: string, pod: string) => `/run/netns/gz-${lab}-pod-${pod}`;
const ping = (lab: string, from: string, ip: string, n = 1) => sh(["nsenter", `--net=${podNs(lab, from)}`, "ping", "-c", String(n), "-i", "0.05", "-W", "1", ip]).status === 0;
const inNode = (node: string, argv: string[]) => must(["nsenter", `--net=/run/netns/gz-${node}`, ...argv]);
const pinDir = (node: string) => `/sys/fs/bpf/gauze/${node}/datapath`;

/** An nftables table of our own on the node's forward hook, counting pod-to-pod packets routed (or, with br_netfilter, bridged) through it. */
function forwardCounter(node: string): () => number {
  inNode(node, ["nft", "add table inet gzhb; add chain inet gzhb gzfwd { type filter hook forward priority -300; policy accept; }; add rule inet gzhb gzfwd ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 counter"]);
  return () => Number(/packets (\d+)/.exec(inNode(node, ["nft", "list", "chain", "inet", "gzhb", "gzfwd"]))?.[1] ?? -1);
}

/**
 * A fresh 2-node lab (`lab up` with `upArgs`) with pod a on the control plane and b and c on the
 * worker: the nodes, the pods as status lists them, and a pod's IPv4 address by name.
 */
function threePods(lab: string, upArgs: string[]) {
  labs.push(lab);
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "2", ...upArgs]);
  const [cp, worker] = status(lab).nodes.map((n) => n.name) as [string, string];
  must([GAUZE, "lab", "pod", "run", "a", "--node", cp, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", worker, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "c", "--node", worker, "--name", lab]);
  const st = status(lab);
  return { cp, worker, st, ip: (p: string) => st.pods.find((x) => x.name === p)!.ip };
}

/** Pods that do not reach each other (one ping each way, at the address `addr` picks). */
function meshFailures(lab: string, pods: { name: string }[], addr: (p: { name: string }) => string): string[] {
  const failed: string[] = [];
  for (const a of pods) for (const b of pods) if (a !== b && !ping(lab, a.name, addr(b))) failed.push(`${a.name} -> ${b.name} (${addr(b)})`);
  return failed;
}

for (const backend of ["host-gw", "vxlan"] as const) {
  test(`${backend} on the eBPF datapath: full mesh; past the bridge and netfilter; drift put back; a restart loses nothing; down leaves no pin`, { timeout: 180_000 }, async () => {
    const lab = `${base}${backend === "host-gw" ? "h" : "v"}`;
    const { cp, worker, st, ip } = threePods(lab, ["--backend", backend, "--datapath", "ebpf"]);
    assert.deepEqual(meshFailures(lab, st.pods, (p) => ip(p.name)), [], "every pod reaches every other pod");

    // trace names the redirects as hops: out of a's veth by bpf_redirect_neigh (into the tunnel
    // device on VXLAN, out of eth0 on host-gw), into b by bpf_redirect_peer on arrival (no to-pod
    // hop exists: no tc hook of the node sees that), and the same way back.
    const tr = JSON.parse(must([GAUZE, "trace", "a", "b", "--name", lab, "--json"])) as { replied: boolean; reachedDestination: boolean; hops: { node: string; direction: string; observationPoint: string; redirect?: { helper: string; to: string } }[] };
    assert.ok(tr.replied && tr.reachedDestination, JSON.stringify(tr.hops));
    const redirects = tr.hops.filter((h) => h.redirect).map((h) => `${h.direction} ${h.node === cp ? "cp" : "wk"} ${h.observationPoint} ${h.redirect!.helper} ${h.redirect!.to}`);
    const out = backend === "vxlan" ? "gauze.1" : "eth0", inp = backend === "vxlan" ? "from-overlay" : "from-network";
    assert.deepEqual(redirects, [`request cp from-pod bpf_redirect_neigh ${out}`, `request wk ${inp} bpf_redirect_peer default/b`, `reply wk from-pod bpf_redirect_neigh ${out}`, `reply cp ${inp} bpf_redirect_peer default/a`]);
    assert.ok(!tr.hops.some((h) => h.observationPoint === "from-bridge" || h.observationPoint === "to-bridge"), "no hop on the bridge");

    // The conflist hands the plugin the datapath; the plugin attached from_pod to each pod's veth.
    const links = readdirSync(`${pinDir(worker)}/links`).sort();
    assert.equal(links.filter((l) => l.startsWith("pod-")).length, 2, links.join(" "));
    assert.ok(links.includes("net-eth0") && (backend === "host-gw" || links.includes("net-gauze_1")), links.join(" "));

    // Past netfilter and the bridge: 20 pings across and 10 on one node, the forward hook's counter
    // stays at 0 on both nodes, and tcpdump on the worker's cni0 sees no echo request.
    const counters = [forwardCounter(cp), forwardCounter(worker)];
    const cap = spawnSync("sh", ["-c", `timeout 6 nsenter --net=/run/netns/gz-${worker} tcpdump -lni cni0 icmp 2>/dev/null & sleep 0.7; `
      + `nsenter --net=${podNs(lab, "a")} ping -c 20 -i 0.05 ${ip("b")} >/dev/null && nsenter --net=${podNs(lab, "c")} ping -c 10 -i 0.05 ${ip("b")} >/dev/null && echo PINGS-OK; wait`], { encoding: "utf8" });
    assert.match(cap.stdout, /PINGS-OK/, cap.stderr);
    assert.doesNotMatch(cap.stdout, /echo request/, "cni0 saw no pod packet: the bridge and the node's routing were skipped");
    assert.deepEqual(counters.map((c) => c()), [0, 0], "nothing crossed either node's forward hook");
    type Row = { key: number; values: { value: number }[] };
    // With the map's BTF, bpftool puts the decoded entry under "formatted".
    const stats = (JSON.parse(must(["bpftool", "-j", "map", "dump", "pinned", `${pinDir(worker)}/stats`])) as (Row & { formatted?: Row })[]).map((x) => x.formatted ?? x);
    const sum = (k: number) => stats.find((s) => s.key === k)!.values.reduce((a, v) => a + v.value, 0);
    assert.ok(sum(0) >= 20 && sum(3) >= 20, `worker: ${sum(0)} redirected between its pods, ${sum(3)} into a pod from the ${backend === "vxlan" ? "tunnel" : "underlay"}`);

    // NAT, with kube-proxy's rule shapes on the control-plane node: a ClusterIP DNAT to b on the
    // other node (its replies must be translated back by this node's conntrack: watch_nat sends
    // them the classic way), a NodePort from the underlay (DNAT and masquerade), and pods
    // masqueraded out to the underlay.
    inNode(cp, ["iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-d", "10.96.0.10/32", "-p", "tcp", "--dport", "5201", "-j", "DNAT", "--to-destination", `${ip("b")}:5201`]);
    inNode(cp, ["iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-d", st.nodes[0]!.ip, "-p", "tcp", "--dport", "30201", "-j", "DNAT", "--to-destination", `${ip("b")}:5202`]);
    inNode(cp, ["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-d", `${ip("b")}/32`, "-p", "tcp", "--dport", "5202", "!", "-s", "10.244.0.0/16", "-j", "MASQUERADE"]);
    // One iperf3 server per case, each on its own port (a finishing one-shot server resets a newcomer).
    const viaService = (clientNs: string, to: string, port: number, serverPort: number) => spawnSync("sh", ["-c", `nsenter --net=${podNs(lab, "b")} timeout 10 iperf3 -s -1 -p ${serverPort} -B ${ip("b")} >/dev/null 2>&1 & sleep 0.4; nsenter --net=${clientNs} timeout 8 iperf3 -c ${to} -p ${port} -t 1 -J; wait`], { encoding: "utf8" });
    for (const [what, ns, to, port, serverPort] of [["ClusterIP from pod a", podNs(lab, "a"), "10.96.0.10", 5201, 5201], ["NodePort from the underlay", `/run/netns/gz-${lab}-underlay`, st.nodes[0]!.ip, 30201, 5202]] as const) {
      const r = viaService(ns, to, port, serverPort);
      assert.match(r.stdout, /"sum_received"/, `${what}: ${r.stdout.slice(-300)}${r.stderr}`);
      assert.doesNotMatch(r.stdout, /"error"/, `${what}: ${r.stdout.slice(-300)}`);
    }
    assert.ok(ping(lab, "a", "172.18.0.1", 3), "masqueraded to the underlay");

    // Drift: the program taken off b's veth by hand (its link's pin removed) is back within ~1 s.
    const podLink = links.find((l) => l.startsWith("pod-"))!;
    rmSync(`${pinDir(worker)}/links/${podLink}`);
    let back = false;
    for (let i = 0; i < 30 && !back; i++) { await new Promise((r) => setTimeout(r, 100)); back = existsSync(`${pinDir(worker)}/links/${podLink}`); }
    assert.ok(back, "the agent re-attached from_pod");
    assert.ok(ping(lab, "a", ip("b")) && ping(lab, "b", ip("c")));
    // A map entry deleted by hand (bpftool, the oracle, on the pinned endpoints map) is back within ~1 s, the same.
    type Entry = { key: string[]; value: string[] };
    const endpoints = () => JSON.parse(must(["bpftool", "-j", "map", "dump", "pinned", `${pinDir(worker)}/endpoints`])) as Entry[];
    const ofB = (es: Entry[]) => es.find((e) => e.key.slice(4, 8).map((x) => parseInt(x, 16)).join(".") === ip("b"));
    const before = ofB(endpoints());
    assert.ok(before, "b's endpoint is in the map");
    must(["bpftool", "map", "delete", "pinned", `${pinDir(worker)}/endpoints`, "key", "hex", ...before.key.map((x) => x.slice(2))]);
    assert.equal(ofB(endpoints()), undefined, "deleted");
    let again: Entry | undefined;
    for (let i = 0; i < 30 && !again; i++) { await new Promise((r) => setTimeout(r, 100)); again = ofB(endpoints()); }
    assert.deepEqual(again, before, "the agent put b's endpoint back as it was");

    // An agent restart: the pinned programs and maps carry the traffic meanwhile.
    const r = await lossDuring(lab, "a", ip("b"), () => {
      must([GAUZE, "lab", "node", "stop-agent", worker, "--name", lab]);
      must([GAUZE, "lab", "node", "start-agent", worker, "--name", lab]);
    });
    assert.ok(r.sent > 15 && r.lost <= 1, `agent restart: ${r.lost} of ${r.sent} pings lost`);

    must([GAUZE, "lab", "down", "--name", lab]);
    labs.splice(labs.indexOf(lab), 1);
    for (const n of [cp, worker]) assert.ok(!existsSync(`/sys/fs/bpf/gauze/${n}`) || readdirSync(`/sys/fs/bpf/gauze/${n}`).length === 0, `${n}: no pin left`);
  });
}

/**
 * The datapath's links on a node as bpftool sees them (the oracle): each pinned link's id and its
 * program's name. (Debian's bpftool 7.1 lists tcx links without their device, so the pins say
 * which link is whose, and `bpftool link list` says whether a link still exists at all.)
 */
function datapathLinks(node: string): { pin: string; id: number; prog: string }[] {
  const dir = `${pinDir(node)}/links`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((pin) => {
    const l = JSON.parse(must(["bpftool", "-j", "link", "show", "pinned", `${dir}/${pin}`])) as { id: number; prog_id: number };
    const p = JSON.parse(must(["bpftool", "-j", "prog", "show", "id", String(l.prog_id)])) as { name: string };
    return { pin, id: l.id, prog: p.name };
  });
}
const liveLinkIds = () => new Set(must(["bpftool", "link", "list"]).split("\n").filter((l) => /^\d+:/.test(l)).map((l) => Number(l.split(":")[0])));

test("lab datapath on a running lab: classic to ebpf (the pods already there get from_pod and skip netfilter) and back (no program, map, pin or table left), pings passing throughout", { timeout: 180_000 }, async () => {
  const lab = `${base}s`;
  const { cp, worker, st, ip } = threePods(lab, []);
  assert.deepEqual([...datapathLinks(cp), ...datapathLinks(worker)], [], "classic: no datapath link yet");

  const toEbpf = await lossDuring(lab, "a", ip("b"), () => { must([GAUZE, "lab", "datapath", "ebpf", "--name", lab]); });
  assert.ok(toEbpf.lost <= 2, `classic -> ebpf: ${toEbpf.lost} of ${toEbpf.sent} pings lost`);
  // The agent attached from_pod to the veths of the pods that were there before the switch.
  const made = [...datapathLinks(cp), ...datapathLinks(worker)];
  const podLinks = datapathLinks(worker).filter((l) => l.pin.startsWith("pod-"));
  assert.deepEqual(podLinks.map((l) => l.prog), ["from_pod", "from_pod"], JSON.stringify(made));
  const counters = [forwardCounter(cp), forwardCounter(worker)];
  assert.ok(ping(lab, "a", ip("b"), 10) && ping(lab, "c", ip("b"), 10));
  assert.deepEqual(counters.map((c) => c()), [0, 0], "on ebpf the old pods' packets skip the forward hook");

  const toClassic = await lossDuring(lab, "a", ip("b"), () => { must([GAUZE, "lab", "datapath", "classic", "--name", lab]); });
  assert.ok(toClassic.lost <= 2, `ebpf -> classic: ${toClassic.lost} of ${toClassic.sent} pings lost`);
  const live = liveLinkIds();
  assert.deepEqual(made.filter((l) => live.has(l.id)), [], "bpftool link list: none of the datapath's links is left");
  for (const n of [cp, worker]) {
    assert.ok(!existsSync(pinDir(n)), `${n}: no datapath pin left`);
    assert.doesNotMatch(inNode(n, ["nft", "list", "tables"]), /gauze_datapath/, `${n}: the DNAT mark table is gone`);
  }
  assert.deepEqual(meshFailures(lab, st.pods, (p) => ip(p.name)), [], "classic again: every pod reaches every other pod");
  assert.ok(counters.some((c) => c() > 0), "classic again: pod packets cross the forward hook");
  // A pod made after the switch gets no program either (the conflist lost its datapath block).
  must([GAUZE, "lab", "pod", "run", "d", "--node", worker, "--name", lab]);
  assert.deepEqual(datapathLinks(worker), []);
  assert.ok(ping(lab, "d", ip("a")));
});

test("dual-stack on the eBPF datapath: IPv6 pods redirected too (VXLAN over IPv6 into gauze6.1, bpf_redirect_peer on arrival), past the bridge and netfilter", { timeout: 180_000 }, async () => {
  const lab = `${base}6`;
  const { cp, worker } = threePods(lab, ["--ipv6", "--datapath", "ebpf"]);
  const pods = (JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string; ip: string; ip6?: string }[] }).pods;
  assert.ok(pods.every((p) => p.ip6), JSON.stringify(pods));
  const ip6 = (p: string) => pods.find((x) => x.name === p)!.ip6!;
  assert.deepEqual(meshFailures(lab, pods, (p) => ip6(p.name)), [], "every pod reaches every other pod over IPv6");
  // An IPv6 counter on each node's forward hook stays at 0 while 20 pings cross and 10 stay on the worker.
  for (const n of [cp, worker]) inNode(n, ["nft", "add table inet gzhb6; add chain inet gzhb6 gzfwd6 { type filter hook forward priority -300; policy accept; }; add rule inet gzhb6 gzfwd6 ip6 saddr fd47:10:244::/56 ip6 daddr fd47:10:244::/56 counter"]);
  assert.ok(ping(lab, "a", ip6("b"), 20) && ping(lab, "c", ip6("b"), 10));
  const count = (n: string) => Number(/packets (\d+)/.exec(inNode(n, ["nft", "list", "chain", "inet", "gzhb6", "gzfwd6"]))?.[1] ?? -1);
  assert.deepEqual([count(cp), count(worker)], [0, 0], "no IPv6 pod packet crossed either node's forward hook");
  // trace over IPv6: 104 bytes in the pods, the redirects named, into the IPv6 tunnel device.
  const tr = JSON.parse(must([GAUZE, "trace", "a", ip6("b"), "--name", lab, "--json"])) as { replied: boolean; hops: { direction: string; ipLen: number; observationPoint: string; redirect?: { helper: string; to: string } }[] };
  assert.ok(tr.replied, JSON.stringify(tr.hops));
  assert.deepEqual(tr.hops.filter((h) => h.redirect).map((h) => `${h.direction} ${h.redirect!.helper} ${h.redirect!.to}`),
    ["request bpf_redirect_neigh gauze6.1", "request bpf_redirect_peer default/b", "reply bpf_redirect_neigh gauze6.1", "reply bpf_redirect_peer default/a"]);
  assert.ok(tr.hops.filter((h) => h.observationPoint === "from-pod").every((h) => h.ipLen === 104));
});
