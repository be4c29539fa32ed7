// Runs other programs with argument arrays (never a shell string), optionally inside a network
// namespace: the process is started while this thread is in that namespace (netns.ts:inNetns),
// so it is born there, without an nsenter process in between. Bun.spawnSync costs about 1 ms.
import { inNetns } from "./netns.ts";

/**
 * The gauze executable itself, for the commands gauze runs of its own (agents, doctor inside a
 * node, helpers inside pods): the compiled executable is process.execPath; tests of the sources
 * under another runtime name it with GAUZE_BIN.
 */
export function gauzeExecutable(): string {
  return process.env.GAUZE_BIN ?? process.execPath;
}

export interface SpawnResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  input?: string;
  env?: Record<string, string | undefined>;
  /** Path of the network namespace to run in. */
  netns?: string;
}

function here<T>(netns: string | undefined, fn: () => T): T {
  return netns ? inNetns(netns, fn) : fn();
}

/** Runs argv to its end and collects its output. A missing program is status 127, as in a shell. */
export function runSync(argv: readonly string[], opts: SpawnOptions = {}): SpawnResult {
  if (argv.length === 0) throw new Error("runSync: empty argv");
  try {
    const p = here(opts.netns, () => Bun.spawnSync([...argv], {
      stdin: opts.input !== undefined ? new TextEncoder().encode(opts.input) : "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: opts.env as Record<string, string> | undefined,
    }));
    return { status: p.exitCode ?? 128, stdout: p.stdout ? p.stdout.toString() : "", stderr: p.stderr ? p.stderr.toString() : "" };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT" || /ENOENT|No such file/.test(String(err.message))) return { status: 127, stdout: "", stderr: `${argv[0]}: not found` };
    throw e;
  }
}

/** Runs argv with this terminal (stdin, stdout, stderr inherited); returns its exit status. */
export function runInteractive(argv: readonly string[], opts: Omit<SpawnOptions, "input"> = {}): number {
  const p = here(opts.netns, () => Bun.spawnSync([...argv], { stdio: ["inherit", "inherit", "inherit"], env: opts.env as Record<string, string> | undefined }));
  return p.exitCode ?? 128;
}

/**
 * Starts argv detached from this process (its own process group, output to `logFd`), for the
 * lab's agents, servers and etcd that outlive the CLI that started them. Returns its PID.
 */
export function startDetached(argv: readonly string[], logFd: number, opts: Omit<SpawnOptions, "input"> = {}): number {
  const p = here(opts.netns, () => Bun.spawn([...argv], { stdio: ["ignore", logFd, logFd], detached: true, env: opts.env as Record<string, string> | undefined }));
  p.unref();
  return p.pid;
}

/** A child started with piped stdout and stderr (node's ChildProcess). */
export type PipedChild = import("node:child_process").ChildProcessByStdio<null, import("node:stream").Readable, import("node:stream").Readable>;

/** Starts argv with piped stdout and stderr (for streaming readers such as live capture). */
export function startPiped(argv: readonly string[], opts: Omit<SpawnOptions, "input"> = {}): PipedChild {
  // Loaded on use: node:child_process costs start-up time the plugin must not pay.
  const cp = (process as unknown as { getBuiltinModule(id: "node:child_process"): typeof import("node:child_process") }).getBuiltinModule("node:child_process");
  return here(opts.netns, () => cp.spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: (opts.env ?? process.env) as NodeJS.ProcessEnv }));
}

/** A child with stdin, stdout and stderr piped (node's ChildProcess): an exec session's process. */
export type InteractiveChild = import("node:child_process").ChildProcessByStdio<import("node:stream").Writable, import("node:stream").Readable, import("node:stream").Readable>;

/** Starts argv with all three streams piped (the lab's pods/exec hands a client's stdin on). */
export function startInteractive(argv: readonly string[], opts: Omit<SpawnOptions, "input"> = {}): InteractiveChild {
  const cp = (process as unknown as { getBuiltinModule(id: "node:child_process"): typeof import("node:child_process") }).getBuiltinModule("node:child_process");
  return here(opts.netns, () => cp.spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], env: (opts.env ?? process.env) as NodeJS.ProcessEnv }));
}

/**
 * Runs argv to its end without blocking the caller's event loop (a server answering others
 * meanwhile); past `timeoutMs` the process is killed and the result says so (status 124, as
 * timeout(1) reports). Output is kept up to `maxBytes` per stream.
 */
export function runAsync(argv: readonly string[], opts: Omit<SpawnOptions, "input"> & { timeoutMs: number; maxBytes?: number }): Promise<SpawnResult & { timedOut: boolean }> {
  const max = opts.maxBytes ?? 4 << 20;
  return new Promise((resolve) => {
    const child = startPiped(argv, opts);
    let stdout = "", stderr = "", timedOut = false;
    child.stdout.on("data", (d: Buffer) => { if (stdout.length < max) stdout += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { if (stderr.length < max) stderr += d.toString(); });
    const timer = setTimeout(() => { timedOut = true; child.kill("SIGKILL"); }, opts.timeoutMs);
    child.on("close", (code) => { clearTimeout(timer); resolve({ status: timedOut ? 124 : code ?? 1, stdout, stderr, timedOut }); });
    child.on("error", (e) => { clearTimeout(timer); resolve({ status: 127, stdout, stderr: e.message, timedOut }); });
  });
}
