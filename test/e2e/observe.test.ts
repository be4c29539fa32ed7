// Flows and traces in a lab: a ping between pods on two nodes shows up as flow events at every
// point it crossed, named by pod, with the VXLAN hop's outer addresses and the 50 bytes it adds;
// filters select, bad ones are named; --follow streams a new ping within 2 s; a node whose agent
// is down is named and the other node still answers. A FORWARD drop shows as a dropped flow with
// the kernel's reason. `gauze trace` lists every hop with its size and, for each of the nine
// `lab break` faults, where the probe stopped (or that it got through) consistently with doctor.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { GAUZE, must, sh } from "./helpers.ts";

const lab = `t${process.pid % 1000}ob`;
// observe-ring.test.ts runs this file again with the agents on the packet ring and tracefs (eBPF forced off).
const OBSERVER = process.env.GAUZE_TEST_OBSERVER;
const cp = `${lab}-control-plane`;
const wk = `${lab}-worker`;
before(() => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "2", ...(OBSERVER ? ["--observer", OBSERVER] : [])]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", cp, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", wk, "--name", lab]);
});
after(() => { sh([GAUZE, "lab", "down", "--name", lab]); });

interface Flow {
  time: string; node: string; source: { ip: string; pod?: string }; destination: { ip: string; pod?: string }; protocol: string;
  icmp?: { type: number; seq?: number }; verdict: string; dropReason?: string; observationPoint: string; interface: { name: string };
  packets: number; bytes: number; ipLen: number; tunnel?: { vni: number; outer: { source: string; destination: string }; outerIpLen: number; overheadBytes: number };
}
const status = () => JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { nodes: { name: string; ip: string }[]; pods: { name: string; ip: string; node: string }[] };
const ip = (pod: string) => status().pods.find((p) => p.name === pod)!.ip;
const ping = (from: string, to: string, n = 1) => sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-${from}`, "ping", "-c", String(n), "-i", "0.2", "-W", "1", to]).status === 0;
const flows = (...args: string[]) => must([GAUZE, "observe", "--name", lab, "-o", "json", "--last", "500", ...args]).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Flow);
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("observe: a ping's flow events at every point on both nodes, by pod name, with the tunnel and its 50 bytes", async () => {
  assert.ok(ping("a", ip("b"), 2));
  await wait(1200);
  const f = flows("--from-pod", "a", "--protocol", "icmp").filter((x) => x.icmp?.type === 8);
  const at = (node: string, point: string) => f.find((x) => x.node === node && x.observationPoint === point);
  for (const [node, point] of [[cp, "from-pod"], [cp, "from-bridge"], [cp, "to-overlay"], [cp, "to-network"], [wk, "from-network"], [wk, "from-overlay"], [wk, "to-bridge"], [wk, "to-pod"]] as const) {
    assert.ok(at(node, point), `${node} ${point} in ${f.map((x) => `${x.node} ${x.observationPoint}`).join(", ")}`);
  }
  const wire = at(cp, "to-network")!;
  const st = status();
  assert.deepEqual([wire.source.pod, wire.destination.pod, wire.verdict, wire.ipLen, wire.tunnel?.vni, wire.tunnel?.outerIpLen, wire.tunnel?.overheadBytes, wire.interface.name],
    ["default/a", "default/b", "forwarded", 84, 1, 134, 50, "eth0"]);
  assert.deepEqual([wire.tunnel?.outer.source, wire.tunnel?.outer.destination], [st.nodes.find((n) => n.name === cp)!.ip, st.nodes.find((n) => n.name === wk)!.ip]);
  assert.equal(at(cp, "from-pod")!.tunnel, undefined);
  assert.ok(f.every((x) => x.source.pod === "default/a" && x.protocol === "icmp"), "the filters hold");
  // The compact form a person reads: one line per event, with the tunnel printed.
  const line = must([GAUZE, "observe", "--name", lab, "--from-pod", "a", "--last", "50"]).split("\n").find((l) => l.includes("to-network eth0"))!;
  assert.match(line, new RegExp(`\\[${cp}\\] default/a -> default/b icmp echo-request seq \\d+\\s+to-network eth0\\s+FORWARDED .*vxlan vni 1 .*outer 134 B, \\+50 B`));
});

test("observe: bad input is named with what exists", () => {
  const r = sh([GAUZE, "observe", "--name", lab, "--pod", "nope"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--pod nope: no such pod \(pods: default\/a, default\/b\)/);
  assert.match(sh([GAUZE, "observe", "--name", lab, "--protocol", "sctp"]).stderr, /--protocol sctp: use icmp, tcp or udp/);
  assert.match(sh([GAUZE, "observe", "--name", "nolab"]).stderr, /no lab named "nolab"/);
  assert.match(sh([GAUZE, "observe", "--name", lab, "--node", "ghost"]).stderr, /has no node "ghost" \(nodes: /);
});

test("observe --follow: a new ping's flow arrives within 2 s", async () => {
  const p = spawn(GAUZE, ["observe", "--name", lab, "--follow", "--last", "0", "-o", "json", "--to-pod", "b"]);
  let out = "";
  p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  await wait(500);
  const t0 = Date.now();
  ping("a", ip("b"));
  while (Date.now() - t0 < 2000 && !out.includes('"observationPoint":"to-pod"')) await wait(50);
  const ms = Date.now() - t0;
  p.kill("SIGINT");
  await new Promise((r) => p.on("close", r));
  assert.ok(out.includes('"observationPoint":"to-pod"'), `no flow to b within 2 s: ${out.slice(0, 300)}`);
  assert.ok(ms < 2000, `${ms} ms`);
});

test("observe --follow outlives an agent restart: the node is named while away and followed again", async () => {
  const p = spawn(GAUZE, ["observe", "--name", lab, "--follow", "--last", "0", "-o", "json", "--node", wk]);
  let out = "", err = "";
  p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  p.stderr.on("data", (d: Buffer) => { err += d.toString(); });
  await wait(400);
  must([GAUZE, "lab", "node", "stop-agent", wk, "--name", lab]);
  must([GAUZE, "lab", "node", "start-agent", wk, "--name", lab]);
  await wait(1500);
  out = "";
  ping("a", ip("b"));
  const t0 = Date.now();
  while (Date.now() - t0 < 3000 && !out.includes('"observationPoint":"to-pod"')) await wait(50);
  p.kill("SIGINT");
  await new Promise((r) => p.on("close", r));
  assert.match(err, new RegExp(`node ${wk}: .*trying again every second`));
  assert.ok(out.includes('"observationPoint":"to-pod"'), `flows after the restart: ${out.slice(0, 200)} / ${err}`);
});

test("observe: a FORWARD drop is a dropped flow with the kernel's reason, on the node and at the point it died", async () => {
  must([GAUZE, "lab", "break", "forward-drop", "--node", wk, "--name", lab]);
  try {
    assert.equal(ping("a", ip("b")), false);
    await wait(1200);
    const d = flows("--verdict", "dropped", "--to-pod", "b");
    const hit = d.find((x) => x.dropReason === "NETFILTER_DROP");
    assert.ok(hit, JSON.stringify(d.slice(-3)));
    assert.deepEqual([hit.node, hit.observationPoint, hit.source.pod, hit.destination.pod], [wk, "from-overlay", "default/a", "default/b"]);
    // And in the agent's metrics, by reason and point.
    const metrics = must(["nsenter", `--net=/run/netns/gz-${wk}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]);
    assert.match(metrics, /gauze_drops_total\{reason="NETFILTER_DROP",point="from-overlay",node="[^"]+"\} [1-9]/);
    assert.match(metrics, /gauze_observed_packets_total\{node="[^"]+"\} [1-9]/);
  } finally {
    must([GAUZE, "lab", "fix", "--name", lab]);
  }
});

