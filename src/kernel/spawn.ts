// Runs an external program with an argument array (never a shell string) and waits for it.
// Under bun (the shipped executable) Bun.spawnSync costs about 1 ms per call; node's
// child_process is the fallback so the same code runs under tsx in unit tests.
import { nodeBuiltin } from "../util/builtin.ts";
import { closeFd, makePipe, readAllAndClose, writeFd } from "../util/files.ts";

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

/**
 * Starts argv at once with stdin held open (bun only; undefined elsewhere: use runSync).
 * All three standard streams are plain pipes this process reads and writes with read(2) and
 * write(2): Bun's own pipe streams start two pool threads per plugin call, for a few hundred
 * bytes each way. Input is written whole at the end and output read once the child exits.
 */
export function startEarly(argv: readonly string[]): PendingProcess | undefined {
  if (typeof Bun === "undefined") return undefined;
  const pipes = [makePipe(), makePipe(), makePipe()];
  if (pipes.some((x) => !x)) {
    for (const x of pipes) if (x) { closeFd(x.read); closeFd(x.write); }
    return undefined;
  }
  const [input, out, err] = pipes as { read: number; write: number }[];
  const child = (() => {
    try {
      return Bun.spawn([...argv], { stdin: input!.read, stdout: out!.write, stderr: err!.write });
    } finally {
      // The child has its copies: ours would keep its stdin from ending and its output from EOF.
      closeFd(input!.read);
      closeFd(out!.write);
      closeFd(err!.write);
    }
  })();
  return {
    async finish(text: string) {
      try {
        if (text) writeFd(input!.write, text);
      } finally {
        closeFd(input!.write);
      }
      const stdout = readAllAndClose(out!.read);
      const stderr = readAllAndClose(err!.read);
      return { status: await child.exited, stdout, stderr };
    },
  };
}
