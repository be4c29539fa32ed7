// The plugin's IPAM front: built-in host-local-compatible allocation on disk, or delegation to
// another IPAM plugin. Each verb takes the store's lock for the whole operation, as host-local does.
import { lockFile } from "../kernel/files.ts";
import { DiskStore } from "../ipam/disk-store.ts";
import { AllocationError, allocate } from "../ipam/allocator.ts";
import { type IP, formatIP, parseCIDR } from "../net/cidr.ts";
import { rangeSetCapacity, rangeSetFind, rangeSetToString } from "../ipam/range.ts";
import { execDelegate } from "./ipam-delegate.ts";
import { CniCode, CniError } from "./errors.ts";
import type { BuiltinIpam, NetConf } from "./config.ts";
import type { CniEnv } from "./env.ts";
import type { CniIPConfig, CniResult } from "./result.ts";

async function withStore<T>(ipam: BuiltinIpam, network: string, fn: (s: DiskStore) => T): Promise<T> {
  let store: DiskStore;
  try {
    store = DiskStore.open(ipam.dataDir, network);
  } catch (e) {
    throw new CniError(CniCode.IoFailure, `IPAM directory ${ipam.dataDir}/${network}: ${(e as Error).message}`, "check ipam.dataDir: a root-owned directory on a writable file system", { cause: e });
  }
  const lock = lockFile(store.lockPath);
  try {
    return fn(store);
  } finally {
    lock.release();
  }
}

function requireIpam(conf: NetConf): NetConf["ipam"] {
  if (conf.ipamProblem) throw conf.ipamProblem;
  return conf.ipam;
}

export interface IpamAddResult {
  result: CniResult;
  /** Undoes the allocation (for rollback of a failed ADD). */
  undo: () => Promise<void>;
}

export async function ipamAdd(conf: NetConf, env: CniEnv): Promise<IpamAddResult> {
  const ipam = requireIpam(conf);
  if (ipam.kind === "delegate") {
    const result = execDelegate(ipam.type, "ADD", conf.rawText, env.path)!;
    return { result, undo: async () => { execDelegate(ipam.type, "DEL", conf.rawText, env.path); } };
  }
  const ips: CniIPConfig[] = await withStore(ipam, conf.name, (store) => {
    const got: IP[] = [];
    try {
      for (const req of ipam.requested) {
        if (!ipam.rangeSets.some((s) => rangeSetFind(s, req))) {
          throw new AllocationError(`requested IP ${formatIP(req)} is in none of the configured ranges`, "invalid");
        }
      }
      return ipam.rangeSets.map((set, i) => {
        const req = ipam.requested.find((r) => rangeSetFind(set, r));
        const a = allocate(store, set, String(i), env.containerId, env.ifname, req);
        got.push(a.ip);
        const range = set[a.rangeIndex]!;
        return { address: `${formatIP(a.ip)}/${range.subnet.bits}`, gateway: formatIP(range.gateway) };
      });
    } catch (e) {
      for (const ip of got) store.release(ip);
      throw allocationToCni(e);
    }
  });
  return {
    result: { cniVersion: conf.cniVersion, ips, routes: ipam.routes },
    undo: () => withStore(ipam, conf.name, (store) => {
      for (const ip of ips) store.release(parseCIDR(ip.address)!.host);
    }),
  };
}

function allocationToCni(e: unknown): unknown {
  if (!(e instanceof AllocationError)) return e;
  switch (e.reason) {
    case "exhausted":
      return new CniError(CniCode.TryAgainLater, e.message, "every address is reserved: delete unused pods, run GC, or widen ipam.ranges");
    case "duplicate":
      return new CniError(CniCode.InvalidEnv, e.message, "the runtime called ADD twice for one CNI_CONTAINERID/CNI_IFNAME");
    case "unavailable":
      return new CniError(CniCode.TryAgainLater, e.message, "another container holds the requested address");
    case "invalid":
      return new CniError(CniCode.InvalidConfig, e.message, "request an address inside ipam.ranges that is not a gateway");
  }
}

/** Releases the attachment's addresses; idempotent. Returns the released addresses. */
export async function ipamDel(conf: NetConf, env: CniEnv): Promise<IP[]> {
  const ipam = conf.ipam;
  if (ipam.kind === "delegate") {
    execDelegate(ipam.type, "DEL", conf.rawText, env.path);
    return [];
  }
  return withStore(ipam, conf.name, (store) => store.releaseByAttachment(env.containerId, env.ifname));
}

/** CHECK: every address of prevResult must be reserved for this attachment. */
export async function ipamCheck(conf: NetConf, env: CniEnv, addresses: IP[]): Promise<string[]> {
  const ipam = requireIpam(conf);
  if (ipam.kind === "delegate") {
    execDelegate(ipam.type, "CHECK", conf.rawText, env.path);
    return [];
  }
  return withStore(ipam, conf.name, (store) => {
    const held = new Set(store.getByAttachment(env.containerId, env.ifname).map(formatIP));
    return addresses.filter((a) => !held.has(formatIP(a))).map((a) => `address ${formatIP(a)} is not reserved for ${env.containerId}/${env.ifname} in ${store.dir}`);
  });
}

/** GC: releases every reservation whose attachment is not in the valid list. */
export async function ipamGc(conf: NetConf, env: CniEnv, valid: Set<string>): Promise<string[]> {
  const ipam = conf.ipam;
  if (ipam.kind === "delegate") {
    execDelegate(ipam.type, "GC", conf.rawText, env.path);
    return [];
  }
  return withStore(ipam, conf.name, (store) => {
    store.sweepTemps();
    const released: string[] = [];
    for (const r of store.list()) {
      if (valid.has(attachmentKey(r.containerId, r.ifname))) continue;
      store.release(r.ip);
      released.push(formatIP(r.ip));
    }
    return released;
  });
}

export function attachmentKey(containerId: string, ifname: string): string {
  return `${containerId}\u0000${ifname}`;
}

/** STATUS: can an ADD get an address right now? */
export async function ipamStatus(conf: NetConf, env: CniEnv): Promise<void> {
  const ipam = conf.ipam;
  if (conf.ipamProblem) throw new CniError(CniCode.PluginNotAvailable, conf.ipamProblem.message, conf.ipamProblem.details);
  if (ipam.kind === "delegate") {
    execDelegate(ipam.type, "STATUS", conf.rawText, env.path);
    return;
  }
  await withStore(ipam, conf.name, (store) => {
    const held = store.list();
    ipam.rangeSets.forEach((set) => {
      const used = BigInt(held.filter((r) => rangeSetFind(set, r.ip)).length);
      if (used >= rangeSetCapacity(set)) {
        throw new CniError(CniCode.PluginNotAvailable, `no free address in range set ${rangeSetToString(set)} (${used} reserved)`,
          "delete unused pods, run GC, or widen ipam.ranges");
      }
    });
  });
}
