// Runs the whole suite. Unit tests (logic, no kernel) and kernel tests (src/kernel against the
// real kernel, iproute2 as the oracle) run under bun, the runtime of the shipped executable, so
// they exercise the code the binary runs. Contract tests (one suite per seam, run against every
// implementation: real etcd, a real directory, the stand-in API server) run under bun too. End-to-end tests drive dist/bin/gauze itself from node's
// test runner, two files at a time; files that load the whole machine on purpose (a flood) run
// alone afterwards, so that their load is never another test's flakiness. Root is required.
// The /run/netns mount `ip netns add` makes is removed again if the suite made it.
// Arguments filter test files by substring.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const only = process.argv.slice(2);
const pick = (dir) => readdirSync(join(root, "test", dir)).filter((f) => f.endsWith(".test.ts")).sort().map((f) => join("test", dir, f))
  .filter((f) => !only.length || only.some((o) => f.includes(o)));
const bunFiles = [...pick("unit"), ...pick("kernel"), ...pick("contract")];
/** End-to-end files that saturate the machine on purpose: run one at a time, after the rest. */
const ALONE = ["hardening.test.ts"];
const nodeFiles = pick("e2e").filter((f) => !ALONE.some((a) => f.endsWith(a)));
const aloneFiles = pick("e2e").filter((f) => ALONE.some((a) => f.endsWith(a)));
// `ip netns add` (tests' scratch namespaces) bind-mounts /run/netns on itself when it is not
// yet: a fresh host does not have that mount, so the suite takes it away again if it made it.
const netnsMounted = () => readFileSync("/proc/self/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === "/run/netns");
const netnsMountedBefore = netnsMounted(), netnsDirBefore = existsSync("/run/netns");
let status = 0;
if (bunFiles.length) {
  const bun = join(root, "node_modules", ".bin", "bun");
  const r = spawnSync(bun, ["test", "--timeout", "120000", ...bunFiles.map((f) => `./${f}`)], { cwd: root, stdio: "inherit" });
  status ||= r.status ?? 1;
}
for (const [files, concurrency] of [[nodeFiles, 2], [aloneFiles, 1]]) {
  if (!files.length) continue;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files], { cwd: root, stdio: "inherit" });
  status ||= r.status ?? 1;
}
if (!netnsMountedBefore && netnsMounted()) {
  let left = [];
  try { left = readdirSync("/run/netns"); } catch { /* gone */ }
  if (left.length === 0) {
    // The lab's mount and ip's may be stacked there: one umount each.
    for (let i = 0; i < 4 && netnsMounted(); i++) spawnSync("umount", ["/run/netns"], { stdio: "inherit" });
    if (!netnsDirBefore) try { rmdirSync("/run/netns"); } catch { /* in use again */ }
  }
  else console.error(`test: /run/netns still holds ${left.join(", ")}: left mounted`);
}
process.exit(status);
