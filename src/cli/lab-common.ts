// What every `gauze lab ...` command module shares: the --name help text, the progress writer
// (quiet under --json) and the guard that turns a thrown error into one line and exit 1.
import type { Progress } from "../lab/state.ts";

export type SetStatus = (code: number) => void;

/** --name on commands that act on an existing lab: optional when there is one lab (or GAUZE_LAB names it). */
export const LAB_HELP = "lab name (default: the only lab, or $GAUZE_LAB)";

export const say = (json: boolean): Progress => (line) => { if (!json) process.stderr.write(`${line}\n`); };

export async function guard(set: SetStatus, fn: () => Promise<number | void>): Promise<void> {
  try {
    set((await fn()) ?? 0);
  } catch (e) {
    process.stderr.write(`gauze lab: ${(e as Error).message}\n`);
    set(1);
  }
}
