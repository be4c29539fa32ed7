// Runs the whole suite with node's test runner (TypeScript through tsx). Unit tests first, then
// the end-to-end tests against dist/bin/gauze and the real kernel (root required).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const only = process.argv.slice(2);
const files = ["unit", "e2e"].flatMap((dir) =>
  readdirSync(join(root, "test", dir)).filter((f) => f.endsWith(".test.ts")).sort().map((f) => join("test", dir, f)));
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...selected], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