test("observe: a node whose agent is down is named, the other still answers", async () => {
  must([GAUZE, "lab", "node", "stop-agent", wk, "--name", lab]);
  try {
    const t0 = Date.now();
    const r = sh([GAUZE, "observe", "--name", lab, "--last", "5"]);
    assert.equal(r.status, 0);
    assert.ok(Date.now() - t0 < 5000);
    assert.match(r.stderr, new RegExp(`node ${wk}: agent not reachable \\(no API socket`));
    // The hint is a command for this lab, --name included (there may be several labs).
    assert.ok(r.stderr.includes(`start it: gauze lab node start-agent ${wk} --name ${lab}`), r.stderr);
    assert.ok(r.stdout.includes(`[${cp}]`));
    // Every agent down: not an empty answer with exit 0, an error.
    must([GAUZE, "lab", "node", "stop-agent", cp, "--name", lab]);
    const none = sh([GAUZE, "observe", "--name", lab, "--last", "5"]);
    assert.equal(none.status, 1, none.stderr);
    assert.match(none.stderr, /no node's agent answered \(2 asked\)/);
  } finally {
    must([GAUZE, "lab", "node", "start-agent", wk, "--name", lab]);
    sh([GAUZE, "lab", "node", "start-agent", cp, "--name", lab]);
  }
});

interface Trace {
  hops: { node: string; observationPoint: string; interface: { index?: number; name: string }; direction: string; ipLen: number; tcpFlags?: string[]; tunnel?: { outerIpLen: number; overheadBytes: number } }[];
  replied: boolean; stopped?: { node: string; observationPoint: string; reason?: string; check?: string; why: string }; doctor: { node: string; id: string; status: string }[]; unobserved: { node: string }[];
}
const trace = (...args: string[]) => JSON.parse(sh([GAUZE, "trace", "a", "b", "--name", lab, "--json", ...args]).stdout) as Trace;

test("trace: every hop in order with its size: 84 on the pod links, 134 outside on the underlay, 84 again at the far pod", () => {
  const t = trace();
  assert.ok(t.replied);
  const req = t.hops.filter((h) => h.direction === "request").map((h) => `${h.node === cp ? "cp" : "wk"} ${h.observationPoint} ${h.tunnel ? h.tunnel.outerIpLen : h.ipLen}`);
  assert.deepEqual(req, ["cp from-pod 84", "cp from-bridge 84", "cp to-overlay 84", "cp to-network 134", "wk from-network 134", "wk from-overlay 84", "wk to-bridge 84", "wk to-pod 84"]);
  assert.ok(t.hops.some((h) => h.direction === "reply" && h.node === cp && h.observationPoint === "to-pod"));
  assert.equal(t.hops.find((h) => h.observationPoint === "to-network")!.interface.name, "eth0");
});

// Each fault on its node, and what trace must say: where the probe stopped with the kernel's
// reason and doctor's check, or that it got through while doctor still names the fault.
const FAULTS: { fault: string; node: string; size?: string; stop?: { node: string; after?: string; reason?: RegExp; check: string }; through?: string }[] = [
  { fault: "forward-drop", node: wk, stop: { node: wk, after: "from-overlay", reason: /^NETFILTER_DROP$/, check: "filtering.forward" } },
  { fault: "vxlan-port-blocked", node: wk, stop: { node: wk, after: "from-network", reason: /^NETFILTER_DROP$/, check: "overlay.vxlan-port" } },
  { fault: "ip-forward-off", node: wk, stop: { node: wk, after: "from-overlay", reason: /^IP_INADDRERRORS$/, check: "kernel.ip-forward" } },
  { fault: "stale-fdb", node: cp, stop: { node: cp, check: "overlay.peers" } },
  { fault: "mtu-mismatch", node: cp, size: "1400", stop: { node: cp, after: "to-network", check: "overlay.mtu" } },
  { fault: "no-br-netfilter", node: wk, through: "kernel.br-netfilter" },
  { fault: "no-cni-config", node: wk, through: "cni.config" },
  { fault: "missing-plugin", node: wk, through: "cni.plugins" },
  { fault: "agent-down", node: wk, through: "agent.running" },
];

for (const f of FAULTS) {
  test(`trace under lab break ${f.fault}: ${f.stop ? `stops on the ${f.node === cp ? "source" : "far"} node, ${f.stop.check}` : `gets through; doctor names ${f.through}`}`, { timeout: 60_000 }, () => {
    must([GAUZE, "lab", "break", f.fault, "--node", f.node, "--name", lab]);
    try {
      const t = trace(...(f.size ? ["--size", f.size] : []));
      const failing = t.doctor.filter((d) => d.status === "fail").map((d) => `${d.node === cp ? "cp" : "wk"} ${d.id}`);
      if (f.stop) {
        assert.equal(t.replied, false);
        assert.ok(t.stopped, "a stop is named");
        assert.equal(t.stopped!.node, f.stop.node);
        if (f.stop.after) assert.equal(t.stopped!.observationPoint, f.stop.after);
        if (f.stop.reason) assert.match(t.stopped!.reason ?? "", f.stop.reason);
        assert.equal(t.stopped!.check, f.stop.check);
        assert.ok(failing.some((x) => x.endsWith(f.stop!.check)), `doctor agrees: ${failing.join(", ")}`);
      } else {
        assert.equal(t.replied, true, JSON.stringify(t.stopped));
        assert.ok(failing.includes(`${f.node === cp ? "cp" : "wk"} ${f.through}`), `doctor names ${f.through}: ${failing.join(", ")}`);
        if (f.fault === "agent-down") assert.deepEqual(t.unobserved.map((u) => u.node), [wk], "the node without an agent is named");
      }
    } finally {
      must([GAUZE, "lab", "fix", "--name", lab]);
      if (f.fault === "agent-down" || f.fault === "stale-fdb") sh([GAUZE, "lab", "node", "start-agent", f.node, "--name", lab]);
    }
  });
}

test("trace over TCP and UDP from a port of its own: a refused connection comes back as RST; a datagram to a closed port dies in the far pod", () => {
  const tcp = JSON.parse(sh([GAUZE, "trace", "a", "b", "--name", lab, "--json", "--protocol", "tcp", "--port", "9"]).stdout) as Trace;
  assert.ok(tcp.replied);
  assert.deepEqual(tcp.hops.find((h) => h.direction === "request")!.tcpFlags, ["SYN"]);
  assert.ok(tcp.hops.find((h) => h.direction === "reply")!.tcpFlags!.includes("RST"));
  const udp = JSON.parse(sh([GAUZE, "trace", "a", "b", "--name", lab, "--json", "--protocol", "udp", "--port", "9"]).stdout) as Trace;
  assert.equal(udp.replied, false);
  assert.deepEqual([udp.stopped!.node, udp.stopped!.observationPoint, udp.stopped!.reason], [wk, "to-pod", "NO_SOCKET"]);
});

test("trace's conclusions say what the address is: a refused TCP port is refused, not reached; no pod has an address in the pod network; outside the lab nothing answers", () => {
  // Before: "reached default/b and back", "lost between the nodes (the underlay)", and
  // "IP_INADDRERRORS ... doctor: kernel.ip-forward" with forwarding on; and "56-byte payload" for a SYN.
  const tcp = sh([GAUZE, "trace", "a", "b", "--name", lab, "--protocol", "tcp", "--port", "9"]).stdout;
  assert.match(tcp, /tcp SYN to :9 from port \d+/);
  assert.doesNotMatch(tcp, /payload/);
  assert.match(tcp, /refused: RST from default\/b \(nothing listens on :9\)/);
  assert.doesNotMatch(tcp, /and back/);
  const subnet = (JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { nodes: { name: string; subnet: string }[] }).nodes.find((n) => n.name === cp)!.subnet;
  const ghost = subnet.replace(/\.0\/24$/, ".99");
  const nobody = JSON.parse(sh([GAUZE, "trace", "a", ghost, "--name", lab, "--json"]).stdout) as Trace & { destination: string };
  assert.equal(nobody.destination, "no-pod");
  assert.match(nobody.stopped!.why, new RegExp(`^no pod has ${ghost.replace(/\./g, "\\.")}: it is in the pod network \\(${cp}'s subnet`));
  assert.equal(nobody.stopped!.check, undefined);
  const out = JSON.parse(sh([GAUZE, "trace", "a", "8.8.8.8", "--name", lab, "--json"]).stdout) as Trace & { destination: string };
  assert.equal(out.destination, "outside");
  assert.match(out.stopped!.why, /^8\.8\.8\.8 is outside the cluster: the lab has no way out/);
  assert.deepEqual([out.stopped!.check, out.stopped!.reason], [undefined, undefined]);
});

test("observe --follow --last N prints the last N, in time order, then follows (before: the whole history first)", async () => {
  assert.ok(ping("a", ip("b"), 3));
  await wait(1200);
  for (const last of ["0", "1"]) {
    const p = spawn(GAUZE, ["observe", "--name", lab, "--follow", "--last", last, "-o", "json"]);
    let out = "";
    p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    await wait(1500);
    p.kill("SIGINT");
    await new Promise((r) => p.on("close", r));
    const lines = out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Flow);
    assert.ok(lines.length <= Number(last), `--last ${last} printed ${lines.length} lines of history before anything new happened`);
  }
  const hist = flows();
  // RFC 3339 with nanoseconds in UTC: text order is time order.
  assert.deepEqual(hist.map((f) => f.time), [...hist.map((f) => f.time)].sort(), "in time order");
});

