// The CNI side of the node: a config the runtime will load, that parses, and whose plugins exist.
import { copyFileSync, readFileSync, readdirSync, accessSync, constants } from "node:fs";
import { join } from "node:path";
import { NOT_INITIALIZED } from "../../node/conf-dir.ts";
import { foreignConfig, installConflist } from "../../agent/node-files.ts";
import { CONFLIST_NAME } from "../../node/paths.ts";
import { gauzeExecutable } from "../../kernel/spawn.ts";
import { type Check, ok, skip } from "../check.ts";
import { fixCommands } from "../context.ts";

/** IPAM types the gauze plugin runs itself (no binary needed). */
const GAUZE_BUILTIN_IPAM = new Set(["", "gauze", "host-local"]);

export const cniChecks: Check[] = [
  {
    id: "cni.config", group: "cni", title: "the runtime finds a CNI config",
    run(ctx) {
      if (ctx.network) return ok(`${ctx.paths.confDir}/${ctx.network.file}: network ${ctx.network.name}, ${ctx.network.plugins.map((p) => p.type).join(" -> ")}`);
      return {
        status: "fail", evidence: [`no loadable config in ${ctx.paths.confDir}`, `kubelet reports the node NotReady: ${NOT_INITIALIZED}`, ...(ctx.networkError && ctx.networkError !== NOT_INITIALIZED ? [ctx.networkError] : [])],
        fix: ctx.agent?.subnet ? `${fixCommands(ctx).doctorFix}, or ${fixCommands(ctx).restartAgent} (it writes 10-gauze.conflist)` : "install the CNI (the gauze agent writes its conflist once it has leased a subnet)",
        ...(ctx.agent?.subnet ? { repair: () => { installConflist(ctx.paths); return `wrote ${ctx.paths.confDir}/10-gauze.conflist`; } } : {}),
      };
    },
  },
  {
    id: "cni.config-first", group: "cni", title: `the runtime uses gauze's ${CONFLIST_NAME}, not another CNI's config`,
    run(ctx) {
      if (!ctx.network) return skip("no active config");
      const why = foreignConfig(ctx.paths);
      if (!why) return ctx.network.file === CONFLIST_NAME ? ok(`${CONFLIST_NAME} sorts first in ${ctx.paths.confDir}`) : skip(`${CONFLIST_NAME} is not there (another CNI runs this node)`);
      return {
        status: "fail",
        evidence: [why, `new pods get ${ctx.network.name} (${ctx.network.plugins.map((p) => p.type).join(" -> ")}) instead of gauze`],
        fix: `move ${ctx.paths.confDir}/${ctx.network.file} out of ${ctx.paths.confDir} (keep a copy if that CNI is still wanted), then re-create the pods started meanwhile`,
      };
    },
  },
  {
    id: "cni.config-valid", group: "cni", title: "every file in net.d parses and is named for what it is",
    run(ctx) {
      let files: string[];
      try {
        files = readdirSync(ctx.paths.confDir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
      } catch {
        return skip(`${ctx.paths.confDir} does not exist`);
      }
      if (files.length === 0) return skip("no config files");
      const problems: string[] = [];
      for (const f of files) {
        let raw: Record<string, unknown>;
        try {
          raw = JSON.parse(readFileSync(join(ctx.paths.confDir, f), "utf8")) as Record<string, unknown>;
        } catch (e) {
          problems.push(`${f}: not JSON (${(e as Error).message})`);
          continue;
        }
        if (typeof raw.cniVersion !== "string") problems.push(`${f}: no cniVersion`);
        if (f.endsWith(".conflist") && !Array.isArray(raw.plugins)) problems.push(`${f}: a .conflist needs "plugins" (a single plugin's config belongs in a .conf)`);
        if (f.endsWith(".conf") && Array.isArray(raw.plugins)) problems.push(`${f}: has "plugins", so it is a conflist: rename it to .conflist (runtimes read .conf as one plugin)`);
      }
      if (problems.length === 0) return ok(`${files.length} file(s): ${files.join(", ")}`);
      return { status: "fail", evidence: problems, fix: "fix or remove these files: the runtime skips them, or loads the wrong one first (it takes the lexicographically first valid file)" };
    },
  },
  {
    id: "cni.plugins", group: "cni", title: "every plugin the config names is in the CNI bin dir",
    run(ctx) {
      if (!ctx.network) return skip("no active config");
      const needed = new Set<string>();
      for (const p of ctx.network.plugins) {
        needed.add(String(p.type));
        const ipam = (p.ipam as { type?: string } | undefined)?.type;
        if (ipam && !(p.type === "gauze" && GAUZE_BUILTIN_IPAM.has(ipam))) needed.add(ipam);
      }
      const missing = [...needed].filter((t) => { try { accessSync(join(ctx.binDir, t), constants.X_OK); return false; } catch { return true; } });
      if (missing.length === 0) return ok(`${[...needed].join(", ")} in ${ctx.binDir}`);
      return {
        status: "fail", evidence: missing.map((t) => `failed to find plugin "${t}" in path [${ctx.binDir}]: pods on this node stay ContainerCreating`),
        fix: missing.includes("gauze") ? `install the gauze executable as ${ctx.binDir}/gauze (or ${fixCommands(ctx).doctorFix})` : `install ${missing.join(", ")} into ${ctx.binDir} (Debian: containernetworking-plugins)`,
        ...(missing.length === 1 && missing[0] === "gauze" ? { repair: () => { copyFileSync(gauzeExecutable(), join(ctx.binDir, "gauze")); return `copied ${gauzeExecutable()} to ${ctx.binDir}/gauze`; } } : {}),
      };
    },
  },
];
