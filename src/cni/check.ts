// CHECK: compares what prevResult says against the kernel and the IPAM store, and fails with
// one line per difference (interface, address, route, host veth, reservation).
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import { ipamCheck } from "./ipam.ts";
import { type Route, Rtnl, withRtnl } from "../kernel/netlink/index.ts";
import { hostVethName } from "../dataplane/veth.ts";
import { formatPrefix, parseCIDR, parseIP, ipEqual } from "../net/cidr.ts";
import { checkDatapath } from "./datapath.ts";

export async function cmdCheck(env: CniEnv, conf: NetConf): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) throw new CniError(CniCode.InvalidConfig, "CHECK needs prevResult in the config", "the runtime passes the result of ADD as prevResult");
  const problems: string[] = [];

  const sandboxIf = (prev.interfaces ?? []).find((i) => i.sandbox !== undefined && i.name === env.ifname);
  let pod: Rtnl;
  try {
    pod = Rtnl.open({ netns: env.netns });
  } catch (e) {
    throw new CniError(CniCode.IoFailure, `reading ${env.netns}: ${(e as Error).message}`);
  }
  try {
    const podLink = pod.link(env.ifname);
    if (!podLink) {
      problems.push(`interface ${env.ifname} does not exist in ${env.netns}`);
    } else {
      if (!podLink.up) problems.push(`interface ${env.ifname} is down`);
      if (conf.mode === "macvlan" && podLink.kind !== "macvlan") problems.push(`interface ${env.ifname} is a ${podLink.kind ?? "plain"} link, not a macvlan`);
      if (sandboxIf?.mac && podLink.mac?.toLowerCase() !== sandboxIf.mac.toLowerCase()) {
        problems.push(`interface ${env.ifname} has MAC ${podLink.mac}, prevResult says ${sandboxIf.mac}`);
      }
      const have = new Set(pod.addrs(podLink).map((a) => `${a.address}/${a.prefixLen}`));
      for (const ipc of prev.ips ?? []) {
        const c = parseCIDR(ipc.address);
        if (!c || !have.has(`${formatIPText(ipc.address)}/${c.prefix.bits}`)) problems.push(`address ${ipc.address} is missing from ${env.ifname}`);
      }
      const families = new Set((prev.routes ?? []).map((r) => (r.dst.includes(":") ? 6 : 4) as 4 | 6));
      const routes: Route[] = [...families].flatMap((f) => pod.routes(f));
      for (const r of prev.routes ?? []) {
        if (!routes.some((k) => routeMatches(k, r.dst, r.gw))) problems.push(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing in the pod`);
      }
    }
  } catch (e) {
    throw new CniError(CniCode.IoFailure, `reading ${env.netns}: ${(e as Error).message}`);
  } finally {
    pod.close();
  }

  const hostName = hostVethName(env.containerId, env.ifname);
  if (conf.mode !== "macvlan") withRtnl({}, (nl) => {
    const hostLink = nl.link(hostName);
    const bridge = nl.link(conf.bridge);
    if (!hostLink) problems.push(`host veth ${hostName} does not exist`);
    else if (!bridge || hostLink.master !== bridge.index) {
      const master = hostLink.master ? nl.linkByIndex(hostLink.master)?.name : undefined;
      problems.push(`host veth ${hostName} is attached to ${master ?? "nothing"}, not ${conf.bridge}`);
    }
    if (conf.datapath) problems.push(...checkDatapath(conf.datapath, nl, hostName, (prev.ips ?? []).map((i) => i.address)));
  });

  const addresses = (prev.ips ?? []).map((i) => parseCIDR(i.address)!.host);
  problems.push(...(await ipamCheck(conf, env, addresses)));

  if (problems.length) {
    throw new CniError(CniCode.CheckFailed, `CHECK ${env.containerId}/${env.ifname}: ${problems.join("; ")}`, "DEL and ADD the attachment again to repair it");
  }
}

function formatIPText(cidr: string): string {
  return cidr.slice(0, cidr.indexOf("/"));
}

function routeMatches(k: Route, dst: string, gw: string | undefined): boolean {
  const want = parseCIDR(dst);
  const have = parseCIDR(k.dst);
  if (!want || !have || formatPrefix(have.prefix) !== formatPrefix(want.prefix)) return false;
  if (!gw) return true;
  const g1 = parseIP(gw);
  const g2 = k.gateway ? parseIP(k.gateway) : undefined;
  return !!g1 && !!g2 && ipEqual(g1, g2);
}
