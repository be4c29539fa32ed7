// One executable, two faces: with CNI_COMMAND set it is the CNI plugin (as a runtime calls it
// from /opt/cni/bin/gauze); otherwise it is the gauze CLI. The CLI is imported lazily so the
// plugin's start-up does not pay for it.
import { runPlugin } from "../cni/main.ts";

function main(): Promise<number> {
  if (process.env.CNI_COMMAND !== undefined) return runPlugin(process.env);
  return import("../cli/main.ts").then((m) => m.runCli(process.argv.slice(2)));
}

main().then(
  // The plugin exits at once: nothing is pending, and the runtime's teardown costs latency.
  (code) => { if (process.env.CNI_COMMAND !== undefined) process.exit(code); process.exitCode = code; },
  (e: unknown) => { console.error(e); process.exitCode = 1; },
);
