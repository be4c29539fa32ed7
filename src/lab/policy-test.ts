// `gauze lab policy-test`: the upstream NetworkPolicy suite's model run end to end in a lab. The
// model (namespaces x, y, z labelled ns=<name>; pods a, b, c in each labelled pod=<name>, agnhost
// serving 80 and 81 on TCP, UDP and SCTP, spread over the nodes) is made once; each case starts
// from it (no policies, the model's labels), its steps go to the lab's API as kubectl would send
// them, and before each expected matrix the runner waits until every node's agent has programmed
// the generation of the last change, then probes all 81 pairs from inside the pods (one process
// per source pod, its 9 probes at once). Expected and observed matrices are printed with their
// difference. The same cases are the evaluator's unit tests (src/policy/conformance.ts).
import { gauzeExecutable, runAsync } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import { nodePaths } from "../node/paths.ts";
import { CONFORMANCE_CASES, MODEL_NAMESPACES, MODEL_POD_NAMES, MODEL_PODS, MODEL_PORTS, type ConformanceCase, type Json, type ModelContext } from "../policy/conformance.ts";
import { buildMatrix, diffMatrices, renderMatrix, type Matrix, type MatrixDiff } from "../policy/truth-table.ts";
import { PROTOCOLS, type Protocol } from "../policy/types.ts";
import { formatPrefix, parseCIDR } from "../net/cidr.ts";
import { podRun, waitServing } from "./pods.ts";
import { agentStatus } from "./agents.ts";
import { applyObjects, deleteObjects, labelObject } from "./kube/apply.ts";
import { kubeCall, objectPath, rt } from "./kube/client.ts";
import { hasApi } from "./kube/mirror.ts";
import { type LabPod, type LabState, type Progress, loadLab, podByRef } from "./state.ts";

export interface PolicyCheck {
  port: number;
  protocol: Protocol;
  expected: string;
  observed: string;
  diff: MatrixDiff;
  /** From the last change to every node's rules in force. */
  programmedMs: number;
  probeMs: number;
}

export interface PolicyCaseResult { id: string; upstream: string; ok: boolean; checks: PolicyCheck[]; error?: string }

export interface PolicyTestOptions {
  cases?: string[];
  family?: 4 | 6;
  timeoutMs?: number;
  progress: Progress;
}

const MODEL_PORT_LIST = MODEL_PORTS.flatMap((port) => PROTOCOLS.map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol })));

/** The cases asked for by id (all of them when none are), or an error listing the ids. */
export function pickCases(ids?: string[]): ConformanceCase[] {
  if (!ids?.length) return [...CONFORMANCE_CASES];
  const unknown = ids.filter((id) => !CONFORMANCE_CASES.some((c) => c.id === id));
  if (unknown.length) throw new Error(`--case ${unknown.join(", ")}: no such case; the cases are ${CONFORMANCE_CASES.map((c) => c.id).join(", ")}`);
  return CONFORMANCE_CASES.filter((c) => ids.includes(c.id));
}

/** The model's namespaces and pods, made where missing; returns the pods by "ns/name". */
async function ensureModel(lab: string, progress: Progress): Promise<Map<string, LabPod>> {
  let s = loadLab(lab);
  if (!hasApi(s)) throw new Error(`lab ${lab} has no Kubernetes API (made by an older gauze): gauze lab down --name ${lab} && gauze lab up --name ${lab}`);
  if (!s.cniInstalled) throw new Error(`lab ${lab} has no CNI installed: gauze lab install --name ${lab}`);
  const missing = MODEL_PODS.filter((ref) => !podByRef(s, ref));
  if (missing.length) progress(`model: making ${missing.length} agnhost pod(s) in namespaces ${MODEL_NAMESPACES.join(", ")} over ${s.nodes.length} node(s)`);
  for (const ref of missing) {
    const i = MODEL_PODS.indexOf(ref);
    const [namespace, name] = ref.split("/") as [string, string];
    const node = s.nodes[i % s.nodes.length]!.name;
    const p = await podRun(lab, name, node, "agnhost", { namespace, labels: { pod: name }, ports: MODEL_PORT_LIST });
    if (p.phase !== "Running") throw new Error(`model pod ${ref} is ${p.phase}${p.reason ? `: ${p.reason}` : ""}`);
    await waitServing(p);
  }
  s = loadLab(lab);
  const pods = new Map(MODEL_PODS.map((ref) => [ref, podByRef(s, ref)!] as const));
  return pods;
}

