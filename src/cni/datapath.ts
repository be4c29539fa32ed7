// The plugin's part of the eBPF datapath (the conflist's "datapath" block, written by the agent
// while the datapath runs): at ADD the pod's addresses go into the endpoints map (host veth
// ifindex, the pod's MAC, the bridge's MAC) and from_pod onto the host veth's ingress, both from
// the pins the agent made, so the plugin never loads or verifies a program; at DEL both go
// (the entries found by the veth's ifindex, so DEL needs no prevResult); CHECK names a missing
// program or entry as drift. Addressing and the result are the classic datapath's: only how
// packets move changes.
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import type { Rtnl } from "../kernel/netlink/index.ts";
import { BpfDatapath, DatapathError } from "../kernel/bpf/datapath.ts";
import { endpointsFor } from "../dataplane/ebpf-datapath.ts";

type Block = NonNullable<NetConf["datapath"]>;

const bare = (a: string) => (a.includes("/") ? a.slice(0, a.indexOf("/")) : a);

function fail(e: unknown): never {
  if (e instanceof DatapathError) throw new CniError(CniCode.IoFailure, e.message, e.fix);
  throw new CniError(CniCode.IoFailure, `eBPF datapath: ${(e as Error).message}`, "the node's agent reports why in its log and in gauze doctor");
}

/** Entries and program for a new attachment; returns its undo. */
export function attachDatapath(d: Block, nl: Rtnl, hostIface: string, ips: readonly string[], podMac: string, gwMac: string): () => void {
  const veth = nl.link(hostIface);
  if (!veth) throw new CniError(CniCode.IoFailure, `host veth ${hostIface} vanished before the eBPF datapath could attach to it`);
  const o = { pinDir: d.pinDir };
  try {
    const eps = BpfDatapath.endpointsPinned(d.pinDir);
    try {
      for (const [ip, e] of endpointsFor([{ ips, ifindex: veth.index, mac: podMac, gwMac }])) eps.map.update(ip, e);
    } finally {
      eps.close();
    }
    BpfDatapath.attachPod(o, hostIface, veth.index);
  } catch (e) {
    detachDatapath(d, hostIface, veth.index);
    fail(e);
  }
  return () => detachDatapath(d, hostIface, veth.index);
}

/** Forgiving, as DEL is: the program off the veth, every entry pointing at it gone. */
export function detachDatapath(d: Block, hostIface: string, ifindex: number | undefined): string[] {
  const problems: string[] = [];
  try {
    BpfDatapath.detachPod({ pinDir: d.pinDir }, hostIface, ifindex);
  } catch (e) {
    problems.push(`detaching from_pod from ${hostIface}: ${(e as Error).message}`);
  }
  if (ifindex === undefined || !BpfDatapath.loaded(d.pinDir)) return problems;
  try {
    const eps = BpfDatapath.endpointsPinned(d.pinDir);
    try {
      for (const [ip, e] of [...eps.map.entries()]) if (e.ifindex === ifindex) eps.map.delete(ip);
    } finally {
      eps.close();
    }
  } catch (e) {
    problems.push(`removing the endpoint entries of ${hostIface}: ${(e as Error).message}`);
  }
  return problems;
}

/** Drift, one line each: the program not on the veth, an address without its entry. */
export function checkDatapath(d: Block, nl: Rtnl, hostIface: string, ips: readonly string[]): string[] {
  const veth = nl.link(hostIface);
  if (!veth) return []; // named already: the veth is missing
  const problems: string[] = [];
  try {
    if (!BpfDatapath.podAttached({ pinDir: d.pinDir }, veth.index)) problems.push(`eBPF datapath: from_pod is not attached to ${hostIface} (drift: the agent puts it back within a second; or DEL and ADD)`);
    const eps = BpfDatapath.endpointsPinned(d.pinDir);
    try {
      for (const a of ips) {
        const e = eps.map.lookup(bare(a));
        if (!e || e.ifindex !== veth.index) problems.push(`eBPF datapath: no endpoint entry for ${bare(a)} on ${hostIface} (drift)`);
      }
    } finally {
      eps.close();
    }
  } catch (e) {
    problems.push(`eBPF datapath: ${(e as Error).message}`);
  }
  return problems;
}
