// Hubble's filters for observe (--ip, --port, --namespace, --label, --since/--until): parsed once,
// refused with the forms that work, matched on either end of a flow.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { FlowEvent } from "../../src/agent/flow-types.ts";
import { FilterWordsError, filtersMatch, parseFilters, parseSelector, parseTime } from "../../src/observe/filters.ts";

const now = Date.parse("2026-12-02T18:00:00Z");
const ev = (over: Partial<FlowEvent> = {}): FlowEvent => ({
  time: now - 60_000, node: "n1", source: { ip: "10.244.0.2", port: 40000, pod: "tools/cli" }, destination: { ip: "10.244.1.2", port: 80, pod: "default/web" },
  protocol: "tcp", verdict: "forwarded", observationPoint: "to-pod", interface: { index: 3, name: "veth" }, packets: 1, bytes: 66, ipLen: 52, ...over,
});
const labels: Record<string, Record<string, string>> = { "default/web": { app: "web", tier: "front" }, "tools/cli": { app: "cli" } };
const ok = (flags: Parameters<typeof parseFilters>[0], e = ev()) => filtersMatch(e, parseFilters(flags, now), (p) => labels[p]);

test("times: durations back from now and RFC 3339 (with nanoseconds); anything else names both forms", () => {
  assert.equal(parseTime("--since", "5m", now), now - 300_000);
  assert.equal(parseTime("--since", "1h30m", now), now - 5_400_000);
  assert.equal(parseTime("--since", "2026-12-02T17:59:00Z", now), now - 60_000);
  assert.equal(parseTime("--since", "2026-12-02T17:59:00.123456789Z", now), now - 60_000 + 123.456789);
  assert.equal(parseTime("--until", "2026-12-02T19:00:00+01:00", now), now);
  assert.throws(() => parseTime("--since", "yesterday", now), /duration back from now \(30s, 5m, 1h30m\) or an RFC 3339 time/);
});

test("either end: --ip, --port, --namespace; several values are any of them", () => {
  assert.equal(ok({ ip: ["10.244.1.2"] }), true);
  assert.equal(ok({ ip: ["10.9.9.9,10.244.0.2"] }), true);
  assert.equal(ok({ ip: ["10.9.9.9"] }), false);
  assert.equal(ok({ port: ["80"] }), true);
  assert.equal(ok({ port: ["443"] }), false);
  assert.equal(ok({ namespace: ["tools"] }), true);
  assert.equal(ok({ namespace: ["kube-system"] }), false);
  assert.throws(() => parseFilters({ port: ["http"] }), FilterWordsError);
  assert.throws(() => parseFilters({ ip: ["web"] }), /--ip "web": not an IP address/);
});

test("--label: a selector per flag (commas: all of them), flags are any of them; pods without known labels are not selected", () => {
  assert.deepEqual(parseSelector("app=web,tier!=db,canary,!legacy"), [{ key: "app", op: "=", value: "web" }, { key: "tier", op: "!=", value: "db" }, { key: "canary", op: "exists" }, { key: "legacy", op: "!exists" }]);
  assert.equal(ok({ label: ["app=web,tier=front"] }), true);
  assert.equal(ok({ label: ["app=web,tier=back"] }), false);
  assert.equal(ok({ label: ["app=nope", "app=cli"] }), true);
  assert.equal(ok({ label: ["!app"] }), false);
  assert.equal(ok({ label: ["app=web"] }, ev({ destination: { ip: "10.244.1.9", port: 80 } })), false);
  assert.throws(() => parseSelector("a b"), /key=value, key!=value, key or !key/);
});

test("--since/--until window", () => {
  assert.equal(ok({ since: "2m" }), true);
  assert.equal(ok({ since: "30s" }), false);
  assert.equal(ok({ until: "30s" }), true);
  assert.equal(ok({ until: "2m" }), false);
  assert.throws(() => parseFilters({ since: "1m", until: "5m" }, now), /--since 1m is after --until 5m/);
});
