// The one door to iproute2. Every kernel change gauze makes goes through here as argument
// arrays; several changes go as one `ip -batch` (one spawn), optionally inside another
// network namespace given as a path (nsenter --net=<path>, which unlike `ip netns exec`
// does not remount /sys and costs nothing extra: nsenter execs ip).
import { type SpawnResult, runSync, startEarly } from "./spawn.ts";
import { inNetns, isExecutable } from "../util/files.ts";

export type IpCommand = readonly string[];

export interface IpTarget {
  /** Path of a network namespace (e.g. /proc/123/ns/net); absent = the caller's own. */
  netns?: string;
}

export class IpError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    /** 0-based index of the batch line that failed, when ip said so. */
    readonly failedLine: number | undefined,
    readonly command: IpCommand | undefined,
  ) {
    super(message);
    this.name = "IpError";
  }
  /** True when the kernel answered "does not exist" (ENODEV / ENOENT / ESRCH). */
  get isNotFound(): boolean {
    return /does not exist|Cannot find device|No such (device|process|file)|not found/i.test(this.stderr);
  }
  get isExists(): boolean {
    return /File exists/i.test(this.stderr);
  }
}

// ip -batch splits lines on white space: an argument containing it would silently become two
// arguments, so refuse it rather than guess at quoting.
const UNSAFE_WORD = /[\s"'\\#]/;

function refuseWord(word: string): never {
  throw new Error(`ip: argument ${JSON.stringify(word)} cannot be passed through ip -batch`);
}

type Tool = "ip" | "bridge";

// Not `ip -n <name>`: it unshares the mount namespace and remounts /sys, which costs more the
// more mounts the host has (each named netns is one): measured 38 ms per ADD against 16 ms
// with nsenter on a node with 60 pods. nsenter gets the tool's absolute path (no PATH walk).
const toolPaths = new Map<Tool, string>();

function toolPath(tool: Tool): string {
  let p = toolPaths.get(tool);
  if (!p) {
    p = [`/usr/sbin/${tool}`, `/sbin/${tool}`, `/usr/bin/${tool}`, `/bin/${tool}`].find((c) => isExecutable(c)) ?? tool;
    toolPaths.set(tool, p);
  }
  return p;
}

function baseArgv(target: IpTarget, tool: Tool = "ip"): string[] {
  return target.netns ? ["nsenter", `--net=${target.netns}`, toolPath(tool)] : [tool];
}

export interface BatchOptions {
  /**
   * Failures that are expected and fine (e.g. "File exists" when creating what may already be
   * there). With it, ip runs with -force: every line runs, and only failures this predicate does
   * not accept are errors. Show commands that fail print nothing, so outputs are only reliable
   * when nothing failed.
   */
  tolerate?: (command: IpCommand, message: string) => boolean;
  /** ip -d: show commands include linkinfo (kind, bridge port data). */
  details?: boolean;
  /** iproute2's `bridge` (FDB entries) instead of `ip`; same batch format. */
  tool?: Tool;
}

interface LineFailure {
  line: number;
  message: string;
}

/** Splits ip's stderr into per-line failures: each "Command failed -:N" closes the text before it. */
function parseFailures(stderr: string): LineFailure[] {
  const out: LineFailure[] = [];
  let pending: string[] = [];
  for (const l of stderr.split("\n")) {
    const m = /^Command failed -:(\d+)/.exec(l);
    if (m) {
      out.push({ line: Number(m[1]) - 1, message: pending.join("; ") });
      pending = [];
    } else if (l.trim()) {
      pending.push(l.trim());
    }
  }
  return out;
}

/**
 * Runs several ip commands in one process. Each `show`/`list` command prints one JSON array
 * (ip -j); their parsed outputs are returned in order. Throws IpError naming the failed line.
 */
export function ipBatch(commands: readonly IpCommand[], target: IpTarget = {}, opts: BatchOptions = {}): unknown[][] {
  if (commands.length === 0) return [];
  const input = batchInput(commands);
  // Under bun, enter the namespace with setns(2) around the spawn (no nsenter process: ~1 ms).
  if (target.netns) {
    const inside = inNetns(target.netns, () => runSync(batchArgv({}, opts), { input }));
    if (inside) return batchOutcome(commands, target, opts, inside.value);
  }
  return batchOutcome(commands, target, opts, runSync(batchArgv(target, opts), { input }));
}

/** An `ip -batch` started before its commands are known (see spawn.ts:startEarly). */
export interface EarlyBatch {
  /** `tolerate` needs the batch started with `force`. */
  run(commands: readonly IpCommand[], tolerate?: BatchOptions["tolerate"]): Promise<unknown[][]>;
  /** Ends it without commands (ip exits at once). */
  cancel(): void;
}

/**
 * Starts `ip -batch` now, in `target`'s namespace, and feeds it later: on the plugin's path the
 * exec and start-up of ip then overlap config parsing and IPAM. Falls back to ipBatch under node.
 */
export function startBatch(target: IpTarget = {}, spawnOpts: { details?: boolean; force?: boolean } = {}): EarlyBatch {
  const argv = [...baseArgv({}, "ip"), "-j", ...(spawnOpts.details ? ["-d"] : []), ...(spawnOpts.force ? ["-force"] : []), "-batch", "-"];
  const spawn = () => startEarly(argv);
  const pending = target.netns ? inNetns(target.netns, spawn)?.value : spawn();
  if (!pending) {
    return { run: async (commands, tolerate) => ipBatch(commands, target, { ...(spawnOpts.details ? { details: true } : {}), ...(tolerate ? { tolerate } : {}) }), cancel: () => undefined };
  }
  let used = false;
  return {
    async run(commands, tolerate) {
      if (used) throw new Error("startBatch: run() twice");
      used = true;
      if (commands.length === 0) {
        await pending.finish("");
        return [];
      }
      return batchOutcome(commands, target, { ...(tolerate ? { tolerate } : {}) }, await pending.finish(batchInput(commands)));
    },
    cancel() {
      if (!used) {
        used = true;
        void pending.finish("").catch(() => undefined);
      }
    },
  };
}

function batchArgv(target: IpTarget, opts: BatchOptions): string[] {
  return [...baseArgv(target, opts.tool), "-j", ...(opts.details ? ["-d"] : []), ...(opts.tolerate ? ["-force"] : []), "-batch", "-"];
}

function batchInput(commands: readonly IpCommand[]): string {
  // A plain loop, not a call per word: on the plugin's path a function called once per word
  // was the one thing hot enough for the JIT to compile, on a thread of its own, per ADD.
  let text = "";
  for (const c of commands) {
    for (const word of c) {
      if (word.length === 0 || UNSAFE_WORD.test(word)) refuseWord(word);
    }
    text += c.join(" ") + "\n";
  }
  return text;
}

function batchOutcome(commands: readonly IpCommand[], target: IpTarget, opts: BatchOptions, r: SpawnResult): unknown[][] {
  if (r.status !== 0) {
    const failures = parseFailures(r.stderr);
    const fatal = failures.find((f) => !(opts.tolerate && commands[f.line] && opts.tolerate(commands[f.line]!, f.message)));
    if (fatal || failures.length === 0) {
      const cmd = fatal ? commands[fatal.line] : undefined;
      const tool = opts.tool ?? "ip";
      const what = cmd ? `${tool} ${cmd.join(" ")}` : `${tool} -batch`;
      const reason = fatal?.message || r.stderr.trim() || `exit ${r.status}`;
      throw new IpError(`${what}${target.netns ? ` (in ${target.netns})` : ""}: ${reason}`, fatal?.message ?? r.stderr, fatal?.line, cmd);
    }
  }
  return parseJsonLines(r.stdout);
}

/** `bridge -batch` (FDB): the same door, the other iproute2 tool. */
export function bridgeBatch(commands: readonly IpCommand[], target: IpTarget = {}): unknown[][] {
  return ipBatch(commands, target, { tool: "bridge" });
}

/** Runs one ip command; returns its parsed JSON output (an empty array for actions). */
export function ip(command: IpCommand, target: IpTarget = {}): unknown[] {
  const r = runSync([...baseArgv(target), "-j", ...command]);
  if (r.status !== 0) {
    throw new IpError(`ip ${command.join(" ")}${target.netns ? ` (in ${target.netns})` : ""}: ${r.stderr.trim() || `exit ${r.status}`}`, r.stderr, 0, command);
  }
  const parsed = parseJsonLines(r.stdout);
  return parsed[0] ?? [];
}

function parseJsonLines(out: string): unknown[][] {
  const result: unknown[][] = [];
  for (const line of out.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const v: unknown = JSON.parse(t);
    result.push(Array.isArray(v) ? v : [v]);
  }
  return result;
}

/** The subset of `ip -j link/addr show` output gauze reads. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
  operstate?: string;
  master?: string;
  link_type?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_data?: Record<string, unknown>; info_slave_data?: Record<string, unknown> };
  addr_info?: IpAddrInfo[];
}

export interface IpAddrInfo {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
  scope?: string;
}

export interface IpNeigh {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export interface FdbEntry {
  mac: string;
  dst?: string;
  ifname?: string;
  flags?: string[];
  state?: string;
}

export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  flags?: string[];
}
