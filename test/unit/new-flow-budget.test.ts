// The observer's budget of new flows a second: a flooding source takes only its share, the
// others keep theirs, the total holds, and a spoofing flood of many sources shares one bucket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NewFlowBudget } from "../../src/agent/new-flow-budget.ts";

test("a source spraying new flows takes a quarter of the budget; another source's flow still gets in", () => {
  const b = new NewFlowBudget(2000);
  let flood = 0;
  for (let i = 0; i < 10_000; i++) if (b.admit("10.244.0.2")) flood++;
  assert.equal(flood, 500);
  assert.equal(b.admit("10.244.1.3"), true, "a ping from another pod, right after");
  b.reset();
  assert.equal(b.admit("10.244.0.2"), true, "the next second, the flooding source again");
});

test("the total holds across sources; past 4096 sources in a second the rest share one bucket", () => {
  const b = new NewFlowBudget(2000);
  let n = 0;
  for (let s = 0; s < 10; s++) for (let i = 0; i < 1000; i++) if (b.admit(`10.0.0.${s}`)) n++;
  assert.equal(n, 2000);
  assert.equal(b.admit("10.9.9.9"), false, "the budget is spent");
  // 10 000 a second, 2 500 a source: the first 4096 sources one flow each, the other 15 904
  // sources one bucket of 2 500.
  const many = new NewFlowBudget(10_000);
  let spoofed = 0;
  for (let i = 0; i < 20_000; i++) if (many.admit(`s${i}`)) spoofed++;
  assert.equal(spoofed, 4096 + 2500);
});
