// What a newcomer trips on (issue 24), on one lab: hints that paste as they are, `lab logs` and
// `lab podman`, one shape for the lab's commands (positional names, a help line each, the values
// accepted, one success line), capture on any interface, filters that name the valid words.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { GAUZE, sh, must } from "./helpers.ts";
import { undocumented } from "../support/json-doc.ts";

const name = `t${process.pid % 1000}nc`;
const g = (...args: string[]) => sh([GAUZE, ...args]);

before(() => {
  g("lab", "down", "--name", name);
  const r = g("lab", "up", "--name", name);
  assert.equal(r.status, 0, r.stderr);
});
after(() => { g("lab", "down", "--name", name); });

test("lab logs: a node's agent log (it said \"check the agent's log\" with no path); an unknown name lists the names", () => {
  const out = must([GAUZE, "lab", "logs", "worker", "--name", name]);
  assert.match(out, /"msg":"ready: subnet leased/);
  const bad = g("lab", "logs", "nope", "--name", name);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, new RegExp(`no node or DaemonSet pod named nope \\(logs: ${name}-control-plane, ${name}-worker\\)`));
});

test("lab podman: podman on the lab's own storage (a bare podman sees none of a manifest lab's containers)", () => {
  const r = g("lab", "podman", "--name", name, "--", "ps", "-a", "--format", "{{.Names}}");
  assert.equal(r.status, 0, r.stderr);
  const info = must([GAUZE, "lab", "podman", "--name", name, "--", "info", "--format", "{{.Store.GraphRoot}}"]);
  assert.match(info.trim(), new RegExp(`/var/lib/gauze/lab/${name}/podman/root$`));
});

test("one CLI: node add <node> positional (it took --node only), success lines for rm and etcd-less lab, exec nope names pods and nodes", () => {
  const extra = `${name}-x`;
  const add = g("lab", "node", "add", extra, "--name", name);
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stderr, new RegExp(`node ${extra} joined`));
  assert.equal(g("lab", "pod", "run", "p1", "--node", extra, "--name", name).status, 0);
  assert.equal(g("lab", "pod", "run", "p2", "--node", extra, "--name", name).status, 0);
  const rmPod = g("lab", "pod", "rm", "p2", "--name", name);
  assert.equal(rmPod.status, 0, rmPod.stderr);
  assert.equal(rmPod.stdout.trim(), `pod p2 deleted from lab ${name}`);
  const rm = g("lab", "node", "rm", extra, "--name", name);
  assert.equal(rm.stdout.trim(), `node ${extra} removed from lab ${name}, and its pod with it: p1`);
  const stop = g("lab", "node", "stop-agent", "worker", "--name", name);
  assert.equal(stop.stdout.trim(), `agent on ${name}-worker stopped; its dataplane stays`);
  assert.equal(g("lab", "node", "start-agent", "worker", "--name", name).stdout.trim(), `agent on ${name}-worker started`);
  const nope = g("lab", "exec", "nope", "--name", name, "--", "true");
  assert.equal(nope.status, 1);
  assert.equal(nope.stderr.trim(), `gauze lab: no pod or node named nope in lab ${name} (pods: none; nodes: ${name}-control-plane, ${name}-worker)`);
});

test("help: every lab subcommand has a line; backend and break list what they accept", () => {
  const missing: string[] = [];
  const walk = (path: string[]) => {
    const help = must([GAUZE, ...path, "--help"]);
    const block = /\nCommands:\n([\s\S]*?)(\n\n|$)/.exec(help)?.[1] ?? "";
    for (const line of block.split("\n")) {
      const m = /^ {2}(\S+)(.*)$/.exec(line);
      if (!m || m[1] === "help") continue;
      // commander puts the description after the usage, two spaces apart at least
      if (!/\S\s{2,}\S/.test(m[2]!.trim() ? `${m[1]}${m[2]}` : "")) missing.push([...path, m[1]!].join(" "));
      walk([...path, m[1]!]);
    }
  };
  walk(["lab"]);
  assert.deepEqual(missing, [], "subcommands without a help line");
  const backend = must([GAUZE, "lab", "backend", "--help"]);
  for (const b of ["vxlan", "host-gw", "vxlan-direct", "macvlan", "wireguard"]) assert.match(backend, new RegExp(`\\b${b}\\b`));
  const brk = must([GAUZE, "lab", "break", "--help"]);
  assert.doesNotMatch(brk, /see gauze lab break --help/);
  assert.match(brk, /Faults:\n {2}no-br-netfilter +\S/);
  assert.match(must([GAUZE, "lab", "capture", "--help"]), /--iface <name>/);
  assert.match(must([GAUZE, "lab", "bench", "--help"]), /--name <prefix>/);
  assert.match(g("lab", "bench", "--name", "Bad_Name").stderr, /--name "Bad_Name": 1-17 lowercase letters/);
});

test("lab capture --iface: the pod bridge, not only eth0; a Wireshark filter works as tcpdump's", () => {
  assert.equal(g("lab", "pod", "run", "c1", "--node", "control-plane", "--name", name).status, 0);
  const r = g("lab", "capture", "control-plane", "--name", name, "--iface", "cni0", "--filter", "ip.addr == 10.9.9.9", "--duration", "1", "--summary", "--json");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /listening on cni0/);
  assert.equal((JSON.parse(r.stdout) as { totals: { packets: number } }).totals.packets, 0);
  g("lab", "pod", "rm", "c1", "--name", name);
});

