// The lab and the agent end to end on the real kernel: the demo, a full mesh of pods across four
// nodes, nodes leaving and coming back (observe --follow letting the one go and following the
// other), an agent killed under traffic, two labs side by side,
// the runtime's NotReady/ContainerCreating signatures, the agent's HTTP endpoints and
// masquerading, and `lab down` leaving the host as it found it.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { GAUZE, sh, must, observing } from "./helpers.ts";

const id = String(process.pid % 1000);
const labs: string[] = [];
function lab(suffix: string): string {
  const name = `t${id}${suffix}`;
  labs.push(name);
  return name;
}
after(() => { for (const l of labs) sh([GAUZE, "lab", "down", "--name", l]); });

interface Status {
  nodes: { name: string; ready: boolean; reason?: string; ip: string; subnet?: string; vtepMac?: string; agent?: { running: boolean; ready: boolean; pid?: number } }[];
  pods: { name: string; node: string; phase: string; ip: string | null; reason?: string }[];
}

const g = (...args: string[]) => sh([GAUZE, ...args]);
const status = (name: string) => JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as Status;
const podIp = (name: string, pod: string) => status(name).pods.find((p) => p.name === pod)!.ip!;
const pingFrom = (name: string, target: string, ip: string) => g("lab", "exec", target, "--name", name, "--", "ping", "-c", "1", "-W", "1", ip).status === 0;

/** What a lab may leave on the host, limited to this lab's name (other test files run alongside). */
function hostSnapshot(name: string) {
  return {
    netns: must(["ip", "netns", "list"]).split("\n").filter((l) => l.includes(name)),
    // The lab adds no link to the host's namespace at all (other tests' short-lived gz* veths aside).
    links: (JSON.parse(must(["ip", "-j", "link", "show"])) as { ifname: string }[]).map((l) => l.ifname).filter((n) => !n.startsWith("gz")).sort(),
    mounts: readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(name)),
    iptables: sh(["iptables-save"]).stdout.split("\n").filter((l) => !l.startsWith("#") && !/^:\S+ \S+ \[\d+:\d+\]$/.test(l)).join("\n"),
    processes: sh(["pgrep", "-f", `/var/lib/gauze/lab/${name}`]).stdout.trim(),
    files: existsSync(`/var/lib/gauze/lab/${name}`),
  };
}

test("lab demo: NotReady to a decoded VXLAN packet, every step verified, in under 15 s, and nothing left", { timeout: 60_000 }, () => {
  const name = lab("d");
  const before = hostSnapshot(name);
  const t0 = Date.now();
  const r = g("lab", "demo", "--name", name, "--json");
  const ms = Date.now() - t0;
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; steps: { title: string; ok: boolean; facts: string[] }[] };
  assert.equal(report.ok, true);
  assert.equal(report.steps.length, 6);
  assert.ok(report.steps.every((s) => s.ok));
  const facts = report.steps.flatMap((s) => s.facts).join("\n");
  assert.match(facts, /NotReady: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized/);
  assert.match(facts, /outer IP 134, inner IP 84/);
  assert.match(facts, /200 hello from nginx/);
  assert.ok(ms < 15_000, `demo took ${ms} ms`);
  assert.deepEqual(hostSnapshot(name), before, "the host is as it was");
  assert.deepEqual(before.netns, []);
});

test("lab demo on the host-gw backend: the pod's packet goes bare, 0 bytes of overhead", { timeout: 60_000 }, () => {
  const name = lab("g");
  const r = g("lab", "demo", "--name", name, "--backend", "host-gw", "--json");
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; steps: { facts: string[] }[] };
  assert.equal(report.ok, true);
  assert.match(report.steps.flatMap((s) => s.facts).join("\n"), /IP 84 bytes: 0 bytes of overhead/);
});

test("full mesh: 4 nodes x 3 pods, every pod reaches every other pod", { timeout: 120_000 }, () => {
  const name = lab("m");
  { const r = g("lab", "up", "--name", name, "--nodes", "4"); assert.equal(r.status, 0, r.stderr); }
  const nodes = status(name).nodes.map((n) => n.name);
  assert.equal(new Set(status(name).nodes.map((n) => n.subnet)).size, 4, "four distinct subnets");
  for (const n of nodes) for (let i = 0; i < 3; i++) {
    const r = g("lab", "pod", "run", `p-${n.split("-").pop()}-${i}`, "--node", n, "--name", name);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  }
  const pods = status(name).pods;
  assert.equal(pods.length, 12);
  assert.ok(pods.every((p) => p.phase === "Running"));
  const failures: string[] = [];
  for (const a of pods) {
    // One exec per source pod: ping every other pod from inside it.
    const targets = pods.filter((b) => b !== a).map((b) => b.ip!);
    const r = g("lab", "exec", a.name, "--name", name, "--", "sh", "-c", targets.map((ip) => `ping -c 1 -W 1 ${ip} >/dev/null || echo ${ip}`).join("; "));
    for (const ip of r.stdout.trim().split("\n").filter(Boolean)) failures.push(`${a.name} -> ${ip}`);
  }
  assert.deepEqual(failures, [], "all 132 pairs reachable");
});

