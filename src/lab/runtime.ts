// A container runtime stand-in that behaves like containerd + libcni on one lab node: it loads
// the lexicographically first valid *.conflist / *.conf / *.json in the node's net.d, finds
// plugins in the node's bin dir, runs the chain inside the node's namespace with the CNI_* env
// kubelet's runtime sets, caches each ADD result for DEL and CHECK, and reports
// NetworkReady=false with the message Kubernetes users see when there is no config.
import { accessSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type NetworkList, loadNetwork as loadConfDir } from "../node/conf-dir.ts";
import { join } from "node:path";
import { runSync } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import type { LabNode } from "./state.ts";

export interface NodeRuntime {
  nodeNetns: string;
  confDir: string;
  binDir: string;
  cacheDir: string;
  /**
   * Manifest mode: the node's tree stands for its root filesystem, so host paths a config names
   * (the subnet file, the IPAM data dir, as the agent in its container wrote them) are read under it.
   */
  hostRoot?: string;
}

/** Plugin config fields that name files on the node, and the defaults the gauze plugin uses for them. */
const HOST_PATH_FIELDS: Record<string, string | undefined> = { subnetFile: "/run/gauze/subnet.env", dataDir: "/var/lib/cni/networks" };

function underRoot(conf: Record<string, unknown>, root: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...conf };
  for (const [k, dflt] of Object.entries(HOST_PATH_FIELDS)) {
    const v = typeof conf[k] === "string" ? (conf[k] as string) : conf.type === "gauze" ? dflt : undefined;
    if (v?.startsWith("/")) out[k] = root + v;
  }
  if (conf.ipam && typeof conf.ipam === "object") out.ipam = underRoot(conf.ipam as Record<string, unknown>, root);
  return out;
}

/** A lab node's runtime: its namespace, net.d, bin dir and result cache (manifest mode: host paths under its tree). */
export function runtimeFor(n: LabNode): NodeRuntime {
  return { nodeNetns: netnsPath(n.netns), confDir: join(n.root, "etc/cni/net.d"), binDir: join(n.root, "opt/cni/bin"), cacheDir: join(n.root, "var/lib/cni/results"), ...(n.hostPaths ? { hostRoot: n.root } : {}) };
}

export class RuntimeError extends Error {}

/** The config the runtime uses; a RuntimeError (the NotReady message) when there is none. */
export function loadNetwork(rt: NodeRuntime): NetworkList {
  try {
    return loadConfDir(rt.confDir);
  } catch (e) {
    throw new RuntimeError((e as Error).message);
  }
}

function findPlugin(rt: NodeRuntime, type: string): string {
  const p = join(rt.binDir, type);
  try {
    accessSync(p, constants.X_OK);
    return p;
  } catch {
    throw new RuntimeError(`failed to find plugin "${type}" in path [${rt.binDir}]`);
  }
}

export interface PodRef {
  name: string;
  namespace: string;
  uid: string;
  containerId: string;
  netns: string;
}

function exec(rt: NodeRuntime, list: NetworkList, plugin: Record<string, unknown>, verb: string, pod: PodRef, netnsPath: string, prevResult?: unknown): unknown {
  const type = String(plugin.type);
  const bin = findPlugin(rt, type);
  let conf: Record<string, unknown> = { cniVersion: list.cniVersion, name: list.name, ...plugin };
  if (rt.hostRoot) conf = underRoot(conf, rt.hostRoot);
  if (prevResult !== undefined) conf.prevResult = prevResult;
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    CNI_COMMAND: verb,
    CNI_CONTAINERID: pod.containerId,
    CNI_NETNS: netnsPath,
    CNI_IFNAME: "eth0",
    CNI_PATH: rt.binDir,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.containerId};K8S_POD_UID=${pod.uid}`,
  };
  const r = runSync([bin], { input: JSON.stringify(conf), env, netns: rt.nodeNetns });
  if (r.status !== 0) {
    let msg = r.stderr.trim() || `exit status ${r.status}`;
    try {
      const e = JSON.parse(r.stdout) as { msg?: string; details?: string };
      if (e.msg) msg = e.msg + (e.details ? `: ${e.details}` : "");
    } catch {
      // not error JSON
    }
    throw new RuntimeError(`plugin type="${type}" failed (${verb.toLowerCase()}): ${msg}`);
  }
  return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}

function cachePath(rt: NodeRuntime, net: string, pod: PodRef): string {
  return join(rt.cacheDir, `${net}-${pod.containerId}-eth0`);
}

/** Sets up the pod's network (the chain in order, each plugin getting the previous result). */
export function addPod(rt: NodeRuntime, pod: PodRef): { result: Record<string, unknown>; network: string } {
  const list = loadNetwork(rt);
  const netnsPath = `/run/netns/${pod.netns}`;
  let result: unknown;
  try {
    for (const p of list.plugins) result = exec(rt, list, p, "ADD", pod, netnsPath, result);
  } catch (e) {
    // As kubelet does after a failed sandbox set-up: tear down what may have been made.
    try { delPod(rt, pod, netnsPath, list); } catch { /* report the ADD error */ }
    throw e;
  }
  mkdirSync(rt.cacheDir, { recursive: true });
  writeFileSync(cachePath(rt, list.name, pod), JSON.stringify({ kind: "cniCacheV1", containerId: pod.containerId, ifName: "eth0", networkName: list.name, config: list, result }) + "\n");
  return { result: result as Record<string, unknown>, network: list.name };
}

/** Tears the pod's network down in reverse order, with the cached result; netns may be "" (gone). */
export function delPod(rt: NodeRuntime, pod: PodRef, netnsPath = `/run/netns/${pod.netns}`, list?: NetworkList): void {
  let cached: { config: NetworkList; result: unknown } | undefined;
  const l = list ?? (() => { try { return loadNetwork(rt); } catch { return undefined; } })();
  for (const name of l ? [l.name] : []) {
    try {
      cached = JSON.parse(readFileSync(cachePath(rt, name, pod), "utf8")) as { config: NetworkList; result: unknown };
    } catch {
      // no cached result: DEL without prevResult, as the spec allows
    }
  }
  const use = cached?.config ?? l;
  if (!use) return; // no config at all: nothing the runtime could call
  const errors: string[] = [];
  for (const p of [...use.plugins].reverse()) {
    try {
      exec(rt, use, p, "DEL", pod, netnsPath, cached?.result);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  rmSync(cachePath(rt, use.name, pod), { force: true });
  if (errors.length) throw new RuntimeError(errors.join("; "));
}

