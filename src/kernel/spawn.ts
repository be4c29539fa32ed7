// Runs an external program with an argument array (never a shell string) and waits for it.
// Under bun (the shipped executable) Bun.spawnSync costs about 1 ms per call; node's
// child_process is the fallback so the same code runs under tsx in unit tests.
import { nodeBuiltin } from "../util/builtin.ts";

export interface SpawnResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  input?: string;
  env?: Record<string, string | undefined>;
}

export function runSync(argv: readonly string[], opts: SpawnOptions = {}): SpawnResult {
  if (argv.length === 0) throw new Error("runSync: empty argv");
  if (typeof Bun !== "undefined") {
    const p = Bun.spawnSync([...argv], {
      stdin: opts.input !== undefined ? new TextEncoder().encode(opts.input) : "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: opts.env as Record<string, string> | undefined,
    });
    return {
      status: p.exitCode ?? 128,
      stdout: p.stdout ? p.stdout.toString() : "",
      stderr: p.stderr ? p.stderr.toString() : "",
    };
  }
  const p = nodeBuiltin("node:child_process").spawnSync(argv[0]!, argv.slice(1), {
    input: opts.input,
    encoding: "utf8",
    env: opts.env as NodeJS.ProcessEnv | undefined,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (p.error) return { status: 127, stdout: "", stderr: String(p.error.message) };
  return { status: p.status ?? 128, stdout: p.stdout ?? "", stderr: p.stderr ?? "" };
}


/** A process started now whose input is given later: its exec and start-up overlap other work. */
export interface PendingProcess {
  /** Sends the whole input, closes stdin, and waits for the result. */
  finish(input: string): Promise<SpawnResult>;
}

/** Starts argv at once with stdin held open (bun only; undefined elsewhere: use runSync). */
export function startEarly(argv: readonly string[]): PendingProcess | undefined {
  if (typeof Bun === "undefined") return undefined;
  const p = Bun.spawn([...argv], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  return {
    async finish(input: string) {
      p.stdin.write(input);
      await p.stdin.end();
      const [stdout, stderr, status] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { status, stdout, stderr };
    },
  };
}
