// `gauze install-cni`: what a DaemonSet's init container does, and nothing else: puts this
// executable into the node's CNI bin dir as `gauze`. Written to a temp name in the same
// directory, flushed, made executable, then renamed over the old one: a runtime exec'ing the
// plugin during an upgrade runs either the old file or the new one, never half of one.
import { chmodSync, closeSync, constants, copyFileSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

export interface InstallResult {
  path: string;
  bytes: number;
  /** False when the bin dir already held this very file (same contents are not compared: same inode). */
  written: boolean;
}

export function installCniBinary(source: string, binDir: string, name = "gauze"): InstallResult {
  const target = join(binDir, name);
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  const src = statSync(source);
  const old = statSync(target, { throwIfNoEntry: false });
  if (old && old.ino === src.ino && old.dev === src.dev) return { path: target, bytes: src.size, written: false };
  const tmp = join(binDir, `.${name}.installing-${process.pid}`);
  rmSync(tmp, { force: true });
  try {
    copyFileSync(source, tmp, constants.COPYFILE_EXCL);
    const fd = openSync(tmp, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`cannot install ${source} as ${target}: ${(e as Error).message} (is ${binDir} mounted writable?)`);
  }
  return { path: target, bytes: src.size, written: true };
}
