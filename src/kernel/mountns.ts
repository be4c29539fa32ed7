// A command in a mount namespace of its own, with directories bound over others: how wireguard-go
// gets the socket directory of a lab node (its /run) while it looks for /run/wireguard, as it
// always does, and how anything else that hard-codes a path can be given a node's own tree.
// Only the calling process (a short-lived helper) enters the new namespace; the host's mounts
// are untouched, and nothing propagates back (the new namespace is made private first).
import { cString, describeErrno, libc } from "./libc.ts";
import { type SpawnResult, runSync } from "./spawn.ts";

const CLONE_NEWNS = 0x00020000;
const MS_BIND = 0x1000, MS_REC = 0x4000, MS_PRIVATE = 1 << 18;

export interface Bind { src: string; dst: string }

/** Runs `argv` (in `netns`, if given) with `binds` in place; this process keeps the namespace afterwards. */
export function runWithBinds(binds: readonly Bind[], argv: readonly string[], o: { netns?: string } = {}): SpawnResult {
  const c = libc();
  if (c.unshare(CLONE_NEWNS) !== 0) throw new Error(`unshare(CLONE_NEWNS): ${describeErrno(c.errno())}`);
  if (c.mount(null, cString("/"), null, MS_REC | MS_PRIVATE, null) !== 0) throw new Error(`make / private: ${describeErrno(c.errno())}`);
  for (const b of binds) {
    if (c.mount(cString(b.src), cString(b.dst), cString("none"), MS_BIND | MS_REC, null) !== 0) throw new Error(`bind ${b.src} on ${b.dst}: ${describeErrno(c.errno())}`);
  }
  return runSync(argv, o.netns ? { netns: o.netns } : {});
}
