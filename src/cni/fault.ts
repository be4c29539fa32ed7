// Fault injection for tests of rollback and crash safety: GAUZE_FAULT=<point> makes the
// plugin fail at that point, GAUZE_FAULT=<point>:hang makes it stop there (for SIGKILL tests).
// Points: after-ipam, after-veth, after-pod. Unset in production: one env lookup per point.
import { CniCode, CniError } from "./errors.ts";
import { writeFd } from "../kernel/files.ts";

export function faultPoint(point: string): void {
  const f = process.env.GAUZE_FAULT;
  if (!f) return;
  const [at, mode] = f.split(":");
  if (at !== point) return;
  if (mode === "hang") {
    writeFd(2, `gauze: hanging at fault point ${point}\n`);
    // Block this thread for good without spinning: the test kills us here.
    const sab = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(sab, 0, 0);
  }
  throw new CniError(CniCode.IoFailure, `injected fault at ${point} (GAUZE_FAULT)`);
}
