// GC (SPEC 1.1.0): everything of this network that is not in cni.dev/valid-attachments goes:
// address reservations, host veths on our bridge with the gz prefix, masquerade chains.
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import { attachmentKey, ipamGc } from "../ipam/ipam.ts";
import { type IpLink, IpError, ip, ipBatch } from "../kernel/ip.ts";
import { HOST_VETH_PREFIX, hostVethName } from "../dataplane/veth.ts";
import { masqChain, removeMasquerade } from "../dataplane/masquerade.ts";
import { runSync } from "../kernel/spawn.ts";

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
  let ports: IpLink[] = [];
  try {
    ports = ip(["link", "show", "master", conf.bridge]) as IpLink[];
  } catch (e) {
    if (!(e instanceof IpError && e.isNotFound)) throw e;
  }
  const removedVeths = ports.map((p) => p.ifname).filter((n) => n.startsWith(HOST_VETH_PREFIX) && !keepVeths.has(n));
  if (removedVeths.length) {
    try {
      ipBatch(removedVeths.map((n) => ["link", "del", "dev", n]));
    } catch (e) {
      if (!(e instanceof IpError && e.isNotFound)) throw e;
    }
  }
  if (conf.ipMasq) gcMasquerade(conf.name, new Set(valid.map((a) => masqChain(conf.name, a.containerId))));
  return { releasedAddresses, removedVeths };
}

function gcMasquerade(network: string, keepChains: Set<string>): void {
  const save = runSync(["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"]);
  if (save.status !== 0) return;
  const prefix = `gauze:${network}:`;
  for (const line of save.stdout.split("\n")) {
    const m = /--comment "?([^" ]+)"? -j (GZ-[0-9A-F]+)$/.exec(line);
    if (!m || !m[1]!.startsWith(prefix) || keepChains.has(m[2]!)) continue;
    removeMasquerade(network, m[1]!.slice(prefix.length));
  }
}
