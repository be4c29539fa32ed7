// Timings only, no assertions on speed: 1000 pods x 1000 policies, the index build and 1 000 000
// queries on each path. Skipped unless GAUZE_POLICY_BENCH=1 (it takes tens of seconds):
//   GAUZE_POLICY_BENCH=1 node_modules/.bin/bun test ./test/unit/policy-bench.test.ts
import { expect, test } from "bun:test";
import { allows, allowsBetween, evaluate } from "../../src/policy/evaluate.ts";
import { allowRules } from "../../src/policy/allow-rules.ts";
import { PROTOCOLS, type Query } from "../../src/policy/types.ts";
import { compileWorld } from "../../src/policy/world-index.ts";
import { rng } from "../fixtures/policy/helpers.ts";
import { randomWorld } from "../fixtures/policy/random-world.ts";

const N = 1_000_000;
const ms = (t0: number) => `${(performance.now() - t0).toFixed(0)} ms`;

test.skipIf(!process.env.GAUZE_POLICY_BENCH)("bench: 1000 pods x 1000 policies, 1M queries", () => {
  let t0 = performance.now();
  const w = randomWorld({ seed: 42, namespaces: 10, pods: 1000, policies: 1000, hostNetwork: 10 });
  const tGen = ms(t0);
  t0 = performance.now();
  const ix = compileWorld(w);
  const tIndex = ms(t0);
  const selecting = ix.pods.map((_, i) => ix.selecting("ingress", i).length + ix.selecting("egress", i).length);
  const r = rng(1);
  const ports = [53, 80, 443, 8080, 8090, 9100];
  const ends = ix.pods.map((p) => ({ namespace: p.info.namespace, name: p.info.name }));
  const queries: Query[] = Array.from({ length: N }, () => ({
    from: ends[Math.floor(r() * ends.length)]!,
    to: r() < 0.9 ? ends[Math.floor(r() * ends.length)]! : { ip: "203.0.113.9" },
    port: ports[Math.floor(r() * ports.length)]!,
    protocol: PROTOCOLS[Math.floor(r() * 3)]!,
    family: 4,
  }));
  const resolved = queries.map((q) => [ix.endpoint(q.from, 4), ix.endpoint(q.to, 4)] as const);

  t0 = performance.now();
  let yes = 0;
  for (let i = 0; i < N; i++) if (allowsBetween(ix, resolved[i]![0], resolved[i]![1], queries[i]!.port, queries[i]!.protocol)) yes++;
  const tBetween = ms(t0);
  t0 = performance.now();
  let yes2 = 0;
  for (const q of queries) if (allows(ix, q)) yes2++;
  const tAllows = ms(t0);
  t0 = performance.now();
  let yes3 = 0;
  for (const q of queries) if (evaluate(ix, q).allowed) yes3++;
  const tEvaluate = ms(t0);
  t0 = performance.now();
  for (const p of ix.pods.slice(0, 100)) { allowRules(ix, p.info, "ingress"); allowRules(ix, p.info, "egress"); }
  const tRules = ms(t0);

  console.log([
    `world: ${w.pods.length} pods, ${w.policies.length} policies (generated and parsed in ${tGen}); policies selecting a pod, both directions: mean ${(selecting.reduce((a, b) => a + b, 0) / selecting.length).toFixed(1)}, max ${Math.max(...selecting)}`,
    `compileWorld: ${tIndex}`,
    `1M allowsBetween (ends resolved once): ${tBetween}`,
    `1M allows (query objects): ${tAllows}`,
    `1M evaluate (full verdicts): ${tEvaluate}`,
    `allowRules, 100 pods x 2 directions: ${tRules}`,
    `allowed: ${yes} of ${N}`,
  ].join("\n"));
  expect(yes2).toBe(yes);
  expect(yes3).toBe(yes);
}, 600_000);
