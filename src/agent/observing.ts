// Flows and drops on this node, wired into the agent: the observer starts once the node's link
// is known, its counters go to /metrics, and whatever it cannot do is a feature that is off,
// with why and the one command that fixes it (in the status file, /readyz, the log, `gauze
// observe` and doctor): a missing tracefs never turns drops off silently. The agent mounts
// tracefs itself where it may (root in the host's mount namespace) and notes it, so that
// `gauze uninstall` unmounts what the agent mounted.
// What it observes with (--observer): eBPF (tc programs on every link, kfree_skb with the drop's
// namespace) where the kernel and the agent's capabilities allow it, else today's packet ring and
// tracefs; auto picks eBPF when the probes say yes, and a fallback is said once (log, /metrics'
// gauze_agent_feature_enabled{feature="ebpf"}, the API's features that `gauze observe` prints,
// doctor's kernel.ebpf). The eBPF objects are pinned under /sys/fs/bpf/gauze/<node>: a stopped or
// killed agent leaves its programs observing and its flow table, and the next one adopts them.
import type { Logger } from "pino";
import { dirname, join } from "node:path";
import { existsSync, rmdirSync } from "node:fs";
import { readTextIfExists, writeAtomic } from "../kernel/files.ts";
import type { Rtnl } from "../kernel/netlink/index.ts";
import { type PseudoFs, BPFFS, PSEUDO_FILESYSTEMS, TRACEFS, ensureMounted, unmount } from "../kernel/pseudofs.ts";
import { BpfFlowTap } from "../kernel/bpf/observer.ts";
import { BpfDropTap } from "../kernel/bpf/drops.ts";
import { bpfAllowed, rawTracepoint, ringBuffer, tcPrograms, tpBtf } from "../kernel/bpf/features.ts";
import { PIN_ROOT, bpffsMounted, listPins, pinDir, removePins, unpin } from "../kernel/bpf/pin.ts";
import { BpfLink } from "../kernel/bpf/link.ts";
import type { NodePaths } from "../node/paths.ts";
import { type BpfTaps, FlowObserver, type ObserverOptions } from "./flows.ts";
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
  /** eBPF, the packet ring, or eBPF where the kernel allows it (default). */
  mode?: ObserverMode;
}

export type ObserverMode = "auto" | "ebpf" | "ring";
export const OBSERVER_MODES: readonly ObserverMode[] = ["auto", "ebpf", "ring"];

/** What eBPF observing needs, and the one thing that gives it. */
export const EBPF_FIX = "run the agent as root, or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, on Linux 5.8 or later with BTF (CONFIG_DEBUG_INFO_BTF)";

/**
 * Where a node's agent pins its observer: <node's directory>/observe, beside what else of gauze's
 * the node pins (the eBPF datapath), so that removing one never takes the other.
 */
export function nodePinDir(node: string): string {
  return join(pinDir(node, PIN_ROOT), "observe");
}

/** The first thing eBPF observing lacks here, or undefined when it has all it needs. */
export function ebpfMissing(): string | undefined {
  for (const [name, f] of [["bpf()", bpfAllowed()], ["tc programs", tcPrograms()], ["ring buffers", ringBuffer()]] as const) {
    if (!f.ok) return `${name}: ${f.why}`;
  }
  const tp = tpBtf("kfree_skb");
  if (!tp.ok) {
    const raw = rawTracepoint();
    if (!raw.ok) return `drops: tp_btf/kfree_skb ${tp.why}; raw_tracepoint ${raw.why}`;
  }
  return undefined;
}

/** The taps, opened (pinned under the node's directory where bpffs is mounted), or why not. */
function openTaps(o: ObservingOptions): { taps: BpfTaps; pinned: boolean } | { why: string } {
  const missing = ebpfMissing();
  if (missing) return { why: missing };
  const fs = ensureMounted(BPFFS);
  if (fs.ok && fs.mounted) {
    noteMounted(o.paths, BPFFS);
    o.log.info({ at: fs.at }, "mounted bpffs (it was not mounted): the agent's eBPF programs and flows are pinned there");
  }
  const dir = nodePinDir(o.node);
  const pinned = bpffsMounted(dir);
  if (!pinned) o.log.warn({ why: fs.ok ? "not on bpffs" : fs.why, fix: BPFFS.fix }, "eBPF objects are not pinned: a restarted agent starts its flows afresh");
  let flows: BpfFlowTap | undefined;
  try {
    flows = BpfFlowTap.open({ ...(pinned ? { pinDir: dir } : {}), config: { vxlanPorts: [o.vxlanPort] } });
    const drops = BpfDropTap.open({ symbols: true });
    for (const w of [...flows.warnings, ...drops.warnings]) o.log.warn({ warning: w }, "eBPF object loaded differently");
    return { taps: { flows, drops }, pinned };
  } catch (e) {
    flows?.close({ keepPins: true });
    return { why: (e as Error).message };
  }
}

