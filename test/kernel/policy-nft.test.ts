// The NetworkPolicy compiler against the real nft and kernel: for generated worlds (every
// feature of NetworkPolicy, both families, audit mode, policies that fail closed) the whole table
// loads as one transaction; a change goes in as only what differs and leaves the table equal to
// a fresh load of the new model; an unchanged model is an empty change; what nft holds (read back
// as JSON) is what the model says; and an address that is not one never reaches nft.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { addNetns, delNetns, netnsPath } from "../../src/kernel/netns.ts";
import { nftApply, nftTableJson } from "../../src/kernel/nft.ts";
import { POLICY_TABLE, changes, compilePolicy, script } from "../../src/dataplane/policy-nft.ts";
import { compileWorld, nodeAllowRules } from "../../src/policy/index.ts";
import { randomWorld } from "../fixtures/policy/random-world.ts";

const ns = `gz-t${process.pid % 100000}nft`;
addNetns(ns);
const netns = netnsPath(ns);
after(() => { try { delNetns(ns); } catch { /* gone */ } });

const rulesIn = () => {
  const j = nftTableJson(POLICY_TABLE, { netns }) as { nftables: Record<string, { chain?: string }>[] };
  const per = new Map<string, number>();
  for (const x of j.nftables) if (x.rule) per.set(x.rule.chain!, (per.get(x.rule.chain!) ?? 0) + 1);
  return per;
};

/** A verdict map's entries as nft holds them: address to the chain it jumps to. */
function mapIn(name: string): Map<string, string> {
  const r = spawnSync("nsenter", [`--net=${netns}`, "nft", "-j", "list", "map", "inet", POLICY_TABLE, name], { encoding: "utf8" });
  const j = JSON.parse(r.stdout) as { nftables: { map?: { elem?: [unknown, { jump?: { target: string } }][] } }[] };
  const elems = j.nftables.find((x) => x.map)?.map?.elem ?? [];
  return new Map(elems.map(([k, v]) => [String(k), v.jump?.target ?? "?"] as [string, string]).sort());
}

test("a generated world loads whole, changes go in as what differs, and nft holds what the model says", () => {
  const w = randomWorld({ seed: 7, namespaces: 4, pods: 120, policies: 60, hostNetwork: 3 });
  const m1 = compilePolicy(nodeAllowRules(compileWorld(w), "n1"));
  assert.ok(m1.chains.size > 10, `${m1.chains.size} chains`);
  nftApply(script(m1, false), { netns });
  const held = rulesIn();
  for (const [name, lines] of m1.chains) assert.equal(held.get(name), lines.length, name);
  assert.equal(changes(m1, compilePolicy(nodeAllowRules(compileWorld(w), "n1"))), "", "an unchanged world is no change");
  // A different world (other policies): the change, applied on top, leaves what a fresh load would.
  const w2 = { ...w, policies: w.policies.slice(0, 30) };
  const m2 = compilePolicy(nodeAllowRules(compileWorld(w2), "n1"));
  const delta = changes(m1, m2);
  assert.ok(delta.length > 0 && delta.length < script(m2, true).length, "only what differs");
  nftApply(delta, { netns });
  const after2 = rulesIn();
  assert.deepEqual([...after2.keys()].filter((c) => c !== "forward").sort(), [...m2.chains.keys()].sort());
  for (const [name, lines] of m2.chains) assert.equal(after2.get(name), lines.length, name);
  // The verdict maps hold exactly the next model's entries (changed entries repointed one by one).
  for (const name of ["in4", "in6", "out4", "out6"] as const) assert.deepEqual(mapIn(name), new Map([...m2.maps[name]].sort()), name);
  // Loading whole again over an existing table replaces it in one transaction.
  nftApply(script(m1, true), { netns });
  assert.equal(rulesIn().size, m1.chains.size + 1);
});

test("an address that is not an address never reaches nft; an SCTP rule is SCTP only", () => {
  const m = compilePolicy([{
    pod: "x/a", direction: "ingress", isolated: true, isolatedBy: ["x/p"],
    rules: [{ policy: "x/p", rule: 0, peers: { ips: ["10.1.0.2", "1.2.3.4 } ; flush ruleset ; {", "::1"], cidrs: [{ cidr: "10.9.0.0/16", except: ["10.9.1.0/24", "nope"] }] }, ports: [{ protocol: "SCTP", from: 80, to: 80 }] }],
    always: { self: ["10.1.0.9"], nodeIps: ["172.18.0.2"] },
  }]);
  const text = script(m, true);
  assert.doesNotMatch(text, /flush ruleset|nope/);
  assert.match(text, /meta l4proto sctp th dport \{ 80 \}/);
  assert.doesNotMatch(text, /l4proto tcp/);
  nftApply(text, { netns });
  const r = spawnSync("nsenter", [`--net=${netns}`, "nft", "list", "table", "inet", POLICY_TABLE], { encoding: "utf8" });
  assert.match(r.stdout, /ip saddr 10\.9\.0\.0\/16 ip saddr != (\{ )?10\.9\.1\.0\/24/);
  assert.equal((r.stdout.match(/ct state established,related accept/g) ?? []).length, 1, "one forward chain, written once");
});