test("the demo counts its steps one way: a failure at step 1 still ends at [6/6] with 5 steps counted (it said [2/6] and \"0 of 1\")", () => {
  const r = g("lab", "demo", "--name", `${name}d`, "--manifest", "/nonexistent/kube-gauze.yml");
  assert.equal(r.status, 1);
  const out = r.stdout + r.stderr;
  assert.match(out, /^\[6\/6\] Summary$/m);
  assert.match(out, /0 of 5 steps passed, 1 failed, 4 not run after the failure/);
});

test("observe: Hubble's filters (--label, --namespace, --ip, --port, --since) and observe status (flows seen, events lost, per node)", async () => {
  assert.equal(g("lab", "pod", "run", "web", "--node", "worker", "--image", "nginx", "--labels", "app=web", "--name", name).status, 0);
  assert.equal(g("lab", "pod", "run", "tools/cli", "--node", "control-plane", "--name", name).status, 0);
  const st = JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { pods: { name: string; ip: string }[] };
  const web = st.pods.find((p) => p.name === "web")!.ip;
  assert.equal(g("lab", "exec", "tools/cli", "--name", name, "--", "curl", "-s", "-o", "/dev/null", `http://${web}/`).status, 0);
  await new Promise((r) => setTimeout(r, 500));
  const obs = (...a: string[]) => must([GAUZE, "observe", "--name", name, "--last", "1000", "-o", "json", ...a]).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { source: { ip: string; port?: number; pod?: string }; destination: { ip: string; port?: number; pod?: string } });
  const byLabel = obs("--label", "app=web");
  assert.ok(byLabel.length > 0, "flows of the pod labelled app=web");
  assert.ok(byLabel.every((e) => e.source.pod === "default/web" || e.destination.pod === "default/web"));
  assert.equal(obs("--label", "app=nope").length, 0);
  assert.ok(obs("--namespace", "tools").every((e) => [e.source.pod, e.destination.pod].some((p) => p?.startsWith("tools/"))));
  const byIpPort = obs("--ip", web, "--port", "80", "--since", "1m");
  assert.ok(byIpPort.length > 0 && byIpPort.every((e) => [e.source.ip, e.destination.ip].includes(web) && [e.source.port, e.destination.port].includes(80)));
  assert.equal(obs("--until", "1h").length, 0, "nothing an hour ago");
  assert.match(g("observe", "--name", name, "--since", "yesterday").stderr, /RFC 3339/);
  await new Promise((r) => setTimeout(r, 1100)); // the counters are taken once a second
  const s = JSON.parse(must([GAUZE, "observe", "status", "--name", name, "--json"])) as { nodes: { node: string; reachable: boolean; events: number; lost: number; flows: number }[]; totals: { reachable: number; events: number } };
  assert.deepEqual(s.nodes.map((n) => [n.node, n.reachable]), [[`${name}-control-plane`, true], [`${name}-worker`, true]]);
  assert.ok(s.totals.events > 0 && s.nodes.every((n) => typeof n.lost === "number"));
  // The flows just shown are tracked (the eBPF path once reported 0 here, its table counted as the ring path's).
  assert.ok(s.nodes.every((n) => n.flows > 0), JSON.stringify(s.nodes));
  assert.match(must([GAUZE, "observe", "status", "--name", name]), new RegExp(`lab ${name}: 2/2 nodes answer\\nflows \\d+, events \\d+ seen, \\d+ lost`));
});

test("one JSON style: observe, observe status, trace, lab status and doctor hold to docs/json.md (camelCase, RFC 3339 times, one name per concept)", () => {
  // Pods from the observe test: tools/cli on the control-plane, web on the worker.
  const lines = (out: string) => out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as unknown);
  const flows = lines(must([GAUZE, "observe", "--name", name, "--last", "500", "-o", "json"]));
  assert.ok(flows.length > 0);
  assert.deepEqual(undocumented("gauze observe -o json", flows), []);
  assert.match((flows[0] as { time: string }).time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/, "RFC 3339 with nanoseconds (it was epoch ms)");
  assert.deepEqual(undocumented("gauze observe status --json", [JSON.parse(must([GAUZE, "observe", "status", "--name", name, "--json"]))]), []);
  const ok = JSON.parse(sh([GAUZE, "trace", "tools/cli", "web", "--name", name, "--json"]).stdout) as { hops: { observationPoint: string; interface: { name: string } }[] };
  assert.ok(ok.hops.length > 0 && ok.hops.every((h) => typeof h.observationPoint === "string" && typeof h.interface.name === "string"), "trace says observationPoint and interface {index, name}, as observe does");
  const nobody = JSON.parse(sh([GAUZE, "trace", "tools/cli", "10.244.1.99", "--name", name, "--json"]).stdout) as unknown;
  assert.deepEqual(undocumented("gauze trace --json", [ok, nobody]), []);
  assert.deepEqual(undocumented("gauze lab status --json", [JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"]))]), []);
  assert.deepEqual(undocumented("gauze doctor --json", [JSON.parse(sh([GAUZE, "doctor", "--node", "worker", "--name", name, "--json"]).stdout)]), []);
});