/** A flow's time in ms, whether the JSON gives milliseconds or RFC 3339 text. */
const msOf = (t: number | string) => (typeof t === "number" ? t : Date.parse(t.replace(/(\.\d{3})\d+/, "$1")));

test("eBPF: an agent killed with -9 leaves its programs observing; the next one adopts the same links and reports what happened meanwhile", { skip: OBSERVER === "ring" }, async () => {
  const linkIds = () => must(["sh", "-c", `for p in /sys/fs/bpf/gauze/${wk}/observe/links/*; do bpftool link show pinned "$p" | head -1; done`]).split("\n").filter(Boolean).map((l) => l.split(":")[0]!).sort();
  const before = linkIds();
  assert.ok(before.length >= 8, `the worker's links are pinned: ${before.join(" ")}`);
  must([GAUZE, "lab", "break", "agent-down", "--node", wk, "--name", lab]); // SIGKILL
  const t0 = Date.now();
  assert.ok(ping("a", ip("b")), "pods talk while no agent runs");
  must([GAUZE, "lab", "node", "start-agent", wk, "--name", lab]);
  let seen: Flow[] = [];
  for (let i = 0; i < 40 && !seen.length; i++) {
    await wait(100);
    const r = sh([GAUZE, "observe", "--name", lab, "--node", wk, "--to-pod", "b", "-o", "json", "--last", "200"]);
    seen = r.status === 0 ? r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Flow).filter((f) => msOf(f.time) >= t0 - 5 && f.observationPoint === "to-pod" && f.icmp?.type === 8) : [];
  }
  assert.ok(seen.length, "the ping sent while the agent was dead is reported by the next one (the pinned ring kept it)");
  assert.deepEqual(linkIds(), before, "the same tcx links, adopted (bpftool)");
});

