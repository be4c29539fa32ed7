// Builds dist/bin/gauze: one self-contained executable (bun --compile) that is the CNI plugin
// when CNI_COMMAND is set and the gauze CLI otherwise. Why bun: see docs/benchmarks.md
// (start-up and spawn cost decide CNI ADD latency).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bun = join(root, "node_modules", ".bin", "bun");
mkdirSync(join(root, "dist", "bin"), { recursive: true });
const args = [
  "build", "src/bin/gauze.ts",
  "--compile",
  // Bytecode halves start-up (9 ms instead of 18 ms for VERSION here): no parsing at each call.
  // Splitting keeps what the plugin does not need (CLI, etcd and Kubernetes clients, the
  // dissector) in chunks loaded only on use: without it VERSION took 36 ms, with it 12.
  "--bytecode", "--minify", "--splitting", "--format", "esm",
  // A CNI plugin must not pick up .env or bunfig.toml from whatever directory the runtime runs it in.
  "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
  "--outfile", "dist/bin/gauze",
];
// Profile-guided layout: the plugin's functions together at the front (scripts/bytecode-order.mjs).
const order = join(root, "scripts", "plugin.bytecode-order");
if (existsSync(order)) args.push("--bytecode-order", order);
const r = spawnSync(bun, args, { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
