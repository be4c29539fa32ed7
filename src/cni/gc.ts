// GC (SPEC 1.1.0): everything of this network that is not in cni.dev/valid-attachments goes:
// address reservations, host veths on the bridge whose alias names this network, masquerade
// chains, and the pod records left for the agent.
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import { attachmentKey, ipamGc } from "./ipam.ts";
import { withRtnl } from "../kernel/netlink/index.ts";
import { HOST_VETH_PREFIX, deleteVeth, hostVethName, vethNetwork } from "../dataplane/veth.ts";
import { masqueradedContainers, removeMasquerade } from "../dataplane/masquerade.ts";
import { gcPodRecords, podRecordDir } from "../node/pod-record.ts";

export interface GcReport {
  releasedAddresses: string[];
  removedVeths: string[];
}

export async function cmdGc(env: CniEnv, conf: NetConf): Promise<GcReport> {
  const valid = conf.validAttachments;
  if (!valid) {
    throw new CniError(CniCode.InvalidConfig, "GC needs cni.dev/valid-attachments in the config", "the runtime lists the attachments that must survive");
  }
  const validKeys = new Set(valid.map((a) => attachmentKey(a.containerId, a.ifname)));
  const releasedAddresses = await ipamGc(conf, env, validKeys);

  const keepVeths = new Set(valid.map((a) => hostVethName(a.containerId, a.ifname)));
  const removedVeths = withRtnl({}, (nl) => {
    const bridge = nl.link(conf.bridge);
    if (!bridge) return [];
    // Only this network's veths: another gauze network may share the bridge.
    const stale = nl.links(bridge).filter((p) => p.name.startsWith(HOST_VETH_PREFIX) && vethNetwork(p.alias) === conf.name && !keepVeths.has(p.name));
    return stale.map((p) => p.name).filter((n) => deleteVeth(nl, n));
  });
  if (conf.agentManaged) gcPodRecords(podRecordDir(conf.subnetFile), new Set(valid.map((a) => `${a.containerId}-${a.ifname}`)));
  if (conf.ipMasq) {
    const keep = new Set(valid.map((a) => a.containerId));
    for (const id of masqueradedContainers(conf.name)) if (!keep.has(id)) removeMasquerade(conf.name, id);
  }
  return { releasedAddresses, removedVeths };
}
