// CHECK: compares what prevResult says against the kernel and the IPAM store, and fails with
// one line per difference (interface, address, route, host veth, reservation).
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import { ipamCheck } from "../ipam/ipam.ts";
import { type IpLink, type IpRoute, IpError, ip, ipBatch } from "../kernel/ip.ts";
import { hostVethName } from "../dataplane/veth.ts";
import { readLinkWithAddrs } from "../dataplane/bridge.ts";
import { formatPrefix, parseCIDR, parseIP, ipEqual } from "../ipam/cidr.ts";

export async function cmdCheck(env: CniEnv, conf: NetConf): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) throw new CniError(CniCode.InvalidConfig, "CHECK needs prevResult in the config", "the runtime passes the result of ADD as prevResult");
  const problems: string[] = [];

  const sandboxIdx = (prev.interfaces ?? []).findIndex((i) => i.sandbox !== undefined && i.name === env.ifname);
  const sandboxIf = prev.interfaces?.[sandboxIdx];
  let podLink: IpLink | undefined;
  let routes: IpRoute[] = [];
  try {
    const [links, r4] = ipBatch([["addr", "show", "dev", env.ifname], ["route", "show"]], { netns: env.netns }) as [IpLink[], IpRoute[]];
    podLink = links[0];
    routes = r4;
    if ((prev.ips ?? []).some((i) => i.address.includes(":"))) routes = routes.concat(ip(["-6", "route", "show"], { netns: env.netns }) as IpRoute[]);
  } catch (e) {
    if (e instanceof IpError && e.isNotFound) problems.push(`interface ${env.ifname} does not exist in ${env.netns}`);
    else throw new CniError(CniCode.IoFailure, `reading ${env.netns}: ${(e as Error).message}`);
  }
  if (podLink) {
    if (!(podLink.flags ?? []).includes("UP")) problems.push(`interface ${env.ifname} is down`);
    if (sandboxIf?.mac && podLink.address?.toLowerCase() !== sandboxIf.mac.toLowerCase()) {
      problems.push(`interface ${env.ifname} has MAC ${podLink.address}, prevResult says ${sandboxIf.mac}`);
    }
    const have = new Set((podLink.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    for (const ipc of prev.ips ?? []) {
      const c = parseCIDR(ipc.address)!;
      if (!have.has(`${formatIPText(ipc.address)}/${c.prefix.bits}`)) problems.push(`address ${ipc.address} is missing from ${env.ifname}`);
    }
    for (const r of prev.routes ?? []) {
      if (!routes.some((k) => routeMatches(k, r.dst, r.gw))) problems.push(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing in the pod`);
    }
  }

  const hostName = hostVethName(env.containerId, env.ifname);
  const hostLink = readLinkWithAddrs(hostName);
  if (!hostLink) problems.push(`host veth ${hostName} does not exist`);
  else if (hostLink.master !== conf.bridge) problems.push(`host veth ${hostName} is attached to ${hostLink.master ?? "nothing"}, not ${conf.bridge}`);

  const addresses = (prev.ips ?? []).map((i) => parseCIDR(i.address)!.host);
  problems.push(...(await ipamCheck(conf, env, addresses)));

  if (problems.length) {
    throw new CniError(CniCode.CheckFailed, `CHECK ${env.containerId}/${env.ifname}: ${problems.join("; ")}`, "DEL and ADD the attachment again to repair it");
  }
}

function formatIPText(cidr: string): string {
  return cidr.slice(0, cidr.indexOf("/"));
}

function routeMatches(k: IpRoute, dst: string, gw: string | undefined): boolean {
  const want = parseCIDR(dst)!;
  const kdst = k.dst === "default" ? (want.host.family === 4 ? "0.0.0.0/0" : "::/0") : k.dst.includes("/") ? k.dst : `${k.dst}/${want.host.family === 4 ? 32 : 128}`;
  const have = parseCIDR(kdst);
  if (!have || formatPrefix(have.prefix) !== formatPrefix(want.prefix)) return false;
  if (!gw) return true;
  const g1 = parseIP(gw);
  const g2 = k.gateway ? parseIP(k.gateway) : undefined;
  return !!g1 && !!g2 && ipEqual(g1, g2);
}
