// docs/json.md as data: the key paths each command's JSON may have, and a JSON value's own key
// paths (a.b, a[] for an array's items), for the tests that hold every command to that document.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const DOC = join(import.meta.dirname, "..", "..", "docs", "json.md");

/** The documented paths under `## <heading>` (its table's first column). */
export function documentedPaths(heading: string): Set<string> {
  const text = readFileSync(DOC, "utf8");
  const at = text.indexOf(`\n## ${heading}\n`);
  if (at < 0) throw new Error(`docs/json.md has no section "## ${heading}"`);
  const section = text.slice(at + 1).split(/\n## /)[0]!;
  return new Set([...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!));
}

export function keyPaths(v: unknown, prefix = "", out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) keyPaths(x, `${prefix}[]`, out);
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      const p = prefix ? `${prefix}.${k}` : k;
      out.add(p);
      keyPaths(x, p, out);
    }
  }
  return out;
}

/** Paths of `values` that docs/json.md does not list under `heading`, and keys not in camelCase. */
export function undocumented(heading: string, values: unknown[]): string[] {
  const doc = documentedPaths(heading);
  const seen = new Set<string>();
  for (const v of values) keyPaths(v, "", seen);
  return [...seen].filter((p) => !doc.has(p) || !p.split(/\.|\[\]/).filter(Boolean).every((k) => /^[a-z][a-zA-Z0-9]*$/.test(k))).sort();
}
