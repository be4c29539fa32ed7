// One executable, two faces: with CNI_COMMAND set it is the CNI plugin (as a runtime calls it
// from /opt/cni/bin/gauze); otherwise it is the gauze CLI. The CLI is imported lazily so the
// plugin's start-up does not pay for it.
import { runPlugin } from "../cni/main.ts";

/** A runtime always sets CNI_COMMAND; one that forgot it but set other CNI_ variables still
 *  gets the plugin (and a spec error saying CNI_COMMAND is missing), not the CLI's help. */
function calledAsPlugin(env: NodeJS.ProcessEnv): boolean {
  return env.CNI_COMMAND !== undefined || env.CNI_CONTAINERID !== undefined || env.CNI_NETNS !== undefined || env.CNI_IFNAME !== undefined;
}

function main(): Promise<number> {
  if (calledAsPlugin(process.env)) return runPlugin(process.env);
  return import("../cli/main.ts").then((m) => m.runCli(process.argv.slice(2)));
}

main().then(
  // The plugin exits at once: nothing is pending, and the runtime's teardown costs latency.
  (code) => { if (calledAsPlugin(process.env)) process.exit(code); process.exitCode = code; },
  (e: unknown) => { console.error(e); process.exitCode = 1; },
);