test("eBPF: an agent started with --observe off takes its predecessor's programs away (off costs nothing); on again, it observes", { skip: OBSERVER === "ring" }, async () => {
  const pinned = () => must(["sh", "-c", `for p in /sys/fs/bpf/gauze/${wk}/observe/links/*; do [ -e "$p" ] && bpftool link show pinned "$p" | head -1; done; true`]).split("\n").filter(Boolean).map((l) => l.split(":")[0]!);
  // Link IDs are not handed out again soon: these are the worker's, whatever other labs do meanwhile.
  const alive = (ids: string[]) => { const all = new Set((JSON.parse(must(["bpftool", "-j", "link", "list"])) as { id: number }[]).map((l) => String(l.id))); return ids.filter((id) => all.has(id)); };
  const before = pinned();
  assert.ok(before.length >= 8, `the worker's links are pinned: ${before.join(" ")}`);
  must([GAUZE, "lab", "node", "stop-agent", wk, "--name", lab]);
  assert.equal(alive(before).length, before.length, "a stopped agent leaves its programs observing (the next one adopts them)");
  assert.match(sh([GAUZE, "lab", "node", "start-agent", wk, "--name", lab, "--observe", "maybe"]).stderr, /--observe maybe: use on or off/);
  try {
    must([GAUZE, "lab", "node", "start-agent", wk, "--name", lab, "--observe", "off"]);
    assert.deepEqual(pinned(), [], "no pinned link left");
    assert.deepEqual(alive(before), [], "bpftool: the worker's tcx links are gone");
    const r = sh([GAUZE, "observe", "--name", lab, "--node", wk, "--last", "1"]);
    assert.match(r.stdout + r.stderr, /--no-observe/);
  } finally {
    sh([GAUZE, "lab", "node", "stop-agent", wk, "--name", lab]);
    must([GAUZE, "lab", "node", "start-agent", wk, "--name", lab, "--observe", "on"]);
  }
  assert.ok(pinned().length >= 8, "observing again");
  const t0 = Date.now();
  assert.ok(ping("a", ip("b")));
  let seen = false;
  for (let i = 0; i < 40 && !seen; i++) {
    await wait(100);
    seen = flows("--node", wk, "--to-pod", "b").some((f) => msOf(f.time) >= t0 - 5 && f.observationPoint === "to-pod");
  }
  assert.ok(seen, "a ping after is seen on the worker");
});