test("a node leaves (its routes, neighbours and FDB entries go everywhere), a stopped agent comes back to its old subnet, a new node joins; observe --follow lets the one go and follows the other", { timeout: 60_000 }, async () => {
  const name = lab("j");
  { const r = g("lab", "up", "--name", name, "--nodes", "3"); assert.equal(r.status, 0, r.stderr); }
  const obs = observing(["--name", name, "--follow", "--last", "0", "--protocol", "icmp"]);
  const until = obs.until;
  try {
    const s0 = status(name);
    const w2 = s0.nodes.find((n) => n.name.endsWith("worker2"))!;
    const cp = s0.nodes[0]!;
    const routesOn = (node: string) => must(["ip", "-n", `gz-${node}`, "route", "show", "dev", "gauze.1"]);
    assert.match(routesOn(cp.name), new RegExp(w2.subnet!.replace(".", "\\.")));

    // Agent stop and start: the lease is still live, so the same subnet comes back.
    const w1 = s0.nodes.find((n) => n.name.endsWith("worker"))!;
    assert.equal(g("lab", "node", "stop-agent", w1.name, "--name", name).status, 0);
    assert.equal(g("lab", "node", "start-agent", w1.name, "--name", name).status, 0);
    assert.equal(status(name).nodes.find((n) => n.name === w1.name)!.subnet, w1.subnet);

    // Node removal: every other node drops its route, neighbour and FDB entry.
    assert.equal(g("lab", "node", "rm", w2.name, "--name", name).status, 0);
    const deadline = Date.now() + 3000;
    let left = "";
    while (Date.now() < deadline) {
      left = [cp.name, w1.name].map((n) => routesOn(n) + must(["ip", "-n", `gz-${n}`, "neigh", "show", "dev", "gauze.1"]) + must(["ip", "netns", "exec", `gz-${n}`, "bridge", "fdb", "show", "dev", "gauze.1"])).join("");
      if (!left.includes(w2.subnet!.split("/")[0]!) && !left.includes(w2.vtepMac!)) break;
    }
    assert.ok(!left.includes(w2.vtepMac!) && !left.includes(w2.subnet!.split("/")[0]!), `stale entries left: ${left}`);
    // The live stream says the node went, once, and stops asking for it.
    await until(() => obs.err().includes(`node ${w2.name}: no longer in the lab ${name}; not followed`), 5000, "observe lets the removed node go");
    const said = obs.err().length;
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(!obs.err().slice(said).includes(w2.name), `nothing more about ${w2.name}: ${obs.err().slice(said)}`);

    // A new node joins and is reachable from the others; the live stream follows it.
    { const r = g("lab", "node", "add", "--name", name, "--node", `${name}-worker3`); assert.equal(r.status, 0, r.stderr + r.stdout); }
    assert.equal(g("lab", "pod", "run", "newbie", "--node", `${name}-worker3`, "--image", "nginx", "--name", name).status, 0);
    assert.equal(g("lab", "pod", "run", "old", "--node", cp.name, "--name", name).status, 0);
    assert.ok(pingFrom(name, "old", podIp(name, "newbie")));
    await until(() => obs.err().includes(`node ${name}-worker3: joined; following it`), 5000, "observe follows the new node");
    await until(() => { pingFrom(name, "old", podIp(name, "newbie")); return new RegExp(`\\[${name}-worker3\\] default/old -> default/newbie icmp echo-request`).test(obs.out()); }, 10_000, "the new node's flows on the live stream");
  } finally {
    obs.stop();
  }
});

