// The conformance model as a world, and the cases run through a probe. The world: the 9 model
// pods spread over two nodes (alternating x/a node-1, x/b node-2, ...), with made-up addresses
// from each node's pod range, IPv4, IPv6 or both. Steps apply to a world and return a new one
// (pure), so the same runner drives `evaluate` here and, with another probe, a real dataplane.
import { parseCIDR, formatPrefix } from "../net/cidr.ts";
import { evaluate } from "./evaluate.ts";
import { parsePolicy } from "./parse.ts";
import { MODEL_NAMESPACES, MODEL_POD_NAMES, MODEL_PODS, MODEL_PORTS, type ConformanceCase, type Json, type ModelContext, type Step } from "./conformance.ts";
import { buildMatrix, diffMatrices, type Matrix, type MatrixDiff } from "./truth-table.ts";
import { PROTOCOLS, type PodInfo, type PolicyWorld, type Protocol } from "./types.ts";
import { compileWorld, type PolicyIndex } from "./world-index.ts";

export type ModelFamily = 4 | 6 | "dual";

export const MODEL_NODES = [
  { name: "node-1", ips: ["172.18.0.2", "fc00:f853:ccd:e793::2"], pods4: "10.244.1", pods6: "fd00:10:244:1::" },
  { name: "node-2", ips: ["172.18.0.3", "fc00:f853:ccd:e793::3"], pods4: "10.244.2", pods6: "fd00:10:244:2::" },
] as const;

export function modelWorld(family: ModelFamily = 4): PolicyWorld {
  const pods: PodInfo[] = [];
  MODEL_PODS.forEach((key, i) => {
    const [namespace, name] = key.split("/") as [string, string];
    const node = MODEL_NODES[i % 2]!;
    const host = 10 + i;
    const v4 = `${node.pods4}.${host}`;
    const v6 = `${node.pods6}${host.toString(16)}`;
    pods.push({
      namespace, name,
      labels: { pod: name },
      ips: family === 4 ? [v4] : family === 6 ? [v6] : [v4, v6],
      node: node.name,
      nodeIps: family === 4 ? [node.ips[0]] : family === 6 ? [node.ips[1]] : [...node.ips],
      ports: MODEL_PORTS.flatMap((port) => PROTOCOLS.map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, port, protocol }))),
    });
  });
  return {
    namespaces: MODEL_NAMESPACES.map((ns) => ({ name: ns, labels: { ns, "kubernetes.io/metadata.name": ns } })),
    pods,
    policies: [],
  };
}

export function modelContext(world: PolicyWorld, family: 4 | 6): ModelContext {
  const ip = (pod: string): string => {
    const p = world.pods.find((x) => `${x.namespace}/${x.name}` === pod);
    const addr = p?.ips.find((a) => (family === 6) === a.includes(":"));
    if (!addr) throw new Error(`model pod ${pod} has no IPv${family} address`);
    return addr;
  };
  const bits = family === 4 ? 32 : 128;
  return {
    ip,
    hostCidr: (pod) => `${ip(pod)}/${bits}`,
    largeCidr: (pod) => formatPrefix(parseCIDR(`${ip(pod)}/4`)!.prefix),
  };
}