/**
 * `gauze uninstall`, `--uninstall` and the lab's down: every program, link and map this node's
 * agents pinned (the links detached first); what was removed, in words.
 */
export function removeObserverPins(node: string, netns?: string): string[] {
  const dir = nodePinDir(node);
  if (!bpffsMounted(dir)) return [];
  const out = removeTapPins(dir, netns);
  out.push(...removeFlatPins(dirname(dir)));
  // The node's directory too, once nothing else of gauze's is pinned in it.
  try { rmdirSync(dirname(dir)); } catch { /* not empty, or not there */ }
  return out;
}

/** The first layout (a few hours of this branch): the observer's pins straight in the node's directory. */
function removeFlatPins(nodeDir: string): string[] {
  if (!existsSync(join(nodeDir, "flows"))) return [];
  const out: string[] = [];
  for (const rel of listPins(nodeDir)) {
    if (!/^(config|flows|events|links\/tcx-\d+-(ingress|egress))$/.test(rel)) continue;
    const path = join(nodeDir, rel);
    const l = rel.startsWith("links/") ? BpfLink.fromPin(path) : undefined;
    if (l) {
      try { l.detach(); } catch { /* defunct */ }
      l.close();
    }
    if (unpin(path)) out.push(`pin ${path}`);
  }
  try { rmdirSync(join(nodeDir, "links")); } catch { /* not empty, or not there */ }
  return out;
}

function removeTapPins(dir: string, netns?: string): string[] {
  try {
    return BpfFlowTap.remove(dir, netns);
  } catch {
    // The node's namespace is gone already: its links went with it; the pins are what is left.
    for (const rel of listPins(dir)) {
      const l = rel.startsWith("links/") ? BpfLink.fromPin(join(dir, rel)) : undefined;
      if (!l) continue;
      try { l.detach(); } catch { /* defunct */ }
      l.close();
    }
    return removePins(dir).map((p) => `pin ${p}`);
  }
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
  let seen = { packets: 0, lost: 0 };
  const mode = o.mode ?? "auto";
  let bpf: BpfTaps | undefined;
  if (mode !== "ring") {
    const r = openTaps(o);
    if ("taps" in r) {
      bpf = r.taps;
      features.ebpf = { on: true };
      o.log.info({ pinned: r.pinned ? nodePinDir(o.node) : false, attach: r.taps.flows.mode, drops: r.taps.drops.mode }, "observing with eBPF");
    } else if (mode === "ebpf") {
      const problem = `--observer ebpf: ${r.why}`;
      o.log.warn({ err: problem, fix: EBPF_FIX }, "flows are not observed on this node");
      features.flows = { on: false, why: problem, fix: EBPF_FIX };
      features.drops = { on: false, why: "flows are not observed" };
      features.ebpf = { on: false, why: r.why, fix: EBPF_FIX };
      setFeatureMetrics(o.metrics, features);
      return { problem, features };
    } else {
      // Said once here (and by the feature: /metrics, the API, observe, doctor); the ring works on.
      features.ebpf = { on: false, why: `${r.why}; observing with the packet ring and tracefs instead`, fix: EBPF_FIX };
      o.log.warn({ feature: "ebpf", why: r.why, fix: EBPF_FIX }, "eBPF is not available: observing with the packet ring and tracefs");
    }
  } else {
    // A choice, not a fault: off in /metrics, not a warning.
    o.metrics.feature.set({ feature: "ebpf" }, 0);
  }
  // The packet ring's drops need tracefs; the eBPF path does not.
  const trace = bpf ? { ok: true as const, mounted: false, at: "" } : ensureMounted(TRACEFS);
  if (trace.ok && trace.mounted) {
    noteMounted(o.paths, TRACEFS);
    o.log.info({ at: trace.at }, "mounted tracefs (it was not mounted): the kernel's drop events need it");
  }
  const observer = new FlowObserver({
    node: o.node, underlay: o.underlay, bridge: o.bridge, podRecords: o.paths.podRecords, vxlanPorts: [o.vxlanPort], log: o.log, ...(o.judge ? { judge: o.judge } : {}),
    onDrop: (reason, point) => o.metrics.drops.inc({ reason, point }),
    onStats: (st) => {
      o.metrics.packetsObserved.inc(st.packets - seen.packets);
      o.metrics.observerLost.inc(st.lost - seen.lost);
      o.metrics.observerSampling.set(st.sampling);
      seen = { packets: st.packets, lost: st.lost };
    },
    ...(bpf ? { bpf } : {}),
  }, o.nl);
  try {
    observer.start();
  } catch (e) {
    observer.stop({ keepPins: true });
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