/** The model's starting point: no policies in its namespaces, the model's labels only. Returns the last resourceVersion written. */
async function resetModel(lab: string): Promise<number> {
  let rv = 0;
  const see = (v?: string) => { const n = Number(v); if (n > rv) rv = n; };
  for (const ns of MODEL_NAMESPACES) {
    const l = await kubeCall(lab, "GET", objectPath(rt("networkpolicies"), ns)) as { items: { metadata: { name: string } }[] };
    for (const p of l.items) {
      const r = await kubeCall(lab, "DELETE", objectPath(rt("networkpolicies"), ns, p.metadata.name)) as { metadata?: { resourceVersion?: string } };
      see(r.metadata?.resourceVersion);
    }
    see((await relabel(lab, "ns", ns, { ns, "kubernetes.io/metadata.name": ns })).resourceVersion);
    for (const name of MODEL_POD_NAMES) see((await relabel(lab, "pod", `${ns}/${name}`, { pod: name })).resourceVersion);
  }
  return rv;
}

/** Sets an object's labels to exactly `want` (only when they differ). */
async function relabel(lab: string, kind: "pod" | "ns", ref: string, want: Record<string, string>): Promise<{ resourceVersion?: string }> {
  const i = ref.indexOf("/");
  const live = await kubeCall(lab, "GET", kind === "ns" ? objectPath(rt("namespaces"), undefined, ref) : objectPath(rt("pods"), ref.slice(0, i), ref.slice(i + 1))) as { metadata: { labels?: Record<string, string> } };
  const have = live.metadata.labels ?? {};
  const changes: Record<string, string | null> = {};
  for (const k of Object.keys(have)) if (!(k in want)) changes[k] = null;
  for (const [k, v] of Object.entries(want)) if (have[k] !== v) changes[k] = v;
  if (!Object.keys(changes).length) return {};
  return labelObject(lab, kind, ref, changes);
}

/** What the case's policy builders need to know of the model: each pod's address in this lab. */
function context(pods: Map<string, LabPod>, family: 4 | 6): ModelContext {
  const ip = (ref: string) => {
    const p = pods.get(ref);
    const a = family === 6 ? p?.ip6 : p?.ip;
    if (!a) throw new Error(`model pod ${ref} has no IPv${family} address${family === 6 ? " (make the lab with --ipv6)" : ""}`);
    return a;
  };
  const bits = family === 4 ? 32 : 128;
  return { ip, hostCidr: (ref) => `${ip(ref)}/${bits}`, largeCidr: (ref) => formatPrefix(parseCIDR(`${ip(ref)}/4`)!.prefix) };
}

