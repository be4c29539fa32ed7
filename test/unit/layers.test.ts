// The stack only points down: net, util, packet, policy -> kernel -> node, ipam, dataplane, backend, store
// -> cni, agent -> capture, deploy, doctor, observe -> lab, ui -> cli -> bin. Every import in src/
// (static, dynamic, type-only) is checked against it. Folders on one level may use each other but
// never in a loop, of any length; no file takes part in an import loop either.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = join(import.meta.dirname, "..", "..", "src");

/** Level of each top folder of src/ (files directly in src/ are level 0). */
const LEVEL: Record<string, number> = {
  // policy: the NetworkPolicy evaluator, pure (the rule compilers, explain and the tests use it).
  "": 0, util: 0, net: 0, packet: 0, policy: 0,
  kernel: 1,
  // The node's contract files (subnet file, net.d, pod records, paths): below the plugin and the agent, which share them.
  node: 2, ipam: 2, dataplane: 2, backend: 2, store: 2,
  cni: 3, agent: 3,
  // Tools over a node: observe reads agents through a source it defines; doctor reads one node.
  capture: 4, deploy: 4, doctor: 4, observe: 4,
  // The lab runs everything (captures, manifests) and is one source for observe; the ui sits on observe.
  lab: 5, ui: 5,
  cli: 6,
  bin: 7,
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

interface Edge { from: string; to: string; file: string; target: string; spec: string }

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const f of files(SRC)) {
    const text = readFileSync(f, "utf8");
    const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)["'](\.[^"']+)["']/g)].map((m) => m[1]!);
    for (const spec of specs) {
      const target = resolve(dirname(f), spec);
      out.push({ from: folderOf(f), to: folderOf(target), file: relative(SRC, f), target: relative(SRC, target), spec });
    }
  }
  return out;
}

/** Every loop in a directed graph, each as its members in order (strongly connected parts of more than one node, or a self loop). */
export function loops(graph: Map<string, Set<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++; stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const part: string[] = [];
      for (;;) { const w = stack.pop()!; on.delete(w); part.push(w); if (w === v) break; }
      if (part.length > 1 || graph.get(v)?.has(v)) out.push(part.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

test("the loop finder sees loops of any length, and nothing else", () => {
  const g = (pairs: [string, string][]) => { const m = new Map<string, Set<string>>(); for (const [a, b] of pairs) (m.get(a) ?? m.set(a, new Set()).get(a)!).add(b); return m; };
  assert.deepEqual(loops(g([["a", "b"], ["b", "c"]])), []);
  assert.deepEqual(loops(g([["a", "b"], ["b", "a"]])), [["a", "b"]]);
  assert.deepEqual(loops(g([["a", "b"], ["b", "c"], ["c", "d"], ["d", "a"], ["d", "e"]])), [["a", "b", "c", "d"]]);
});

test("every folder of src/ has a level", () => {
  const unknown = readdirSync(SRC).filter((f) => statSync(join(SRC, f)).isDirectory() && !(f in LEVEL));
  assert.deepEqual(unknown, [], "add new folders to LEVEL (and to docs/architecture.md)");
});

test("no import points up the stack", () => {
  const up = edges().filter((e) => LEVEL[e.to]! > LEVEL[e.from]!).map((e) => `${e.file} imports ${e.spec} (${e.from || "src"} ${LEVEL[e.from]} -> ${e.to} ${LEVEL[e.to]})`);
  assert.deepEqual(up, []);
});

test("folders on one level do not import each other in a loop, of any length", () => {
  const graph = new Map<string, Set<string>>();
  for (const e of edges()) {
    if (e.from === e.to || LEVEL[e.from] !== LEVEL[e.to]) continue;
    (graph.get(e.from) ?? graph.set(e.from, new Set()).get(e.from)!).add(e.to);
  }
  assert.deepEqual(loops(graph).map((l) => l.join(" <-> ")), []);
});

test("no file takes part in an import loop (shared types go down to a module both use)", () => {
  const graph = new Map<string, Set<string>>();
  for (const e of edges()) (graph.get(e.file) ?? graph.set(e.file, new Set()).get(e.file)!).add(e.target);
  assert.deepEqual(loops(graph).map((l) => l.join(" -> ")), []);
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
