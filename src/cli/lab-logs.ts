// `gauze lab logs <node|pod> [--follow]` and `gauze lab podman -- <args>`: the lab's logs and
// containers, seen as kubectl logs and crictl show a cluster's (src/lab/logs.ts finds them).
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { runInteractive } from "../kernel/spawn.ts";
import { loadLab, pickLab } from "../lab/state.ts";
import { LAB_HELP, type SetStatus, guard } from "./lab-common.ts";




export function registerLabLogs(lab: Command, set: SetStatus): void {
  lab.command("logs")
    .description("a node's agent log (its container's in manifest mode), or a DaemonSet pod's containers' logs")
    .argument("<target>", "node (full name, or e.g. worker) or DaemonSet pod name")
    .option("-f, --follow", "keep printing as the log grows")
    .option("--name <lab>", LAB_HELP)
    .action((target: string, o: { follow?: boolean; name?: string }) => guard(set, async () => {
      const { logSources } = await import("../lab/logs.ts");
      const sources = logSources(loadLab(pickLab(o.name)), target, !!o.follow);
      let code = 0;
      for (const src of sources) {
        if (sources.length > 1) process.stderr.write(`==> ${src.what} <==\n`);
        if (src.kind === "podman") code ||= runInteractive(src.argv, { env: { ...process.env, ...src.env } });
        // tail -F follows the file across the agent's restarts (the lab reopens it by name).
        else if (o.follow) code ||= runInteractive(["tail", "-n", "+1", "-F", src.path]);
        else process.stdout.write(readFileSync(src.path));
      }
      return code;
    }));

  lab.command("podman")
    .description("podman on the lab's own container storage (--root, --runroot, containers.conf): e.g. gauze lab podman -- ps -a")
    .argument("<args...>", "podman's arguments (after --)")
    .option("--name <lab>", LAB_HELP)
    .action((args: string[], o: { name?: string }) => guard(set, async () => {
      const { podmanInvocation } = await import("../lab/kube/kubelet.ts");
      const p = podmanInvocation(pickLab(o.name), args);
      return runInteractive(p.argv, { env: { ...process.env, ...p.env } });
    }));
}
