// The upstream netpol suite's 48 cases, run through the evaluator on the model world (9 pods on
// two nodes) in IPv4, IPv6 and dual stack; plus checks that the case list is the upstream one and
// that the harness fails when the evaluator is wrong.
import { describe, expect, test } from "bun:test";
import { CONFORMANCE_CASES, MODEL_PODS } from "../../src/policy/conformance.ts";
import { evaluatorProbe, modelWorld, runCase, type Probe } from "../../src/policy/conformance-run.ts";
import { allIngress, buildMatrix, diffMatrices, matrix, peer, renderMatrix } from "../../src/policy/truth-table.ts";
import { compileWorld } from "../../src/policy/world-index.ts";

describe("the case list", () => {
  test("48 cases: 42 TCP, 3 UDP, 3 SCTP, with unique ids and upstream titles", () => {
    const by = (s: string) => CONFORMANCE_CASES.filter((c) => c.suite === s).length;
    expect([CONFORMANCE_CASES.length, by("TCP"), by("UDP"), by("SCTP")]).toEqual([48, 42, 3, 3]);
    expect(new Set(CONFORMANCE_CASES.map((c) => c.id)).size).toBe(48);
    expect(new Set(CONFORMANCE_CASES.filter((c) => c.suite === "TCP").map((c) => c.upstream)).size).toBe(42);
    for (const c of CONFORMANCE_CASES) {
      expect(c.upstream).toMatch(/^should /);
      expect(c.steps.some((s) => "expect" in s)).toBe(true);
    }
  });
});

for (const family of [4, 6, "dual"] as const) {
  describe(`every case, ${family === "dual" ? "dual stack" : `IPv${family}`}`, () => {
    for (const c of CONFORMANCE_CASES) {
      test(`${c.id}: ${c.upstream}`, () => {
        const r = runCase(c, { family });
        expect(r.problems).toEqual([]);
        for (const k of r.checks) {
          if (!k.diff.ok) throw new Error(`${c.id} step ${k.step} ${k.port}/${k.protocol}\nexpected\n${renderMatrix(k.expected)}\nactual\n${renderMatrix(k.actual)}\ndiff\n${k.diff.text}`);
        }
        expect(r.ok).toBe(true);
      });
    }
  });
}

describe("the harness catches a wrong dataplane", () => {
  const id = (s: string) => CONFORMANCE_CASES.find((c) => c.id === s)!;
  const broken = (wrong: (from: string, to: string, port: number, protocol: string, right: boolean) => boolean) =>
    (w: Parameters<typeof compileWorld>[0], f: 4 | 6): Probe => {
      const good = evaluatorProbe(compileWorld(w), f);
      return (from, to, port, protocol) => wrong(from, to, port, protocol, good(from, to, port, protocol));
    };

  test("a probe that reads SCTP rules as TCP fails sctp-not-tcp", () => {
    // The wrong answer a plugin gives when it ignores the protocol of the SCTP rule.
    const r = runCase(id("sctp-not-tcp"), { probeFor: broken((from, to, port, protocol, right) => right || (to === "x/a" && port === 81)) });
    expect(r.ok).toBe(false);
    expect(r.checks[0]!.diff.cells.length).toBe(8);
  });

  test("a probe that ignores egress fails the client-side deny case", () => {
    const r = runCase(id("egress-client-side-deny"), { probeFor: broken((from, to, _p, _q, right) => right || (from === "x/a" && to === "y/b")) });
    expect(r.checks[0]!.diff.cells).toEqual([{ from: "x/a", to: "y/b", expected: false, actual: true }]);
  });

  test("the loopback cell is ignored as upstream ignores it, unless asked", () => {
    const exp = buildMatrix(matrix(true, peer("", "x", false)), MODEL_PODS);
    const act = buildMatrix(matrix(true, peer("", "x", false), peer("x/a", "x/a", true)), MODEL_PODS);
    expect(diffMatrices(exp, act).ok).toBe(true);
    expect(diffMatrices(exp, act, { ignoreLoopback: false }).cells).toEqual([{ from: "x/a", to: "x/a", expected: false, actual: true }]);
  });
});

describe("truth tables", () => {
  test("built the upstream way and printed the upstream way", () => {
    const m = buildMatrix(matrix(true, allIngress("x/a", false), peer("y", "z/c", false)), MODEL_PODS);
    const lines = renderMatrix(m).split("\n");
    expect(lines[0]).toBe("-   x/a x/b x/c y/a y/b y/c z/a z/b z/c");
    expect(lines[1]).toBe("x/a X   .   .   .   .   .   .   .   .");
    expect(lines[4]).toBe("y/a X   .   .   .   .   .   .   .   X");
    expect(lines.length).toBe(10);
  });

  test("the model world: 9 pods on two nodes, every pod serving 80 and 81 on three protocols", () => {
    const w = modelWorld("dual");
    expect(w.pods.map((p) => `${p.namespace}/${p.name}`)).toEqual([...MODEL_PODS]);
    expect(new Set(w.pods.map((p) => p.node))).toEqual(new Set(["node-1", "node-2"]));
    expect(w.pods[0]!.ports.map((p) => p.name)).toEqual(["serve-80-tcp", "serve-80-udp", "serve-80-sctp", "serve-81-tcp", "serve-81-udp", "serve-81-sctp"]);
    expect(w.pods[0]!.ips).toEqual(["10.244.1.10", "fd00:10:244:1::a"]);
    expect(w.namespaces[1]).toEqual({ name: "y", labels: { ns: "y", "kubernetes.io/metadata.name": "y" } });
  });
});
