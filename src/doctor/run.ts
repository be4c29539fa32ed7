// Runs every check, applies the safe repairs with --fix (then checks again), and reports:
// grouped lines for people (coloured on a terminal, the fix under each problem) or JSON.
import { printable } from "../util/text.ts";
import type { Check, CheckResult } from "./check.ts";
import { type DoctorContext, type DoctorOptions, gatherContext } from "./context.ts";
import { kernelChecks } from "./checks/kernel.ts";
import { cniChecks } from "./checks/cni.ts";
import { agentChecks } from "./checks/agent.ts";
import { datapathChecks } from "./checks/datapath.ts";
import { overlayChecks } from "./checks/overlay.ts";
import { filteringChecks } from "./checks/filtering.ts";
import { ipamChecks } from "./checks/ipam.ts";
import { kubeChecks } from "./checks/kube.ts";
import { Rtnl } from "../kernel/netlink/index.ts";

export const ALL_CHECKS: Check[] = [...kernelChecks, ...cniChecks, ...agentChecks, ...datapathChecks, ...overlayChecks, ...filteringChecks, ...ipamChecks];

export interface DoctorReport {
  node?: string;
  ok: boolean;
  checks: CheckResult[];
  fixed: string[];
  ms: number;
}

/** The checks for this run: the node's always, the cluster's with a kubeconfig. */
function checksFor(ctx: DoctorContext): Check[] {
  return ctx.kubeconfig ? [...ALL_CHECKS, ...kubeChecks] : ALL_CHECKS;
}

/** A check still running after this long is announced (the MTU probes take seconds): silence reads as a hang. */
const SLOW_MS = 700;

async function runAll(ctx: DoctorContext, progress?: (line: string) => void): Promise<{ results: CheckResult[]; repairs: Map<string, () => Promise<string> | string> }> {
  const results: CheckResult[] = [];
  const repairs = new Map<string, () => Promise<string> | string>();
  for (const c of checksFor(ctx)) {
    const t = progress ? setTimeout(() => progress(`${c.id}: ${c.title} (still running)...`), SLOW_MS) : undefined;
    try {
      const o = await c.run(ctx);
      results.push({ id: c.id, group: c.group, title: c.title, status: o.status, evidence: o.evidence, ...(o.fix ? { fix: o.fix } : {}) });
      if (o.repair && (o.status === "fail" || o.status === "warn")) repairs.set(c.id, o.repair);
    } catch (e) {
      results.push({ id: c.id, group: c.group, title: c.title, status: "fail", evidence: [`the check itself failed: ${(e as Error).message}`], fix: "report this as a gauze bug" });
    } finally {
      clearTimeout(t);
    }
  }
  return { results, repairs };
}

export async function runDoctor(o: DoctorOptions & { fix: boolean; progress?: (line: string) => void }): Promise<DoctorReport> {
  const t0 = performance.now();
  const nl = Rtnl.open();
  try {
    return await doctorWith(o, nl, t0);
  } finally {
    nl.close();
  }
}

async function doctorWith(o: DoctorOptions & { fix: boolean; progress?: (line: string) => void }, nl: Rtnl, t0: number): Promise<DoctorReport> {
  let ctx = gatherContext(o, nl);
  let { results, repairs } = await runAll(ctx, o.progress);
  const fixed: string[] = [];
  if (o.fix && repairs.size) {
    for (const [id, repair] of repairs) {
      try {
        const what = await repair();
        fixed.push(`${id}: ${what}`);
        const r = results.find((x) => x.id === id);
        if (r) r.fixed = what;
      } catch (e) {
        fixed.push(`${id}: repair failed: ${(e as Error).message}`);
      }
    }
    // Check again: the report says how the node is now.
    ctx = gatherContext(o, nl);
    const again = await runAll(ctx);
    for (const r of again.results) {
      const before = results.find((x) => x.id === r.id);
      if (before?.fixed) r.fixed = before.fixed;
    }
    results = again.results;
    repairs = again.repairs;
  }
  return { ...(o.node ? { node: o.node } : {}), ok: !results.some((r) => r.status === "fail"), checks: results, fixed, ms: Math.round(performance.now() - t0) };
}

const MARK = { ok: "✔", warn: "!", fail: "✖", skip: "-" } as const;
const COLOR = { ok: "\x1b[32m", warn: "\x1b[33m", fail: "\x1b[31m", skip: "\x1b[90m" } as const;

export function formatReport(r: DoctorReport, color: boolean): string {
  const out: string[] = [`gauze doctor${r.node ? ` on ${r.node}` : ""}`];
  let group = "";
  for (const c of r.checks) {
    if (c.group !== group) {
      group = c.group;
      out.push("", `${group}`);
    }
    const mark = color ? `${COLOR[c.status]}${MARK[c.status]}\x1b[0m` : MARK[c.status];
    // Evidence quotes what the node, a log or an API said: its control characters made visible
    // (the colour codes are doctor's own, added around it).
    out.push(`  ${mark} ${c.id.padEnd(26)} ${printable(c.status === "ok" || c.status === "skip" ? c.evidence[0] ?? c.title : c.title)}`);
    if (c.status === "fail" || c.status === "warn") {
      for (const e of c.evidence) out.push(`      ${printable(e)}`);
      if (c.fix) out.push(`      fix: ${printable(c.fix)}`);
    }
    if (c.fixed) out.push(`      fixed: ${printable(c.fixed)}`);
  }
  const counts = (s: keyof typeof MARK) => r.checks.filter((c) => c.status === s).length;
  out.push("", `${counts("fail")} failed, ${counts("warn")} warnings, ${counts("ok")} ok, ${counts("skip")} skipped in ${r.ms} ms${r.fixed.length ? `; fixed: ${r.fixed.length}` : ""}`);
  return out.join("\n") + "\n";
}
