// Flows and drops on this node, wired into the agent: the observer starts once the node's link
// is known, its counters go to /metrics, and whatever it cannot do is a feature that is off,
// with why and the one command that fixes it (in the status file, /readyz, the log, `gauze
// observe` and doctor): a missing tracefs never turns drops off silently. The agent mounts
// tracefs itself where it may (root in the host's mount namespace) and notes it, so that
// `gauze uninstall` unmounts what the agent mounted.
import type { Logger } from "pino";
import { join } from "node:path";
import { readTextIfExists, writeAtomic } from "../kernel/files.ts";
import type { Rtnl } from "../kernel/netlink/index.ts";
import { type PseudoFs, PSEUDO_FILESYSTEMS, TRACEFS, ensureMounted, unmount } from "../kernel/pseudofs.ts";
import type { NodePaths } from "../node/paths.ts";
import { FlowObserver, type ObserverOptions } from "./flows.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { Feature } from "./status.ts";

export interface ObservingOptions {
  node: string;
  underlay: string;
  bridge: string;
  vxlanPort: number;
  paths: NodePaths;
  log: Logger;
  metrics: AgentMetrics;
  nl: Rtnl;
  judge?: ObserverOptions["judge"];
}

export interface Observing {
  observer?: FlowObserver;
  /** Why flows are not observed at all (the API answers 503 with it). */
  problem?: string;
  features: Record<string, Feature>;
}

/** Where the agent notes the pseudo filesystems it mounted itself. */
function mountsFile(paths: NodePaths): string {
  return join(paths.statusFile, "..", "mounted.json");
}

function noteMounted(paths: NodePaths, fs: PseudoFs): void {
  const had = new Set(readMounted(paths));
  had.add(fs.kind);
  writeAtomic(mountsFile(paths), JSON.stringify([...had]) + "\n", 0o600);
}

function readMounted(paths: NodePaths): string[] {
  try {
    const v = JSON.parse(readTextIfExists(mountsFile(paths)) ?? "[]") as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/** `gauze uninstall`: unmounts what this node's agent mounted; the names unmounted. */
export function unmountAgentMounts(paths: NodePaths): string[] {
  const done: string[] = [];
  for (const kind of readMounted(paths)) {
    const fs = PSEUDO_FILESYSTEMS.find((f) => f.kind === kind);
    if (fs && unmount(fs)) done.push(`${fs.kind} at ${fs.path}`);
  }
  try { writeAtomic(mountsFile(paths), "[]\n", 0o600); } catch { /* nothing noted */ }
  return done;
}

/** Starts the observer (once: a failure says why, and the agent goes on without it). */
export function startObserving(o: ObservingOptions): Observing {
  const features: Record<string, Feature> = {};
  const trace = ensureMounted(TRACEFS);
  if (trace.ok && trace.mounted) {
    noteMounted(o.paths, TRACEFS);
    o.log.info({ at: trace.at }, "mounted tracefs (it was not mounted): the kernel's drop events need it");
  }
  let seen = { packets: 0, lost: 0 };
  const observer = new FlowObserver({
    node: o.node, underlay: o.underlay, bridge: o.bridge, podRecords: o.paths.podRecords, vxlanPorts: [o.vxlanPort], log: o.log, ...(o.judge ? { judge: o.judge } : {}),
    onDrop: (reason, point) => o.metrics.drops.inc({ reason, point }),
    onStats: (st) => {
      o.metrics.packetsObserved.inc(st.packets - seen.packets);
      o.metrics.observerLost.inc(st.lost - seen.lost);
      o.metrics.observerSampling.set(st.sampling);
      seen = { packets: st.packets, lost: st.lost };
    },
  }, o.nl);
  try {
    observer.start();
  } catch (e) {
    const problem = (e as Error).message;
    o.log.warn({ err: problem }, "flows are not observed on this node");
    features.flows = { on: false, why: problem };
    features.drops = { on: false, why: "flows are not observed" };
    setFeatureMetrics(o.metrics, features);
    return { problem, features };
  }
  features.flows = { on: true };
  const dropsOff = observer.stats.dropsUnavailable;
  if (dropsOff) {
    features.drops = { on: false, why: trace.ok ? dropsOff : trace.why, fix: TRACEFS.fix };
    o.log.warn({ feature: "drops", why: features.drops.why, fix: TRACEFS.fix }, "drops with the kernel's reason are off on this node");
  } else features.drops = { on: true };
  setFeatureMetrics(o.metrics, features);
  return { observer, features };
}

export function setFeatureMetrics(m: AgentMetrics, features: Record<string, Feature>): void {
  for (const [feature, f] of Object.entries(features)) m.feature.set({ feature }, f.on ? 1 : 0);
}
