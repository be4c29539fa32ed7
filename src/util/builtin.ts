// Node built-ins that the bun executable must not load at start-up: under bun,
// `import "node:child_process"` or "node:crypto" costs 5-13 ms of plugin latency each (see
// docs/benchmarks.md), so the bun path uses Bun's native APIs and only node loads these.
import type * as ChildProcess from "node:child_process";
import type * as Crypto from "node:crypto";

interface BuiltinLoader {
  getBuiltinModule(id: "node:child_process"): typeof ChildProcess;
  getBuiltinModule(id: "node:crypto"): typeof Crypto;
}

export function nodeBuiltin<K extends "node:child_process" | "node:crypto">(id: K) {
  return (process as unknown as BuiltinLoader).getBuiltinModule(id as "node:child_process" & "node:crypto") as K extends "node:child_process" ? typeof ChildProcess : typeof Crypto;
}

export function sha256Hex(text: string): string {
  if (typeof Bun !== "undefined") return new Bun.CryptoHasher("sha256").update(text).digest("hex");
  return nodeBuiltin("node:crypto").createHash("sha256").update(text).digest("hex");
}
