// The chaos soak, short: bench/soak.ts for 45 s on a 3-node lab with etcd (every kind of fault
// at least once: pod churn, agent and plugin SIGKILLs, etcd outages, hand-made route and FDB
// drift, hostile and garbled lease records). Nothing leaks, nothing is handed out twice, every
// node's routes are what the valid leases say, and the pods' pings lose nothing to a fault that
// leaves the dataplane alone (a hand-deleted route or FDB entry may cost a ping or two before
// it is put back).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { GAUZE, ROOT, sh } from "./helpers.ts";

after(() => { sh([GAUZE, "lab", "down", "--name", "gzsoak"]); });

interface Report {
  seed: number;
  faults: number;
  operations: Record<string, number>;
  lossByFault: Record<string, { faults: number; sent: number; lost: number; worst: number }>;
  leaks: number;
  duplicates: number;
  findings: { check: string; problem: string }[];
  faultLog: { kind: string; detail: string; lost: number }[];
  end: { pods: number; reservations: number; veths: number; leases: number };
}

test("chaos soak: no leak, no duplicate, routes exactly the valid leases, no loss from faults that spare the dataplane", { timeout: 240_000 }, () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "bench", "soak.ts"), "--duration", "45s", "--json"], { cwd: ROOT, encoding: "utf8" });
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    assert.fail(`soak printed no report (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  }
  const where = `seed ${report.seed}; rerun: node --import tsx bench/soak.ts --duration 45s --seed ${report.seed} --keep`;
  assert.deepEqual(report.findings, [], where);
  assert.equal(r.status, 0, where);
  assert.equal(report.leaks, 0);
  assert.equal(report.duplicates, 0);
  for (const kind of ["pod-churn", "agent-kill", "plugin-kill", "etcd-outage", "route-drift", "fdb-drift", "hostile-lease", "lease-garbled"]) {
    assert.ok((report.lossByFault[kind]?.faults ?? 0) >= 1, `${kind} was injected (${where})`);
  }
  assert.ok(report.operations.podAdds! >= 2 && report.operations.pluginKills! >= 1 && report.operations.agentKills! >= 1);
  assert.equal(report.end.reservations, report.end.pods, "one reservation per running pod");
  assert.equal(report.end.veths, report.end.pods, "one host veth per running pod");
  assert.equal(report.end.leases, 3);
  for (const [kind, l] of Object.entries(report.lossByFault)) {
    assert.ok(l.sent > 0, `pings were measured during ${kind}`);
    const allowed = kind.endsWith("-drift") ? 2 * l.faults : 0;
    assert.ok(l.lost <= allowed, `${kind}: ${l.lost} pings lost over ${l.faults} faults (${where}): ${JSON.stringify(report.faultLog.filter((f) => f.kind === kind))}`);
  }
  for (const f of report.faultLog.filter((x) => x.kind === "lease-garbled")) assert.match(f.detail, /taken back/);
});
