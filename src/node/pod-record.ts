// What the node's agent needs to name a pod's traffic: the plugin leaves, per attachment, the
// pod's name and namespace (from the runtime's CNI_ARGS), its addresses, its host-side interface
// and its network namespace, in <dir of the subnet file>/pods/, and DEL takes it away. Flows
// then say "default/web-1:80" instead of an address. Informational: a record that cannot be
// written never fails an ADD. A contract of the node between the plugin (writer) and the agent
// (reader), so it lives below both.
import { dirname, join } from "node:path";
import { listDir, makeDirs, readText, removeFile, writeText } from "../kernel/files.ts";
import { isNamespaceName, isPodName } from "../util/text.ts";

export interface PodRecord {
  pod?: string;
  namespace?: string;
  containerId: string;
  ifname: string;
  netns: string;
  /** Addresses with their prefix length, as in the CNI result. */
  ips: string[];
  /** The host end of the pod's veth (bridge mode); absent for macvlan. */
  hostIface?: string;
  /** The pod's interface MAC: the eBPF datapath's endpoint entry carries it. */
  podMac?: string;
}

/** Where the records of the node whose subnet file this is live. */
export function podRecordDir(subnetFile: string): string {
  return join(dirname(subnetFile), "pods");
}

function recordPath(dir: string, containerId: string, ifname: string): string {
  return join(dir, `${containerId}-${ifname}.json`);
}

/** Records name pods and their addresses: root's alone (the directory 0700, each record 0600). */
export function writePodRecord(dir: string, r: PodRecord): void {
  try {
    makeDirs(dir, 0o700);
    writeText(recordPath(dir, r.containerId, r.ifname), JSON.stringify(r) + "\n", { mode: 0o600 });
  } catch {
    // the agent names this pod's traffic by address instead
  }
}

/** The records of attachments not in `keep` (keys "containerId-ifname") go; returns how many. */
export function gcPodRecords(dir: string, keep: Set<string>): number {
  let n = 0;
  let files: string[];
  try {
    files = listDir(dir);
  } catch {
    return 0; // no records yet
  }
  for (const f of files) {
    if (!f.endsWith(".json") || keep.has(f.slice(0, -".json".length))) continue;
    try {
      if (removeFile(join(dir, f))) n++;
    } catch {
      // gone already
    }
  }
  return n;
}

export function removePodRecord(dir: string, containerId: string, ifname: string): void {
  try {
    removeFile(recordPath(dir, containerId, ifname));
  } catch {
    // nothing to remove
  }
}

/**
 * Every readable record (one being written, or not ours, is skipped). A record is input (an
 * older plugin, a hand): a name Kubernetes would refuse is left out, and the pod goes by address.
 */
export function readPodRecords(dir: string): PodRecord[] {
  let files: string[] = [];
  try {
    files = listDir(dir).filter((f) => f.endsWith(".json"));
  } catch {
    return []; // no pods yet
  }
  const out: PodRecord[] = [];
  for (const f of files) {
    try {
      const r = JSON.parse(readText(join(dir, f))) as PodRecord;
      if (typeof r !== "object" || r === null || typeof r.containerId !== "string" || !Array.isArray(r.ips)) continue;
      if (r.pod !== undefined && !isPodName(r.pod)) delete r.pod;
      if (r.namespace !== undefined && (!isNamespaceName(r.namespace) || r.pod === undefined)) delete r.namespace;
      out.push(r);
    } catch {
      // a record being written, or not ours: skipped
    }
  }
  return out;
}