/** One step on a world; throws when the step cannot apply (as the API would refuse it). */
export function applyStep(world: PolicyWorld, step: Exclude<Step, { expect: unknown }>, ctx: ModelContext): { world: PolicyWorld; problems: string[] } {
  switch (step.do) {
    case "create":
    case "update": {
      const doc = structuredClone(typeof step.policy === "function" ? step.policy(ctx) : step.policy) as Json;
      const meta = (doc.metadata ?? {}) as Json;
      doc.metadata = { ...meta, namespace: step.namespace };
      const r = parsePolicy(doc);
      if (!r.policy) throw new Error(`policy not placed: ${r.problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
      const key = r.policy.key;
      const exists = world.policies.some((p) => p.key === key);
      if (step.do === "create" && exists) throw new Error(`policy ${key} already exists`);
      if (step.do === "update" && !exists) throw new Error(`policy ${key} does not exist`);
      const policies = step.do === "create" ? [...world.policies, r.policy] : world.policies.map((p) => (p.key === key ? r.policy! : p));
      return { world: { ...world, policies }, problems: r.problems.map((p) => `${key} ${p.path}: ${p.message}`) };
    }
    case "delete": {
      const keep = world.policies.filter((p) => (step.namespace !== undefined && p.namespace !== step.namespace) || (step.name !== undefined && p.name !== step.name));
      return { world: { ...world, policies: keep }, problems: [] };
    }
    case "label-pod": {
      const found = world.pods.some((p) => `${p.namespace}/${p.name}` === step.pod);
      if (!found) throw new Error(`no pod ${step.pod}`);
      const pods = world.pods.map((p) => (`${p.namespace}/${p.name}` === step.pod ? { ...p, labels: { ...p.labels, ...step.labels } } : p));
      return { world: { ...world, pods }, problems: [] };
    }
    case "label-ns": {
      if (!world.namespaces.some((n) => n.name === step.namespace)) throw new Error(`no namespace ${step.namespace}`);
      const namespaces = world.namespaces.map((n) => (n.name === step.namespace ? { ...n, labels: { ...n.labels, ...step.labels } } : n));
      return { world: { ...world, namespaces }, problems: [] };
    }
  }
}

/** Decides one probe: may `from` connect to `to` ("namespace/name") on port/protocol? */
export type Probe = (from: string, to: string, port: number, protocol: Protocol) => boolean;

export function evaluatorProbe(ix: PolicyIndex, family: 4 | 6): Probe {
  return (from, to, port, protocol) => {
    const [fns, fname] = from.split("/") as [string, string];
    const [tns, tname] = to.split("/") as [string, string];
    return evaluate(ix, { from: { namespace: fns, name: fname }, to: { namespace: tns, name: tname }, port, protocol, family }).allowed;
  };
}

export function probeMatrix(probe: Probe, port: number, protocol: Protocol, pods: readonly string[] = MODEL_PODS): Matrix {
  return { pods: [...pods], cells: pods.map((f) => pods.map((t) => probe(f, t, port, protocol))) };
}

export interface CheckResult {
  /** Index of the expect step in the case. */
  step: number;
  port: number;
  protocol: Protocol;
  expected: Matrix;
  actual: Matrix;
  diff: MatrixDiff;
}

export interface CaseRun {
  id: string;
  ok: boolean;
  checks: CheckResult[];
  /** Parse problems of the case's policies (none expected: upstream's objects are valid). */
  problems: string[];
}

/** Runs a case on the model world; `probeFor` turns each world into a probe (the evaluator by default). */
export function runCase(c: ConformanceCase, opts: { family?: ModelFamily; probeFor?: (world: PolicyWorld, family: 4 | 6) => Probe } = {}): CaseRun {
  const family = opts.family ?? 4;
  const probeFamily = family === 6 ? 6 : 4;
  const probeFor = opts.probeFor ?? ((w, f) => evaluatorProbe(compileWorld(w), f));
  let world = modelWorld(family);
  const ctx = modelContext(world, probeFamily);
  const checks: CheckResult[] = [];
  const problems: string[] = [];
  c.steps.forEach((step, i) => {
    if ("do" in step) {
      const r = applyStep(world, step, ctx);
      world = r.world;
      problems.push(...r.problems);
      return;
    }
    const { port, protocol, matrix } = step.expect;
    const expected = buildMatrix(matrix, MODEL_PODS);
    const actual = probeMatrix(probeFor(world, probeFamily), port, protocol);
    checks.push({ step: i, port, protocol, expected, actual, diff: diffMatrices(expected, actual) });
  });
  return { id: c.id, ok: problems.length === 0 && checks.every((k) => k.diff.ok), checks, problems };
}