/** Waits until every node's agent has its rules computed from at least `rv`; the time it took. */
async function waitProgrammed(s: LabState, rv: number, since: number, timeoutMs = 15_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const behind: string[] = [];
    await Promise.all(s.nodes.map(async (n) => {
      const g = await policyGeneration(s, n.name);
      if (g === undefined || g < rv) behind.push(`${n.name} at ${g ?? "?"}`);
    }));
    if (!behind.length) return performance.now() - since;
    if (Date.now() > until) throw new Error(`NetworkPolicy not programmed on every node within ${timeoutMs / 1000} s (waiting for generation ${rv}: ${behind.join(", ")}); see gauze doctor --name ${s.name}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The generation a node's agent has in force, from its API (undefined: no answer, or no enforcement). */
export async function policyGeneration(s: LabState, node: string): Promise<number | undefined> {
  const n = s.nodes.find((x) => x.name === node);
  if (!n) return undefined;
  try {
    const r = await fetch("http://agent/v1/policy", { unix: nodePaths(n.root).apiSocket, signal: AbortSignal.timeout(2000) } as RequestInit);
    if (!r.ok) return undefined;
    const j = await r.json() as { generation?: unknown; error?: unknown };
    return typeof j.generation === "number" && !j.error ? j.generation : undefined;
  } catch {
    return agentStatus(n)?.policy?.generation;
  }
}

/** The 9x9 matrix for one port and protocol, probed from inside every model pod. */
async function probeAll(pods: Map<string, LabPod>, family: 4 | 6, port: number, protocol: Protocol, timeoutMs: number): Promise<Matrix> {
  const refs = [...MODEL_PODS];
  const targets = refs.map((r) => (family === 6 ? pods.get(r)!.ip6! : pods.get(r)!.ip!));
  const rows = await Promise.all(refs.map(async (from) => {
    const argv = [gauzeExecutable(), "lab", "probe-many", "--to", targets.join(","), "--port", String(port), "--protocol", protocol.toLowerCase(), "--timeout", String(timeoutMs)];
    const run = () => runAsync(argv, { netns: netnsPath(pods.get(from)!.netns), timeoutMs: timeoutMs + 10_000 });
    let r = await run();
    // Killed at its deadline (124): the prober itself never answered, which says nothing of the
    // policy (each probe has its own timeout). On a loaded machine that happened about once in
    // a few hundred matrices; asked once more, a second silence is an error.
    if (r.status === 124) r = await run();
    if (r.status !== 0) throw new Error(`probing from ${from}: ${r.stderr.trim() || `exit ${r.status}`}`);
    const results = JSON.parse(r.stdout) as { result: string }[];
    return results.map((x) => x.result === "connected");
  }));
  return { pods: refs, cells: rows };
}

/** Runs each case on the lab; `onCase` hears each result as it comes. */
export async function policyTest(lab: string, o: PolicyTestOptions, onCase: (r: PolicyCaseResult) => void = () => undefined): Promise<PolicyCaseResult[]> {
  const family = o.family ?? 4;
  const cases = pickCases(o.cases);
  const pods = await ensureModel(lab, o.progress);
  const ctx = context(pods, family);
  const s = loadLab(lab);
  const out: PolicyCaseResult[] = [];
  for (const c of cases) {
    const checks: PolicyCheck[] = [];
    const r: PolicyCaseResult = { id: c.id, upstream: c.upstream, ok: false, checks };
    try {
      let changedAt = performance.now();
      let rv = await resetModel(lab);
      const see = (v?: string) => { const n = Number(v); if (n > rv) rv = n; changedAt = performance.now(); };
      for (const step of c.steps) {
        if ("expect" in step) {
          const programmedMs = await waitProgrammed(s, rv, changedAt);
          const t0 = performance.now();
          const observed = await probeAll(pods, family, step.expect.port, step.expect.protocol, o.timeoutMs ?? 1000);
          const expected = buildMatrix(step.expect.matrix, MODEL_PODS);
          checks.push({ port: step.expect.port, protocol: step.expect.protocol, expected: renderMatrix(expected), observed: renderMatrix(observed), diff: diffMatrices(expected, observed), programmedMs: +programmedMs.toFixed(1), probeMs: +(performance.now() - t0).toFixed(0) });
          continue;
        }
        if (step.do === "create" || step.do === "update") {
          const doc = structuredClone(typeof step.policy === "function" ? step.policy(ctx) : step.policy) as Json;
          doc.metadata = { ...(doc.metadata as Json), namespace: step.namespace };
          const name = String((doc.metadata as Json).name);
          const [a] = await applyObjects(lab, [{ rt: rt("networkpolicies"), namespace: step.namespace, name, body: doc }]);
          see(a?.resourceVersion);
        } else if (step.do === "delete") {
          for (const ns of step.namespace ? [step.namespace] : MODEL_NAMESPACES) {
            const l = await kubeCall(lab, "GET", objectPath(rt("networkpolicies"), ns)) as { items: { metadata: { name: string } }[] };
            for (const p of l.items.filter((x) => step.name === undefined || x.metadata.name === step.name)) {
              const d = await kubeCall(lab, "DELETE", objectPath(rt("networkpolicies"), ns, p.metadata.name)) as { metadata?: { resourceVersion?: string } };
              see(d.metadata?.resourceVersion);
            }
          }
        } else if (step.do === "label-pod") {
          see((await labelObject(lab, "pod", step.pod, step.labels)).resourceVersion);
        } else if (step.do === "label-ns") {
          see((await labelObject(lab, "ns", step.namespace, step.labels)).resourceVersion);
        }
      }
      r.ok = checks.every((k) => k.diff.ok);
    } catch (e) {
      r.error = (e as Error).message;
    }
    out.push(r);
    onCase(r);
  }
  return out;
}

/** A case's result as text: the matrices and their difference where they differ. */
export function formatCase(r: PolicyCaseResult, verbose = false): string {
  const head = `${r.ok ? "PASS" : "FAIL"} ${r.id}: ${r.upstream}`;
  if (r.error) return `${head}\n  error: ${r.error}`;
  const lines = [head];
  for (const k of r.checks) {
    lines.push(`  ${k.port}/${k.protocol}: ${k.diff.ok ? "as expected" : `${k.diff.cells.length} cell(s) differ`} (rules in force on every node ${k.programmedMs} ms after the change; 81 probes in ${k.probeMs} ms)`);
    if (!k.diff.ok || verbose) {
      const A = k.expected.split("\n"), B = k.observed.split("\n"), C = k.diff.text.split("\n");
      const w = Math.max(...A.map((l) => l.length), "expected".length) + 3;
      lines.push(`    ${"expected".padEnd(w)}${"observed".padEnd(w)}difference (X)`, ...A.map((l, i) => `    ${l.padEnd(w)}${(B[i] ?? "").padEnd(w)}${C[i] ?? ""}`));
      for (const d of k.diff.cells) lines.push(`    ${d.from} -> ${d.to}: expected ${d.expected ? "allowed" : "denied"}, observed ${d.actual ? "connected" : "no connection"}`);
    }
  }
  return lines.join("\n");
}
