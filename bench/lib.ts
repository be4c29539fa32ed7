// Shared helpers for benchmarks: timing, percentiles, namespaces that clean up after themselves.
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";

export function run(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  const t = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { input: opts.input, env: opts.env, encoding: "utf8" });
  const ms = performance.now() - t;
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", ms };
}

export function must(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = run(argv, opts);
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stdout}${r.stderr}`);
  return r;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

export function fmt(ms: number): string {
  return ms.toFixed(1);
}
