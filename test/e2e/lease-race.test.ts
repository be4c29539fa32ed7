// Two nodes never own one subnet. On a lab with etcd whose pod network holds exactly two
// subnets: a node's agent is frozen, its lease ends (the key goes, as when its TTL runs out), a
// new node joins and takes the freed subnet, and the frozen agent wakes up and tries to keep it.
// One owner at the end: the registry names the new node, every node's routes name each subnet
// once and send it to the new node, the old holder is NotReady with the reason (no conflist, so
// no pod gets an address of a subnet it no longer owns), and pods reach the new node's pods.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { GAUZE, ROOT, sh, must } from "./helpers.ts";

const name = `t${process.pid % 1000}lr`;
const underlay = `/run/netns/gz-${name}-underlay`;
let frozen: number | undefined;
after(() => {
  if (frozen) sh(["kill", "-CONT", String(frozen)]);
  sh([GAUZE, "lab", "down", "--name", name]);
});

interface Status {
  nodes: { name: string; ready: boolean; reason?: string; ip: string; subnet?: string; vtepMac?: string; agent?: { pid?: number; ready: boolean; reason: string } }[];
  pods: { name: string; ip: string; node: string }[];
}
const status = () => JSON.parse(must([GAUZE, "lab", "status", "--name", name, "--json"])) as Status;
const inUnderlay = (argv: string[]) => must(["nsenter", `--net=${underlay}`, ...argv]);
const leases = () => JSON.parse(inUnderlay([GAUZE, "store", "leases", "--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379"])) as { node: string; subnet: string }[];
const routes = (node: string) => JSON.parse(must(["ip", "-n", `gz-${node}`, "-j", "route", "show", "proto", "71"]) || "[]") as { dst: string; gateway?: string; dev: string }[];

test("an agent that wakes after its lease ended and was taken does not take it back: one owner, routes to the new one", { timeout: 120_000 }, async () => {
  sh([GAUZE, "lab", "down", "--name", name]);
  must([GAUZE, "lab", "up", "--name", name, "--store", "etcd", "--pod-cidr", "10.250.0.0/23"]);
  const before = status();
  const worker = before.nodes.find((n) => n.name === `${name}-worker`)!;
  const subnet = worker.subnet!;
  frozen = worker.agent!.pid!;
  process.kill(frozen, "SIGSTOP");
  // The lease's end, as etcd makes it when the TTL runs out: the key is deleted.
  inUnderlay([process.execPath, "--import", "tsx", join(ROOT, "test", "support", "etcd-put.ts"), "http://127.0.0.1:2379", "del", `/gauze.dev/network/subnets/${subnet.replace("/", "-")}`]);
  must([GAUZE, "lab", "node", "add", "--name", name, "--node", `${name}-late`]);
  const late = status().nodes.find((n) => n.name === `${name}-late`)!;
  assert.equal(late.subnet, subnet, "the new node leased the only free subnet: the one that was freed");
  must([GAUZE, "lab", "pod", "run", "far", "--node", `${name}-late`, "--name", name]);
  must([GAUZE, "lab", "pod", "run", "near", "--node", "control-plane", "--name", name]);

  process.kill(frozen, "SIGCONT");
  frozen = undefined;
  let woke = status().nodes.find((n) => n.name === worker.name)!;
  for (let i = 0; i < 100 && woke.ready; i++) {
    await new Promise((r) => setTimeout(r, 100));
    woke = status().nodes.find((n) => n.name === worker.name)!;
  }
  assert.equal(woke.ready, false, "the old holder is NotReady");
  assert.match(woke.agent!.reason, new RegExp(`lease ${subnet.replace(/\./g, "\\.")} lost .*no free /24 left in 10\\.250\\.0\\.0/23`));
  // Give the woken agent time to do anything it would do (it must not win the subnet back).
  await new Promise((r) => setTimeout(r, 1500));

  const owners = leases().filter((l) => l.subnet === subnet).map((l) => l.node);
  assert.deepEqual(owners, [late.name], "the registry names one owner");
  const after = status();
  for (const n of after.nodes) {
    const dsts = routes(n.name).map((r) => r.dst);
    assert.equal(new Set(dsts).size, dsts.length, `${n.name}: no subnet routed twice (${dsts.join(", ")})`);
  }
  // The control plane sends the subnet to the new node: the route's next hop resolves to its VTEP.
  const cp = after.nodes.find((n) => n.name === `${name}-control-plane`)!;
  const toSubnet = routes(cp.name).filter((r) => r.dst === subnet);
  assert.equal(toSubnet.length, 1);
  const neigh = JSON.parse(must(["ip", "-n", `gz-${cp.name}`, "-j", "neigh", "show", "dev", toSubnet[0]!.dev])) as { dst: string; lladdr: string }[];
  assert.equal(neigh.find((x) => x.dst === toSubnet[0]!.gateway)?.lladdr, late.vtepMac);
  const fdb = must(["bridge", "-n", `gz-${cp.name}`, "fdb", "show", "dev", toSubnet[0]!.dev]);
  assert.ok(!fdb.includes(worker.vtepMac!), `the old holder's VTEP is gone from the control plane's FDB:\n${fdb}`);
  const far = after.pods.find((p) => p.name === "far")!;
  assert.equal(sh([GAUZE, "lab", "exec", "near", "--name", name, "--", "ping", "-c", "2", "-W", "1", far.ip]).status, 0, "pods reach the new owner's pods");
});
