// Pins: gauze's eBPF objects live on in bpffs after the agent exits, at
// <root>/<owner>/... (root /sys/fs/bpf/gauze by default; tests pass their own bpffs mount), so a
// restarted agent adopts its maps (and the flow state in them) and its links (no gap in what is
// observed). Everything gauze pins is under its owner's directory, so removing an owner removes
// exactly what it made. bpffs itself: whether a path is on one, and mounting one where missing
// (pseudofs.ts owns the mount; this says what it means for pins).
import { existsSync, lstatSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { BPFFS, ensureMounted, mountTable } from "../pseudofs.ts";
import { cString, libc } from "../libc.ts";

export const PIN_ROOT = "/sys/fs/bpf/gauze";

export class PinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PinError";
  }
}

/** <root>/<owner>: the owner is one path component of [A-Za-z0-9_.-] (a node's or a test's name). */
export function pinDir(owner: string, root = PIN_ROOT): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(owner)) throw new PinError(`pin owner ${JSON.stringify(owner)}: one path component of letters, digits, "_", "." and "-"`);
  return join(root, owner);
}

/** The mount a path is on (its longest mounted prefix) and that mount's type. */
function mountOf(path: string): { at: string; fstype: string } | undefined {
  let best: { at: string; fstype: string } | undefined;
  for (const [at, fstype] of mountTable()) {
    const inside = path === at || path.startsWith(at.endsWith("/") ? at : `${at}/`);
    if (inside && (!best || at.length > best.at.length)) best = { at, fstype };
  }
  return best;
}

/** Whether `path` (existing or not) lies on a bpffs mount. */
export function bpffsMounted(path: string): boolean {
  return mountOf(path)?.fstype === "bpf";
}

export type BpffsOutcome = { ok: true; mounted: boolean; at: string } | { ok: false; why: string };

/**
 * A bpffs at `path` (made a directory first when missing), unless `path` is on one already.
 * `mounted` says whether this call mounted it (so the caller can undo exactly that).
 */
export function ensureBpffs(path: string): BpffsOutcome {
  const m = mountOf(path);
  if (m?.fstype === "bpf") return { ok: true, mounted: false, at: m.at };
  try {
    mkdirSync(path, { recursive: true });
  } catch (e) {
    return { ok: false, why: `bpffs is not mounted at ${path}, and the directory cannot be made: ${(e as Error).message}` };
  }
  const r = ensureMounted({ ...BPFFS, path, alsoAt: [], fix: `mount -t bpf bpf ${path}` });
  if (!r.ok) return { ok: false, why: `${r.why} (mounting needs CAP_SYS_ADMIN in the mount namespace's owner; fix: mount -t bpf bpf ${path})` };
  return r;
}

/** Unmounts a bpffs that ensureBpffs mounted (lazily: pins inside go with it). */
export function unmountBpffs(path: string): boolean {
  if (mountTable().get(path) !== "bpf") return false;
  return libc().umount2(cString(path), 2 /* MNT_DETACH */) === 0;
}

/** Makes a pin directory (and its parents) on bpffs; a PinError when `dir` is not on bpffs. */
export function makePinDir(dir: string): void {
  if (!bpffsMounted(dir)) throw new PinError(`${dir} is not on a bpffs mount (fix: mount -t bpf bpf /sys/fs/bpf)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export function pinExists(path: string): boolean {
  return existsSync(path);
}

/** Removes a pin; false when there was none. */
export function unpin(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}

/**
 * Removes every pin and directory under `dir`, and `dir` itself; returns the paths removed.
 * Refuses a directory that is not on bpffs (nothing else is gauze's to delete this way).
 */
export function removePins(dir: string): string[] {
  if (!existsSync(dir)) return [];
  if (!bpffsMounted(dir)) throw new PinError(`refusing to remove ${dir}: not on bpffs`);
  const removed: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) walk(join(p, e));
      rmdirSync(p);
    } else {
      unlinkSync(p);
    }
    removed.push(p);
  };
  walk(dir);
  return removed;
}

/** Every pin under `dir`, relative to it (for tests and `gauze doctor`). */
export function listPins(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(p, e.name), r);
      else out.push(r);
    }
  };
  walk(dir, "");
  return out.sort();
}