test("trace: bad input is named with what exists", () => {
  const r = sh([GAUZE, "trace", "a", "zz", "--name", lab]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /has no pod "zz" \(pods: a, b;/);
  assert.match(sh([GAUZE, "trace", "a", "b", "--name", lab, "--protocol", "tcp"]).stderr, /--protocol tcp needs --port/);
});

test("the plugin leaves a pod record for the agent at ADD (name, namespace, addresses, veth) and takes it away at DEL", () => {
  const dir = `/var/lib/gauze/lab/${lab}/nodes/${wk}/run/gauze/pods`;
  const records = () => must(["ls", dir]).split("\n").filter(Boolean);
  assert.equal(records().length, 1);
  const r = JSON.parse(must(["cat", `${dir}/${records()[0]}`])) as { pod: string; namespace: string; ips: string[]; hostIface: string; netns: string };
  assert.deepEqual([r.pod, r.namespace, r.ips[0]!.split("/")[0]], ["b", "default", ip("b")]);
  assert.ok(must(["ip", "-n", `gz-${wk}`, "link", "show", r.hostIface]).includes(r.hostIface));
  must([GAUZE, "lab", "pod", "rm", "b", "--name", lab]);
  assert.deepEqual(records(), []);
});

test("lab down leaves no drop watcher and no eBPF object behind, not even those of agents killed outright", () => {
  // The kernel's instances outlive any mount of tracefs (the last lab down unmounts the host's, if a
  // lab mounted it): look in a mount namespace of the test's own, mounting tracefs there if needed.
  const instances = () => must(["unshare", "--mount", "--propagation", "private", "sh", "-c",
    "mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; ls /sys/kernel/tracing/instances"]).split("\n").filter((n) => n.startsWith(`gauze-${lab}-`));
  // bpftool is the oracle for eBPF: the links (tcx) and programs of this lab's agents, found by the link ids pinned under their directories.
  const pins = () => must(["sh", "-c", `ls -d /sys/fs/bpf/gauze/${lab}-* 2>/dev/null || true`]).split("\n").filter(Boolean);
  const pinnedLinks = () => must(["sh", "-c", `for p in /sys/fs/bpf/gauze/${lab}-*/observe/links/*; do [ -e "$p" ] && bpftool link show pinned "$p" | head -1; done; true`]).split("\n").filter(Boolean).map((l) => l.split(":")[0]!);
  const ebpf = OBSERVER !== "ring";
  let links: string[] = [];
  if (ebpf) {
    assert.deepEqual(pins().map((p) => p.split("/").pop()).sort(), [cp, wk], "each agent pins its objects under its node's directory");
    links = pinnedLinks();
    assert.ok(links.length >= 8, `tcx links on every link of both nodes: ${links.join(" ")}`);
    assert.deepEqual(instances(), [], "no tracefs instance on the eBPF path");
  } else {
    assert.ok(instances().length >= 2, `each agent has its own: ${instances().join(" ")}`);
    assert.deepEqual(pins(), [], "no pins on the packet ring's path");
  }
  must([GAUZE, "lab", "break", "agent-down", "--node", wk, "--name", lab]); // SIGKILL: the agent cannot clean up
  must([GAUZE, "lab", "down", "--name", lab]);
  assert.deepEqual(instances(), []);
  assert.deepEqual(pins(), []);
  const left = new Set(must(["bpftool", "link", "list"]).split("\n").filter((l) => /^\d+:/.test(l)).map((l) => l.split(":")[0]!));
  assert.deepEqual(links.filter((id) => left.has(id)), [], "bpftool link list: none of the lab's links is left");
});
