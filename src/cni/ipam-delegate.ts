// Runs another IPAM plugin (ipam.type naming something gauze does not build in) the way
// libcni would: found in CNI_PATH, same environment, the whole network config on stdin.
import { isExecutable } from "../kernel/files.ts";
import { joinPath } from "../util/builtin.ts";
import { runSync } from "../kernel/spawn.ts";
import { CniCode, CniError } from "./errors.ts";
import { type CniResult, parseResult } from "./result.ts";

export function findPlugin(type: string, path: string[]): string {
  for (const dir of path) {
    const p = joinPath(dir, type);
    if (isExecutable(p)) return p;
  }
  throw new CniError(CniCode.InvalidConfig, `failed to find plugin "${type}" in path [${path.join(" ")}]`,
    `install the "${type}" plugin into one of those directories, or remove ipam.type to use gauze's built-in IPAM`);
}

/** Executes the delegated plugin for `verb`; returns its parsed result (ADD) or undefined. */
export function execDelegate(type: string, verb: string, configText: string, path: string[]): CniResult | undefined {
  const bin = findPlugin(type, path);
  const env: Record<string, string | undefined> = { ...process.env, CNI_COMMAND: verb };
  const r = runSync([bin], { input: configText, env });
  if (r.status !== 0) {
    let code: number = CniCode.IoFailure;
    let msg = r.stderr.trim() || `exit status ${r.status}`;
    try {
      const e = JSON.parse(r.stdout) as { code?: number; msg?: string; details?: string };
      if (typeof e.code === "number") code = e.code;
      if (e.msg) msg = e.msg + (e.details ? ` (${e.details})` : "");
    } catch {
      // not error JSON: keep stderr
    }
    throw new CniError(code as CniCode, `ipam plugin ${type} ${verb} failed: ${msg}`, `see the ${type} plugin's documentation`);
  }
  if (verb !== "ADD") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    throw new CniError(CniCode.DecodeFailure, `ipam plugin ${type} printed something that is not JSON: ${r.stdout.slice(0, 200)}`);
  }
  return parseResult(parsed, `ipam plugin ${type} result`);
}
