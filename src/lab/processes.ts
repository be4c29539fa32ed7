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

/**
 * Whether `pid` has ended (gone, or a zombie not yet reaped). Not the same as "not ours": a child
 * just started runs its parent's command line until it has exec'd, so a marker check made then
 * says "not ours" of a process that is still starting (a loaded CI host once failed a lab up so).
 */
export function processEnded(pid: number | undefined): boolean {
  if (!pid) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state follows the command's name in parentheses, which may itself hold ") ".
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
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

// What only one of the lab's processes has on its command line, each a whole argument (the
// command line is NUL-separated): a PID recycled by another gauze process, another lab's agent or
// API server, is never taken for ours (a lab down once stopped a newer lab's API server that way).
const arg = (...words: string[]) => `\0${words.join("\0")}\0`;

/** A node's agent: its --root is the node's own tree. */
export const agentRunning = (n: { agentPid?: number; root: string }): boolean => isOurProcess(n.agentPid, arg("--root", n.root));
export const stopAgentProcess = (n: { agentPid?: number; root: string }, graceMs = 1000, signal: NodeJS.Signals = "SIGTERM"): Promise<boolean> =>
  stopProcess(n.agentPid, graceMs, signal, arg("--root", n.root));

/** The lab's API server: `gauze lab apiserver --name <lab>`. */
export const apiServerRunning = (lab: string, pid: number | undefined): boolean => isOurProcess(pid, arg("apiserver", "--name", lab));
export const stopApiServer = (lab: string, pid: number | undefined): Promise<boolean> => stopProcess(pid, 1000, "SIGTERM", arg("apiserver", "--name", lab));

/** A pod's server (serve-http, serve-ports): the pod it serves, and the pod's namespace it runs in. */
export const stopPodServer = (pid: number | undefined, pod: string, graceMs: number): Promise<boolean> => stopProcess(pid, graceMs, "SIGTERM", arg("--pod", pod));
