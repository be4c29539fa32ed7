// `gauze install-cni` and `gauze uninstall`: the two ends of a node's life with gauze.
import pino from "pino";
import { installCniBinary } from "../agent/install-cni.ts";
import { uninstallNode } from "../agent/uninstall.ts";
import { openRegistry } from "../store/open.ts";
import type { StoreFlags } from "../store/flags.ts";
import { nodeName } from "./agent.ts";

export function installCniCli(o: { binDir: string; json?: boolean }): number {
  try {
    const r = installCniBinary(process.execPath, o.binDir);
    if (o.json) console.log(JSON.stringify(r));
    else console.log(r.written ? `installed ${r.path} (${(r.bytes / 1e6).toFixed(1)} MB)` : `${r.path} is already this executable`);
    return 0;
  } catch (e) {
    process.stderr.write(`gauze install-cni: ${(e as Error).message}\n`);
    return 1;
  }
}

export interface UninstallCliOptions extends StoreFlags {
  node?: string;
  iface?: string;
  root: string;
  binDir: string;
  wait?: boolean;
  json?: boolean;
}

export async function uninstallCli(o: UninstallCliOptions): Promise<number> {
  const node = nodeName(o.node);
  // The report goes to stdout; the log (JSON lines) to stderr.
  const log = pino({ base: { node }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
  let registry;
  try {
    registry = await openRegistry(o);
  } catch (e) {
    process.stderr.write(`gauze uninstall: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    const r = await uninstallNode({ node, ...(o.iface ? { iface: o.iface } : {}), registry, root: o.root, binDir: o.binDir, log });
    if (o.json) console.log(JSON.stringify(r));
    else {
      console.log(`gauze removed from ${node}: lease ${r.released ?? "(none)"}, ${r.veths.length} pod veth(s), bridge ${r.bridges.join(", ") || "(none)"}, ${r.reservations} reservation(s)`);
      if (r.keptBridges.length) console.log(`kept bridge ${r.keptBridges.join(", ")}: ports that are not gauze's are still on it`);
    }
  } catch (e) {
    process.stderr.write(`gauze uninstall: ${(e as Error).message}\n`);
    return 1;
  } finally {
    registry.close();
  }
  if (!o.wait) return 0;
  // An uninstall DaemonSet's pod: done, and stays so until it is deleted (no restart loop).
  return new Promise((resolve) => {
    const alive = setInterval(() => undefined, 1 << 30); // nothing else keeps the process up
    const done = () => { clearInterval(alive); resolve(0); };
    process.once("SIGTERM", done);
    process.once("SIGINT", done);
  });
}
