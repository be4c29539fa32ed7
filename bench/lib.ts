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

export { percentile } from "../src/util/stats.ts";

export function fmt(ms: number): string {
  return ms.toFixed(1);
}
