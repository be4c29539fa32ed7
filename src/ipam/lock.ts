// An exclusive flock(2) on a file: the same lock the reference host-local plugin takes on
// <dataDir>/<network>/lock, so gauze and host-local never allocate at the same time. The
// kernel drops it when the process dies, so a SIGKILLed ADD cannot leave the store locked.
// flock is not in node:fs; the shipped executable runs on bun, whose FFI calls libc directly.
import { closeSync, openSync } from "node:fs";
import { trace } from "../util/trace.ts";

const LOCK_EX = 2;
const LOCK_UN = 8;

type FlockFn = (fd: number, op: number) => number;
let flockFn: FlockFn | undefined;

async function loadFlock(): Promise<FlockFn> {
  if (flockFn) return flockFn;
  if (typeof Bun === "undefined") {
    throw new Error("flock needs the bun runtime: run the built dist/bin/gauze, not the sources under node");
  }
  const ffi = await import("bun:ffi");
  const lib = ffi.dlopen("libc.so.6", { flock: { args: [ffi.FFIType.i32, ffi.FFIType.i32], returns: ffi.FFIType.i32 } });
  const f = lib.symbols.flock as (fd: number, op: number) => number;
  flockFn = f;
  return f;
}

export interface FileLock {
  release(): void;
}

export async function lockFile(path: string): Promise<FileLock> {
  const flock = await loadFlock();
  trace("ffi flock loaded");
  const fd = openSync(path, "a+", 0o644);
  // Blocking, like host-local: another ADD holds it for a few milliseconds at most.
  if (flock(fd, LOCK_EX) !== 0) {
    closeSync(fd);
    throw new Error(`flock ${path} failed`);
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
