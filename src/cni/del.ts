// DEL: forgiving and idempotent. It works from (container ID, ifname) alone, because containerd
// calls it a second time with CNI_NETNS="" and no prevResult. "Already gone" is success; other
// failures are collected so that cleanup goes on past the first one.
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import { ipamDel } from "./ipam.ts";
import { podRecordDir, removePodRecord } from "../node/pod-record.ts";
import { delLink, withRtnl } from "../kernel/netlink/index.ts";
import { statPath } from "../kernel/files.ts";
import { deleteVeth, hostVethName } from "../dataplane/veth.ts";
import { removeMasquerade } from "../dataplane/masquerade.ts";
import { detachDatapath } from "./datapath.ts";

export async function cmdDel(env: CniEnv, conf: NetConf): Promise<void> {
  const problems: string[] = [];
  try {
    await ipamDel(conf, env);
  } catch (e) {
    problems.push(`releasing the address: ${(e as Error).message}`);
  }
  if (conf.mode === "macvlan") {
    // The pod's macvlan lives only in its namespace: gone with it, or deleted here while it exists.
    if (env.netns && statPath(env.netns)) {
      try {
        withRtnl({ netns: env.netns }, (nl) => { nl.apply([delLink(env.ifname)]); });
      } catch (e) {
        problems.push(`removing ${env.ifname}: ${(e as Error).message}`);
      }
    }
  } else {
    try {
      // The eBPF datapath's entries are found by the veth's ifindex: read before the veth goes.
      if (conf.datapath) {
        const host = hostVethName(env.containerId, env.ifname);
        const ifindex = withRtnl({}, (nl) => nl.link(host)?.index);
        problems.push(...detachDatapath(conf.datapath, host, ifindex));
      }
      // Deleting the host end removes the pod end too, whether or not the namespace still exists.
      withRtnl({}, (nl) => deleteVeth(nl, hostVethName(env.containerId, env.ifname)));
    } catch (e) {
      problems.push(`removing the veth: ${(e as Error).message}`);
    }
  }
  if (conf.ipMasq) {
    try {
      removeMasquerade(conf.name, env.containerId);
    } catch (e) {
      problems.push(`removing masquerade rules: ${(e as Error).message}`);
    }
  }
  if (conf.agentManaged) removePodRecord(podRecordDir(conf.subnetFile), env.containerId, env.ifname);
  if (problems.length) {
    throw new CniError(CniCode.IoFailure, `DEL ${env.containerId}/${env.ifname} incomplete: ${problems.join("; ")}`, "DEL is safe to retry");
  }
}