test("agent killed with -9 and restarted while a ping runs across nodes: no loss beyond a second", { timeout: 60_000 }, async () => {
  const name = lab("k");
  { const r = g("lab", "up", "--name", name); assert.equal(r.status, 0, r.stderr); }
  assert.equal(g("lab", "pod", "run", "a", "--node", "control-plane", "--name", name).status, 0);
  assert.equal(g("lab", "pod", "run", "b", "--node", "worker", "--name", name).status, 0);
  const target = podIp(name, "b");
  const ifindex = () => (JSON.parse(must(["ip", "-n", `gz-${name}-control-plane`, "-j", "link", "show", "gauze.1"])) as { ifindex: number }[])[0]!.ifindex;
  const deviceBefore = ifindex();
  const ping = spawn(GAUZE, ["lab", "exec", "a", "--name", name, "--", "ping", "-i", "0.1", "-c", "40", "-W", "1", target]);
  let out = "";
  ping.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  const done = new Promise<void>((r) => ping.on("close", () => r()));
  await new Promise((r) => setTimeout(r, 1000));
  for (const node of [`${name}-control-plane`, `${name}-worker`]) {
    assert.equal(g("lab", "node", "stop-agent", node, "--kill", "--name", name).status, 0);
  }
  await new Promise((r) => setTimeout(r, 500));
  for (const node of [`${name}-control-plane`, `${name}-worker`]) assert.equal(g("lab", "node", "start-agent", node, "--name", name).status, 0);
  await done;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  assert.ok(m, out);
  const lost = Number(m[1]) - Number(m[2]);
  assert.ok(lost <= 10, `lost ${lost} of ${m[1]} at 10 per second`);
  // The restarted agents adopted what was there: same device, nothing added or removed.
  assert.equal(ifindex(), deviceBefore, "gauze.1 was not re-created");
  for (const node of [`${name}-control-plane`, `${name}-worker`]) {
    const st = JSON.parse(readFileSync(`/var/lib/gauze/lab/${name}/nodes/${node}/run/gauze/agent.json`, "utf8")) as { lastReconcile: { added: number; removed: number } };
    assert.deepEqual({ added: st.lastReconcile.added, removed: st.lastReconcile.removed }, { added: 0, removed: 0 });
  }
  assert.ok(status(name).nodes.every((n) => n.ready && n.agent?.ready));
});

test("two labs side by side do not collide; taking one down leaves the other working", { timeout: 60_000 }, () => {
  const [a, b] = [lab("a"), lab("b")];
  for (const l of [a, b]) {
    { const r = g("lab", "up", "--name", l); assert.equal(r.status, 0, r.stderr); }
    assert.equal(g("lab", "pod", "run", "x", "--node", "control-plane", "--name", l).status, 0);
    assert.equal(g("lab", "pod", "run", "y", "--node", "worker", "--image", "nginx", "--name", l).status, 0);
  }
  assert.ok(pingFrom(a, "x", podIp(a, "y")));
  // Several labs and no --name: the error names them (this file's two, at least) and the way out.
  const several = g("lab", "status");
  assert.notEqual(several.status, 0);
  assert.match(several.stderr, new RegExp(`labs on this host \\(.*${a}.*\\): say which with --name <lab> or GAUZE_LAB=<lab>`));
  assert.match(several.stderr, new RegExp(b));
  // GAUZE_LAB picks one; lab break and lab fix both take --node.
  const env = { ...process.env, GAUZE_LAB: b };
  assert.equal(sh([GAUZE, "lab", "status", "--json"], { env }).status, 0);
  assert.equal((JSON.parse(sh([GAUZE, "lab", "status", "--json"], { env }).stdout) as { name: string }).name, b);
  assert.equal(sh([GAUZE, "lab", "break", "ip-forward-off", "--node", "worker"], { env }).status, 0);
  assert.equal(sh([GAUZE, "lab", "break", "ip-forward-off", "--node", "control-plane"], { env }).status, 0);
  const fixed = JSON.parse(sh([GAUZE, "lab", "fix", "--node", "worker", "--json"], { env }).stdout) as { undone: { node: string }[] };
  assert.deepEqual(fixed.undone.map((u) => u.node), [`${b}-worker`], "only the worker's fault");
  assert.deepEqual((JSON.parse(sh([GAUZE, "lab", "fix", "--json"], { env }).stdout) as { undone: { node: string }[] }).undone.map((u) => u.node), [`${b}-control-plane`]);
  assert.match(g("lab", "status", "--name", "nosuchlab").stderr, new RegExp(`no lab named "nosuchlab" \\(labs here: .*${a}`));
  assert.ok(pingFrom(b, "x", podIp(b, "y")));
  assert.equal(g("lab", "down", "--name", a).status, 0);
  assert.ok(!must(["ip", "netns", "list"]).includes(`gz-${a}-`));
  assert.ok(pingFrom(b, "x", podIp(b, "y")));
  const http = g("lab", "exec", "x", "--name", b, "--", GAUZE, "lab", "http-get", `http://${podIp(b, "y")}/`);
  assert.match(http.stdout, /^200 hello from y/);
});

