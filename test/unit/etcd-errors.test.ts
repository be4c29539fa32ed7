// An etcd outage in gauze's words: the client's own errors (grpc's UNAVAILABLE, then the circuit
// breaker's "Execution prevented because the circuit breaker is open") used to be the whole
// message; now it says which etcd is unreachable, why, and what the agent does meanwhile.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { EtcdRegistry } from "../../src/store/etcd-registry.ts";
import { describeEtcdFailure, reachCause } from "../../src/store/etcd-errors.ts";

/** A local port nothing listens on (taken, then freed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test("etcd down: every failure, the circuit breaker's too, says what is unreachable and what goes on meanwhile", async () => {
  const ep = `http://127.0.0.1:${await closedPort()}`;
  const r = new EtcdRegistry({ endpoints: [ep], prefix: "/t", callTimeoutMs: 500 });
  const raw: string[] = [], ours: string[] = [];
  try {
    // The breaker opens after a few failed calls: go past it.
    for (let i = 0; i < 8; i++) {
      await r.client.get("/t/config").string().catch((e: Error) => raw.push(e.message));
      await r.listLeases().catch((e: Error) => ours.push(e.message));
    }
  } finally {
    r.close();
  }
  assert.ok(raw.some((m) => /circuit breaker is open/.test(m)), `the client's own words (what gauze used to print): ${raw.join(" | ")}`);
  assert.equal(ours.length, 8);
  for (const m of ours) {
    assert.doesNotMatch(m, /circuit breaker|UNAVAILABLE|No connection established/, m);
    assert.match(m, new RegExp(`^etcd ${ep.replace(/[.:/]/g, "\\$&")} unreachable \\((connection refused: nothing listens there|no answer to the last attempts: the client waits before trying again|no connection|no answer before the deadline)\\) while listing leases; meanwhile the dataplane stays as last programmed`), m);
  }
});

test("causes: the OS's words, deadlines; an answer from etcd (permission) keeps its text", () => {
  assert.equal(reachCause(new Error("14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 172.18.0.1:2379")), "connection refused: nothing listens there");
  const br = Object.assign(new Error("Execution prevented because the circuit breaker is open"), { isBrokenCircuitError: true });
  assert.match(reachCause(br)!, /no answer to the last attempts/);
  assert.equal(reachCause(new Error("4 DEADLINE_EXCEEDED: Deadline exceeded")), "no answer before the deadline");
  const denied = describeEtcdFailure(new Error("etcdserver: permission denied"), "reading the network config", ["https://10.0.0.1:2379"]);
  assert.equal(denied.unreachable, false);
  assert.equal(denied.message, "etcd https://10.0.0.1:2379: reading the network config: etcdserver: permission denied");
  // grpc calls a refused certificate UNAVAILABLE: etcd was reached, and the certificate is the answer.
  const tls = describeEtcdFailure(new Error("14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain"), "reading the network config", ["https://10.0.0.1:2379"]);
  assert.equal(tls.unreachable, false);
  assert.match(tls.message, /reading the network config: .*self-signed certificate/);
  assert.match(tls.fix, /--etcd-cafile/);
});
