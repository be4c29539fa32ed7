// What the agent leaves on the node for the plugin and the runtime: the subnet file (first), then
// the CNI conflist in net.d (last: its appearance is what makes the node Ready). Both written to a
// temp name and renamed, and not rewritten when nothing changed.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { writeAtomic } from "../kernel/files.ts";
import { formatSubnetEnv, parseSubnetEnv, type SubnetEnv } from "../node/subnet-file.ts";
import { loadNetwork } from "../node/conf-dir.ts";
import { CONFLIST_NAME, type NodePaths } from "../node/paths.ts";
import { formatPrefix, parseCIDR } from "../net/cidr.ts";
import type { PodAttachment } from "../backend/backend.ts";

/** Writes `text` to `path` atomically; false when the file already held exactly that. */
export function writeIfChanged(path: string, text: string): boolean {
  try {
    if (readFileSync(path, "utf8") === text) return false;
  } catch {
    // absent: write it
  }
  writeAtomic(path, text);
  return true;
}

export function writeSubnetFile(paths: NodePaths, env: SubnetEnv): boolean {
  return writeIfChanged(paths.subnetFile, formatSubnetEnv(env));
}

/** The subnet the last subnet file names (its SUBNET is gateway/len), if there is a readable one. */
export function previousSubnet(paths: NodePaths): string | undefined {
  try {
    const c = parseCIDR(parseSubnetEnv(readFileSync(paths.subnetFile, "utf8"), paths.subnetFile).subnet);
    return c ? formatPrefix(c.prefix) : undefined;
  } catch {
    return undefined; // none (a new node) or unreadable: lease whatever is free
  }
}

/** The eBPF datapath's block for the plugin (the agent's DatapathKeeper gives it while the datapath runs). */
export type DatapathBlock = { type: "ebpf"; pinDir: string };

export function conflistText(paths: NodePaths, bridge = "cni0", attachment?: PodAttachment, datapath?: DatapathBlock): string {
  const plugin = attachment
    ? { type: "gauze", mode: attachment.mode, master: attachment.master, subnetFile: paths.subnetFile, dataDir: paths.dataDir }
    : { type: "gauze", bridge, subnetFile: paths.subnetFile, dataDir: paths.dataDir, ...(datapath ? { datapath } : {}) };
  return JSON.stringify({ cniVersion: "1.0.0", name: "gauze", plugins: [plugin] }, null, 2) + "\n";
}

export function installConflist(paths: NodePaths, bridge = "cni0", attachment?: PodAttachment, datapath?: DatapathBlock): boolean {
  // The temp name must not end in .conflist/.conf, or a runtime could load it half-written.
  return writeIfChanged(join(paths.confDir, CONFLIST_NAME), conflistText(paths, bridge, attachment, datapath));
}

/**
 * Why the runtime would not use gauze's conflist although it is there: another valid config
 * sorts before it (a leftover of a previous CNI, such as 05-cilium.conflist), and runtimes take
 * the first. Undefined when gauze's is the one in use, or when there is none yet.
 */
export function foreignConfig(paths: NodePaths): string | undefined {
  let inUse: string;
  try {
    inUse = loadNetwork(paths.confDir).file;
  } catch {
    return undefined;
  }
  if (inUse === CONFLIST_NAME) return undefined;
  try {
    readFileSync(join(paths.confDir, CONFLIST_NAME));
  } catch {
    return undefined; // gauze's is not written yet: nothing is shadowed
  }
  return `the runtime uses ${join(paths.confDir, inUse)}, not ${CONFLIST_NAME}: it sorts first; remove it or move it out of ${paths.confDir} (a leftover of another CNI?)`;
}

/** Takes the conflist away (the runtime reports NetworkReady=false); true when there was one. */
export function removeConflist(paths: NodePaths): boolean {
  const p = join(paths.confDir, CONFLIST_NAME);
  try {
    rmSync(p);
    return true;
  } catch {
    return false;
  }
}

export function removeNodeFiles(paths: NodePaths): void {
  rmSync(join(paths.confDir, CONFLIST_NAME), { force: true });
  rmSync(paths.subnetFile, { force: true });
  rmSync(paths.statusFile, { force: true });
}
