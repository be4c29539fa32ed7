// The stack only points down: net -> kernel -> ipam, dataplane, backend, store -> cni, agent ->
// lab, doctor, capture, ui -> cli -> bin. Every import in src/ (static, dynamic, type-only) is
// checked against it; folders on one level may use each other but never in a cycle.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = join(import.meta.dirname, "..", "..", "src");

/** Level of each top folder of src/ (files directly in src/ are level 0). */
const LEVEL: Record<string, number> = {
  "": 0, util: 0, net: 0, packet: 0,
  kernel: 1,
  ipam: 2, dataplane: 2, backend: 2, store: 2,
  cni: 3, agent: 3,
  lab: 4, doctor: 4, capture: 4, ui: 4, deploy: 4, observe: 4,
  cli: 5,
  bin: 6,
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function folderOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes("/") ? rel.split("/")[0]! : "";
}

interface Edge { from: string; to: string; file: string; spec: string }

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const f of files(SRC)) {
    const text = readFileSync(f, "utf8");
    const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)["'](\.[^"']+)["']/g)].map((m) => m[1]!);
    for (const spec of specs) {
      const target = resolve(dirname(f), spec);
      out.push({ from: folderOf(f), to: folderOf(target), file: relative(SRC, f), spec });
    }
  }
  return out;
}

test("every folder of src/ has a level", () => {
  const unknown = readdirSync(SRC).filter((f) => statSync(join(SRC, f)).isDirectory() && !(f in LEVEL));
  assert.deepEqual(unknown, [], "add new folders to LEVEL (and to docs/architecture.md)");
});

test("no import points up the stack", () => {
  const up = edges().filter((e) => LEVEL[e.to]! > LEVEL[e.from]!).map((e) => `${e.file} imports ${e.spec} (${e.from || "src"} ${LEVEL[e.from]} -> ${e.to} ${LEVEL[e.to]})`);
  assert.deepEqual(up, []);
});

test("folders on one level do not import each other in a cycle", () => {
  const graph = new Map<string, Set<string>>();
  for (const e of edges()) {
    if (e.from === e.to || LEVEL[e.from] !== LEVEL[e.to]) continue;
    (graph.get(e.from) ?? graph.set(e.from, new Set()).get(e.from)!).add(e.to);
  }
  const cycles: string[] = [];
  for (const [a, tos] of graph) for (const b of tos) if (graph.get(b)?.has(a) && a < b) cycles.push(`${a} <-> ${b}`);
  assert.deepEqual(cycles, []);
});

test("only kernel/ calls libc, spawns processes or loads bun:ffi", () => {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    if (folderOf(f) === "kernel") continue;
    const text = readFileSync(f, "utf8");
    for (const pat of [/bun:ffi/, /node:child_process/, /Bun\.spawn/, /\bnsenter\b.*\[/]) {
      if (pat.test(text)) bad.push(`${relative(SRC, f)}: ${pat.source}`);
    }
  }
  assert.deepEqual(bad, []);
});
