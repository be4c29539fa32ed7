// Processes the lab starts and stops: agents and pod servers, detached from the CLI that started
// them, logging to files in the lab's tree, and killed only by the PID the lab recorded (after
// checking the PID still runs a gauze executable, so a recycled PID is never hit).
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { gauzeExecutable, startDetached } from "../kernel/spawn.ts";

/** Starts argv detached, inside the namespace at `netnsPath` (undefined: this one), logging to `logFile`. */
export function spawnInNetns(netnsPath: string | undefined, argv: string[], logFile: string): number {
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, "a");
  try {
    const pid = startDetached(argv, fd, netnsPath ? { netns: netnsPath } : {});
    if (!pid) throw new Error(`could not start ${argv[0]}`);
    return pid;
  } finally {
    closeSync(fd);
  }
}

/** Whether `pid` still runs what we started: a gauze executable, or a command line holding `marker`. */
export function isOurProcess(pid: number | undefined, marker?: string): boolean {
  if (!pid) return false;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (marker) return cmd.includes(marker);
    const exe = gauzeExecutable();
    return cmd.includes(exe) || cmd.split("\0")[0]!.endsWith("gauze");
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs` if it still runs; true if it was running. */
export async function stopProcess(pid: number | undefined, graceMs = 1000, signal: NodeJS.Signals = "SIGTERM", marker?: string): Promise<boolean> {
  if (!isOurProcess(pid, marker)) return false;
  try {
    process.kill(pid!, signal);
  } catch {
    return false;
  }
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    if (!isOurProcess(pid, marker)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    process.kill(pid!, "SIGKILL");
  } catch {
    // gone meanwhile
  }
  return true;
}
