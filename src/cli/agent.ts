// `gauze agent`: the node agent, as a hostNetwork DaemonSet pod runs it (or the lab, inside a
// node's namespace).
import pino from "pino";
import { hostname } from "node:os";
import { Agent } from "../agent/agent.ts";
import { uninstallAgent } from "../agent/uninstall.ts";
import { OBSERVER_MODES, type ObserverMode } from "../agent/observing.ts";
import { parseDatapathFlag } from "../agent/datapath.ts";
import type { SubnetRegistry } from "../store/registry.ts";
import { openRegistry } from "../store/open.ts";
import type { StoreFlags } from "../store/flags.ts";

export interface AgentCliOptions extends StoreFlags {
  node?: string;
  iface?: string;
  mtu?: string;
  root: string;
  ipMasq: boolean;
  healthAddr: string;
  leaseTtl: string;
  resync: string;
  bridge: string;
  uninstall?: boolean;
  /** commander's --no-observe */
  observe?: boolean;
  /** --observer auto|ebpf|ring */
  observer?: string;
  networkPolicy: string;
  policyEstablished: string;
  /** --datapath classic|ebpf (over the network config's Datapath) */
  datapath?: string;
}

/** --node, else NODE_NAME (the DaemonSet sets it from spec.nodeName), else the hostname. */
export function nodeName(flag?: string): string {
  return flag ?? (process.env.NODE_NAME || hostname());
}

export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`${what} ${JSON.stringify(text)}: write a duration like 500ms, 10s, 5m or 24h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

export async function runAgent(o: AgentCliOptions): Promise<number> {
  const node = o.node ?? nodeName();
  const log = pino({ base: { node }, timestamp: pino.stdTimeFunctions.isoTime });
  log.info({ pid: process.pid, startupMs: +performance.now().toFixed(1) }, "agent starting");
  // A daemon: a promise nobody awaited that fails (a registry call, say) is logged, never fatal.
  process.on("unhandledRejection", (e) => log.error({ err: e instanceof Error ? e.message : String(e) }, "unhandled failure (kept running)"));
  let registry: SubnetRegistry;
  let ttl: number;
  let resync: number;
  try {
    registry = await openRegistry(o);
    ttl = parseDuration(o.leaseTtl, "--lease-ttl");
    resync = parseDuration(o.resync, "--resync");
    if (!["auto", "on", "off"].includes(o.networkPolicy)) throw new Error(`--network-policy ${o.networkPolicy}: use auto, on or off`);
    if (!["keep", "recheck"].includes(o.policyEstablished)) throw new Error(`--policy-established ${o.policyEstablished}: use keep or recheck`);
    if (o.observer !== undefined && !(OBSERVER_MODES as readonly string[]).includes(o.observer)) throw new Error(`--observer ${o.observer}: use auto, ebpf or ring`);
    if (o.datapath !== undefined) parseDatapathFlag(o.datapath);
    if (o.mtu !== undefined && !(/^\d+$/.test(o.mtu) && Number(o.mtu) >= 576 && Number(o.mtu) <= 65535)) throw new Error(`--mtu ${o.mtu}: give a number from 576 to 65535`);
  } catch (e) {
    process.stderr.write(`gauze agent: ${(e as Error).message}\n`);
    return 2;
  }
  for (const w of (registry as { warnings?: string[] }).warnings ?? []) log.warn(w);
  if (o.uninstall) {
    await uninstallAgent({ node, ...(o.iface ? { iface: o.iface } : {}), registry, root: o.root, log });
    return 0;
  }
  log.info({ startupMs: +performance.now().toFixed(1) }, "registry open");
  const agent = new Agent({ node, ...(o.iface ? { iface: o.iface } : {}), ...(o.mtu ? { mtu: Number(o.mtu) } : {}), registry, root: o.root, ipMasq: o.ipMasq, healthAddr: o.healthAddr, leaseTtlMs: ttl, resyncMs: resync, bridge: o.bridge, log, observe: o.observe !== false, ...(o.observer ? { observer: o.observer as ObserverMode } : {}),
    networkPolicy: o.networkPolicy as "auto", policyEstablished: o.policyEstablished as "keep", ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), ...(o.datapath ? { datapath: parseDatapathFlag(o.datapath) } : {}) });
  try {
    await agent.start();
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "cannot start");
    return 1;
  }
  return new Promise((resolve) => {
    const stop = (sig: string) => {
      // The dataplane stays: pods keep talking while the agent is away.
      log.info({ signal: sig }, "stopping; dataplane left in place");
      agent.stop();
      resolve(0);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
