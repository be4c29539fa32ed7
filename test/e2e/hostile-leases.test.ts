// The registry is input: records written into a lab's etcd by hand, each wrong in its own way,
// are refused (named in the log, a metric and doctor), the valid peers stay programmed and
// reachable, gauze makes no route outside the pod network, and the next node still joins.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { GAUZE, ROOT, sh, must } from "./helpers.ts";

const name = `t${process.pid % 1000}hl`;
const underlay = `/run/netns/gz-${name}-underlay`;
const cp = `gz-${name}-control-plane`;
const prefix = "/gauze.dev/network/subnets";
after(() => { sh([GAUZE, "lab", "down", "--name", name]); });

const etcd = (...args: string[]) => must(["nsenter", `--net=${underlay}`, process.execPath, "--import", "tsx", join(ROOT, "test", "support", "etcd-put.ts"), "http://127.0.0.1:2379", ...args]);
const agentMetric = (metric: string) => {
  const text = sh(["nsenter", `--net=/run/netns/${cp}`, process.execPath, "-e", `fetch("http://127.0.0.1:9317/metrics").then(r=>r.text()).then(t=>console.log(t))`]).stdout;
  const line = text.split("\n").find((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `));
  return line ? Number(line.split(" ").pop()) : NaN;
};
const gauzeRoutes = () => (JSON.parse(must(["ip", "-n", cp, "-j", "route", "show", "proto", "71"]) || "[]") as { dst: string; dev: string }[]);

test("hostile and broken leases in etcd are refused one by one; the cluster keeps working", { timeout: 120_000 }, async () => {
  sh([GAUZE, "lab", "down", "--name", name]);
  must([GAUZE, "lab", "up", "--name", name, "--store", "etcd"]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", "control-plane", "--name", name]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", "worker", "--name", name]);
  const status = JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { pods: { name: string; ip: string }[]; nodes: { name: string; subnet: string }[] };
  const b = status.pods.find((p) => p.name === "b")!.ip;
  const rec = (node: string, ip: string, type = "vxlan", mac = "0e:47:00:00:00:09") => JSON.stringify({ PublicIP: ip, BackendType: type, BackendData: { VtepMAC: mac }, Node: node, Expires: Date.now() + 3_600_000 });
  const hostile: Record<string, string> = {
    [`${prefix}/default`]: rec("evil-default", "172.18.0.250", "host-gw"),
    [`${prefix}/0.0.0.0-1`]: rec("evil-half", "172.18.0.251"),
    [`${prefix}/10.99.0.0-24`]: rec("evil-outside", "172.18.0.252"),
    [`${prefix}/10.244.200.7-24`]: rec("evil-hostbits", "172.18.0.253"),
    [`${prefix}/10.244.201.0-24`]: "not json at all",
    [`${prefix}/10.244.202.0-24`]: rec("evil-loopback", "127.0.0.1"),
    [`${prefix}/10.244.203.0-24`]: rec("evil-mac", "172.18.0.254", "vxlan", "ff:ff:ff:ff:ff:ff"),
  };
  etcd("put", ...Object.entries(hostile).flat());
  let refused = NaN;
  for (let i = 0; i < 40 && refused !== 7; i++) { await new Promise((r) => setTimeout(r, 100)); refused = agentMetric("gauze_invalid_leases"); }
  assert.equal(refused, 7, "gauze_invalid_leases counts every refused record");
  // Only the real peer is programmed; nothing outside the pod network, no default route.
  const routes = gauzeRoutes();
  assert.deepEqual(routes.map((r) => r.dst), [status.nodes.find((n) => n.name === `${name}-worker`)!.subnet], JSON.stringify(routes));
  assert.equal(must(["ip", "-n", cp, "-j", "route", "show", "default"]).includes("172.18.0.250"), false);
  assert.equal(sh([GAUZE, "lab", "exec", "a", "--name", name, "--", "ping", "-c", "1", "-W", "1", b]).status, 0, "the valid peer is reachable");
  // Doctor names each key and why.
  const report = JSON.parse(sh([GAUZE, "doctor", "--node", `${name}-control-plane`, "--name", name, "--json"]).stdout) as { checks: { id: string; status: string; evidence: string[] }[] };
  const leases = report.checks.find((c) => c.id === "agent.leases")!;
  assert.equal(leases.status, "warn");
  for (const key of Object.keys(hostile)) assert.ok(leases.evidence.some((e) => e.startsWith(`${key} `)), `doctor names ${key}: ${leases.evidence.join(" | ")}`);
  assert.ok(leases.evidence.some((e) => /0\.0\.0\.0\/1 is outside the pod network/.test(e)));
  // The log says it once per record.
  const log = must(["cat", `/var/lib/gauze/lab/${name}/nodes/${name}-control-plane/var/log/gauze-agent.log`]);
  assert.equal(log.split("\n").filter((l) => l.includes("lease refused") && l.includes("0.0.0.0-1")).length, 1);
  // A new node still finds a free subnet (the /1 does not make the network look full).
  must([GAUZE, "lab", "node", "add", "--name", name, "--node", `${name}-late`]);
  must([GAUZE, "lab", "pod", "run", "c", "--node", `${name}-late`, "--name", name]);
  const c = (JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { pods: { name: string; ip: string }[] }).pods.find((p) => p.name === "c")!.ip;
  assert.equal(sh([GAUZE, "lab", "exec", "a", "--name", name, "--", "ping", "-c", "1", "-W", "1", c]).status, 0);
  // Removing the records clears the count.
  etcd("del", ...Object.keys(hostile));
  for (let i = 0; i < 40 && refused !== 0; i++) { await new Promise((r) => setTimeout(r, 100)); refused = agentMetric("gauze_invalid_leases"); }
  assert.equal(refused, 0);

  // A peer whose record becomes unreadable stays programmed as last seen: no outage for a
  // garbled write. Its agent is stopped first, so that nothing writes the record back.
  const worker = `${name}-worker`;
  const wsub = status.nodes.find((n) => n.name === worker)!.subnet;
  must([GAUZE, "lab", "node", "stop-agent", worker, "--name", name]);
  etcd("put", `${prefix}/${wsub.replace("/", "-")}`, "{garbled");
  for (let i = 0; i < 40 && refused !== 1; i++) { await new Promise((r) => setTimeout(r, 100)); refused = agentMetric("gauze_invalid_leases"); }
  assert.equal(refused, 1, "the garbled record is refused and counted");
  assert.ok(gauzeRoutes().some((r) => r.dst === wsub), "the peer stays routed as last seen");
  assert.equal(sh([GAUZE, "lab", "exec", "a", "--name", name, "--", "ping", "-c", "1", "-W", "1", b]).status, 0);
  // Its agent, started again, takes its own subnet back (from its subnet file) over the garbage.
  must([GAUZE, "lab", "node", "start-agent", worker, "--name", name]);
  for (let i = 0; i < 40 && refused !== 0; i++) { await new Promise((r) => setTimeout(r, 100)); refused = agentMetric("gauze_invalid_leases"); }
  assert.equal(refused, 0, "the record is a valid lease again");
  const again = JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as { nodes: { name: string; subnet: string }[] };
  assert.equal(again.nodes.find((n) => n.name === worker)!.subnet, wsub, "the same subnet: its pods' addresses stay valid");
  assert.equal(sh([GAUZE, "lab", "exec", "a", "--name", name, "--", "ping", "-c", "1", "-W", "1", b]).status, 0);
});
