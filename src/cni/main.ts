// The plugin entry: a table from CNI verb to command. Reads the environment and stdin, runs
// the verb, prints the result or the spec's error JSON, and returns the exit status.
import { readStdin, writeFd } from "../kernel/files.ts";
import { type CniEnv, type Verb, readEnv } from "./env.ts";
import { type NetConf, loadConfig, parseJsonConfig } from "./config.ts";
import { CniError, toErrorJson } from "./errors.ts";
import { SPEC_VERSION, SUPPORTED_VERSIONS, requireVerbAllowed } from "./version.ts";
import { convertResult } from "./result.ts";
import { cmdAdd } from "./add.ts";
import { cmdDel } from "./del.ts";
import { cmdCheck } from "./check.ts";
import { cmdGc } from "./gc.ts";
import { ipamStatus } from "./ipam.ts";
import { trace } from "./trace.ts";

type Command = (env: CniEnv, conf: NetConf) => Promise<unknown>;

const COMMANDS: Record<Exclude<Verb, "VERSION">, Command> = {
  ADD: async (env, conf) => convertResult(await cmdAdd(env, conf), conf.cniVersion),
  DEL: (env, conf) => cmdDel(env, conf),
  CHECK: (env, conf) => cmdCheck(env, conf),
  GC: (env, conf) => cmdGc(env, conf).then(() => undefined),
  STATUS: (env, conf) => ipamStatus(conf, env),
};

function print(v: unknown): void {
  writeFd(1, JSON.stringify(v) + "\n");
}

/** Best-effort cniVersion of the input, so that errors are shaped for the caller. */
function versionOf(text: string): string {
  const m = /"cniVersion"\s*:\s*"([0-9.]+)"/.exec(text);
  return m && (SUPPORTED_VERSIONS as readonly string[]).includes(m[1]!) ? m[1]! : SPEC_VERSION;
}

export async function runPlugin(processEnv: NodeJS.ProcessEnv): Promise<number> {
  trace("start");
  const stdin = readStdin();
  try {
    const env = readEnv(processEnv);
    if (env.command === "VERSION") {
      let asked = SPEC_VERSION;
      if (stdin.trim()) {
        const v = parseJsonConfig(stdin).cniVersion;
        if (typeof v === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) asked = v;
      }
      print({ cniVersion: asked, supportedVersions: SUPPORTED_VERSIONS });
      return 0;
    }
    const conf = loadConfig(stdin, env);
    requireVerbAllowed(env.command, conf.cniVersion);
    trace("config");
    const out = await COMMANDS[env.command](env, conf);
    trace("done");
    if (out !== undefined) print(out);
    return 0;
  } catch (e) {
    print(toErrorJson(e, versionOf(stdin)));
    if (!(e instanceof CniError) && processEnv.GAUZE_DEBUG) writeFd(2, `${(e as Error).stack}\n`);
    return 1;
  }
}