test("the runtime's signatures: NotReady without a config, ContainerCreating with a missing plugin, Running once fixed", { timeout: 60_000 }, () => {
  const name = lab("r");
  { const r = g("lab", "up", "--name", name, "--no-cni"); assert.equal(r.status, 0, r.stderr); }
  let s = status(name);
  assert.ok(s.nodes.every((n) => !n.ready && /cni plugin not initialized/.test(n.reason ?? "")));
  assert.notEqual(g("lab", "pod", "run", "early", "--node", "worker", "--name", name).status, 0);
  assert.match(status(name).pods[0]!.reason ?? "", /NotReady/);
  // A conflist naming the reference bridge, which this node's bin dir lacks.
  const root = `/var/lib/gauze/lab/${name}/nodes/${name}-worker`;
  must(["sh", "-c", `echo '{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge","ipam":{"type":"host-local","subnet":"10.250.0.0/24"}}]}' > ${root}/etc/cni/net.d/05-bridge.conflist`]);
  s = status(name);
  const early = s.pods.find((p) => p.name === "early")!;
  assert.equal(early.phase, "ContainerCreating");
  assert.match(early.reason ?? "", new RegExp(`failed to find plugin "bridge" in path \\[${root}/opt/cni/bin\\]`));
  rmSync(`${root}/etc/cni/net.d/05-bridge.conflist`);
  must(["cp", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", `${root}/opt/cni/bin/`]);
  must(["sh", "-c", `echo '{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge","isGateway":true,"ipam":{"type":"host-local","subnet":"10.250.0.0/24","dataDir":"${root}/var/lib/cni/networks"}}]}' > ${root}/etc/cni/net.d/05-bridge.conflist`]);
  s = status(name);
  assert.equal(s.pods.find((p) => p.name === "early")!.phase, "Running", "kubelet-like retry picks it up");
});

test("agent endpoints and masquerade: /healthz, /readyz, /metrics; pod traffic leaving the network carries the node's address", { timeout: 60_000 }, async () => {
  const name = lab("h");
  { const r = g("lab", "up", "--name", name); assert.equal(r.status, 0, r.stderr); }
  const node = `gz-${name}-control-plane`;
  const fetchIn = (path: string) => sh(["ip", "netns", "exec", node, process.execPath, "-e",
    `fetch("http://127.0.0.1:9317${path}").then(async r=>{console.log(r.status);console.log(await r.text())})`]).stdout;
  assert.match(fetchIn("/healthz"), /^200\nok/);
  assert.match(fetchIn("/readyz"), /^200\nready/);
  const metrics = fetchIn("/metrics");
  assert.match(metrics, /gauze_agent_ready\{node="[^"]+"\} 1/);
  assert.match(metrics, /gauze_peers\{node="[^"]+"\} 1/);
  assert.match(metrics, /gauze_reconcile_total\{result="ok",node="[^"]+"\} \d+/);
  // A server on the underlay (outside the cluster network) sees the node IP, not the pod IP.
  const server = spawn("ip", ["netns", "exec", `gz-${name}-underlay`, GAUZE, "lab", "serve-http", "--port", "8080", "--pod", "outside"]);
  try {
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(g("lab", "pod", "run", "m", "--node", "control-plane", "--name", name).status, 0);
    const r = g("lab", "exec", "m", "--name", name, "--", GAUZE, "lab", "http-get", "http://172.18.0.1:8080/");
    assert.match(r.stdout, /^200 hello from outside .* you are 172\.18\.0\.2/);
  } finally {
    server.kill("SIGKILL");
  }
  const nat = must(["ip", "netns", "exec", node, "iptables-save", "-t", "nat"]);
  assert.match(nat, /-A GAUZE-POSTRTG -s 10\.244\.0\.0\/16 ! -d 224\.0\.0\.0\/4 -j MASQUERADE --random-fully/);
});

test("bad lab input gets clear errors", () => {
  assert.match(g("lab", "up", "--name", "Bad_Name").stderr, /lab name "Bad_Name"/);
  assert.match(g("lab", "status", "--name", "nosuchlab").stderr, /no lab named "nosuchlab"/);
  assert.match(g("lab", "up", "--name", "x", "--backend", "ipip").stderr, /--backend ipip: use vxlan, host-gw, vxlan-direct/);
  assert.match(g("lab", "up", "--name", "x", "--nodes", "0").stderr, /--nodes 0/);
  assert.match(g("lab", "node", "add", "--name", "nosuchlab", "--node", "../../etc").stderr, /no lab named "nosuchlab"/);
  assert.match(g("lab", "status", "--name", "../x").stderr, /lab name "\.\.\/x"/);
  // Internal options stay out of help.
  const help = g("doctor", "--help").stdout;
  assert.match(help, /--node <node>/);
  assert.doesNotMatch(help, /--lab-node/);
});
