// Regenerates scripts/plugin.bytecode-order: which functions the plugin runs, so that
// `bun build --compile --bytecode-order` lays them out together at the front of the executable
// (fewer page faults while a runtime waits for ADD: measured 0.3-0.8 ms of a ~15 ms ADD). It
// runs the built executable's ADD, CHECK and DEL once each in scratch gz-bo-* namespaces (root),
// with BUN_BYTECODE_ORDER_OUT, and keeps the lines naming what ran (not the list of everything
// else, which the build does not need). A profile from an older build still applies; rerun
// after large changes to the plugin path:   node scripts/bytecode-order.mjs && npm run build
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const gauze = join(root, "dist", "bin", "gauze");
const out = join(root, "scripts", "plugin.bytecode-order");
const tmp = mkdtempSync(join(tmpdir(), "gauze-bo-"));
const ns = [`gz-bo-${process.pid}-node`, `gz-bo-${process.pid}-pod`];
const run = (argv, opts = {}) => spawnSync(argv[0], argv.slice(1), { encoding: "utf8", ...opts });
try {
  for (const n of ns) if (run(["ip", "netns", "add", n]).status !== 0) throw new Error(`ip netns add ${n} failed (root needed)`);
  const conf = JSON.stringify({ cniVersion: "1.1.0", name: "bo", type: "gauze", bridge: "gzbo0", ipam: { ranges: [[{ subnet: "10.250.9.0/24" }]], dataDir: join(tmp, "ipam") } });
  const lines = [];
  let prev;
  for (const verb of ["ADD", "CHECK", "DEL"]) {
    const file = join(tmp, `${verb}.order`);
    const input = verb === "CHECK" ? JSON.stringify({ ...JSON.parse(conf), prevResult: prev }) : conf;
    const r = run(["nsenter", `--net=/run/netns/${ns[0]}`, gauze], {
      input, env: { PATH: process.env.PATH, BUN_BYTECODE_ORDER_OUT: file, CNI_COMMAND: verb, CNI_CONTAINERID: "bo", CNI_NETNS: `/run/netns/${ns[1]}`, CNI_IFNAME: "eth0", CNI_PATH: "/usr/lib/cni" },
    });
    if (r.status !== 0) throw new Error(`${verb}: ${r.stdout}${r.stderr}`);
    if (verb === "ADD") prev = JSON.parse(r.stdout);
    for (const l of readFileSync(file, "utf8").split("\n")) if (l && !l.startsWith("K ") && !lines.includes(l)) lines.push(l);
  }
  const header = lines.filter((l) => !/^[A-Z] /.test(l));
  writeFileSync(out, [...header.slice(0, 1), ...lines.filter((l) => /^[A-Z] /.test(l))].join("\n") + "\n");
  console.log(`wrote ${out}: ${lines.length} lines from ADD, CHECK and DEL`);
} finally {
  for (const n of ns) run(["ip", "netns", "del", n]);
  rmSync(tmp, { recursive: true, force: true });
}
