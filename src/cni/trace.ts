// GAUZE_TRACE=1 prints each phase of a plugin call with its elapsed milliseconds to stderr
// (stdout belongs to the CNI result). Off, it costs one env lookup.
import { writeFd } from "../kernel/files.ts";

const on = !!process.env.GAUZE_TRACE;
let last = performance.now();

export function trace(phase: string): void {
  if (!on) return;
  const now = performance.now();
  writeFd(2, `gauze trace: ${phase} +${(now - last).toFixed(2)} ms (at ${now.toFixed(2)} ms)\n`);
  last = now;
}
