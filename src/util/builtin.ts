// Node built-ins that the bun executable must not load at start-up: under bun, importing
// node:fs, node:child_process or node:crypto costs 2-13 ms of plugin latency each (see
// docs/benchmarks.md), so the bun path uses Bun's native APIs and libc (kernel/files.ts), and
// only node (unit tests under tsx, the CLI) loads these, on first use.
import type * as ChildProcess from "node:child_process";
import type * as Crypto from "node:crypto";
import type * as Fs from "node:fs";

interface Builtins {
  "node:child_process": typeof ChildProcess;
  "node:crypto": typeof Crypto;
  "node:fs": typeof Fs;
}

export function nodeBuiltin<K extends keyof Builtins>(id: K): Builtins[K] {
  return (process as unknown as { getBuiltinModule(id: string): unknown }).getBuiltinModule(id) as Builtins[K];
}

export function sha256Hex(text: string): string {
  if (typeof Bun !== "undefined") return new Bun.CryptoHasher("sha256").update(text).digest("hex");
  return nodeBuiltin("node:crypto").createHash("sha256").update(text).digest("hex");
}

/** Joins path parts with "/" (node:path costs start-up time under bun; these are simple paths). */
export function joinPath(...parts: string[]): string {
  return parts.join("/").replace(/\/{2,}/g, "/");
}
