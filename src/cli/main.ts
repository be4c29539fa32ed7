// The gauze command line. Each subcommand lives in its own module and is loaded on use.
import { Command } from "commander";
import { GAUZE_VERSION } from "../version.ts";
import { SPEC_VERSION, SUPPORTED_VERSIONS } from "../cni/version.ts";

export async function runCli(argv: string[]): Promise<number> {
  let status = 0;
  const program = new Command()
    .name("gauze")
    .description("Kubernetes pod networking you can see through.\nWith CNI_COMMAND set, this executable is the gauze CNI plugin.")
    .version(GAUZE_VERSION, "-v, --version")
    .exitOverride()
    .showHelpAfterError();

  program.command("version")
    .description("print gauze's version and the CNI versions the plugin speaks")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const info = { gauze: GAUZE_VERSION, cniSpec: SPEC_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
      console.log(opts.json ? JSON.stringify(info) : `gauze ${info.gauze} (CNI ${info.cniSpec}; speaks ${info.supportedVersions.join(", ")})`);
    });

  program.command("smoke")
    .description("prove the plugin on this machine: a node namespace, two pods, ping between them, then clean up")
    .option("--json", "print a JSON report")
    .option("--keep", "leave the namespaces in place for a look around")
    .action(async (opts: { json?: boolean; keep?: boolean }) => {
      const { runSmoke } = await import("./smoke.ts");
      status = await runSmoke(opts);
    });

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return typeof code === "number" ? code : 1;
  }
  return status;
}
