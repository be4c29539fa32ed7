// iptables, the one part of the kernel gauze still programs through a tool: iptables-save to
// read a table, iptables-restore --noflush to apply rules atomically (one process each), and a
// plain iptables call for the odd policy change. Argument arrays only; rules go on stdin.
import { runSync } from "./spawn.ts";

export type Family = 4 | 6;

export interface IptablesOptions {
  family?: Family;
  /** Path of the network namespace whose tables to use. */
  netns?: string;
}

export class IptablesError extends Error {
  constructor(message: string, readonly missing: boolean) {
    super(message);
    this.name = "IptablesError";
  }
}

function tool(base: "iptables" | "iptables-save" | "iptables-restore", family: Family = 4): string {
  return family === 6 ? base.replace("iptables", "ip6tables") : base;
}

function where(o: IptablesOptions): { netns?: string } {
  return o.netns ? { netns: o.netns } : {};
}

/** The rules of one table (all tables when `table` is undefined) as iptables-save prints them. */
export function iptablesSave(table: "nat" | "filter" | undefined, o: IptablesOptions = {}): string {
  const bin = tool("iptables-save", o.family);
  const r = runSync([bin, ...(table ? ["-t", table] : [])], where(o));
  if (r.status !== 0) {
    throw new IptablesError(`${bin}${table ? ` -t ${table}` : ""} failed: ${r.stderr.trim() || `exit ${r.status}`}${r.status === 127 ? " (install iptables)" : ""}`, r.status === 127);
  }
  return r.stdout;
}

/** Applies rules in iptables-restore format without flushing anything else (waits for the xtables lock). */
export function iptablesRestore(rules: string, o: IptablesOptions = {}): void {
  const bin = tool("iptables-restore", o.family);
  const r = runSync([bin, "--noflush", "-w"], { input: rules, ...where(o) });
  if (r.status !== 0) {
    throw new IptablesError(`${bin} failed: ${r.stderr.trim() || `exit ${r.status}`}${r.status === 127 ? " (install iptables)" : ""}`, r.status === 127);
  }
}

/** One iptables command (waits for the xtables lock); returns its output. */
export function iptables(args: readonly string[], o: IptablesOptions = {}): string {
  const bin = tool("iptables", o.family);
  const r = runSync([bin, "-w", ...args], where(o));
  if (r.status !== 0) throw new IptablesError(`${bin} ${args.join(" ")} failed: ${r.stderr.trim() || `exit ${r.status}`}`, r.status === 127);
  return r.stdout;
}
