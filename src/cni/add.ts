// ADD: address from IPAM, bridge (created on first use), veth pair with its peer created
// inside the pod's namespace, addresses and routes in the pod. Each side effect pushes its
// inverse onto an undo list that is unwound if anything later fails.
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import type { CniInterface, CniResult, CniRoute } from "./result.ts";
import { ipamAdd } from "../ipam/ipam.ts";
import { type IpCommand, type IpLink, IpError, ipBatch } from "../kernel/ip.ts";
import { ensureSysctl } from "../kernel/sysctl.ts";
import { bridgeCommands, readLinkWithAddrs, requireBridge, toleratedBridgeFailure } from "../dataplane/bridge.ts";
import { hostVethName, podCommands, vethHostCommands } from "../dataplane/veth.ts";
import { addMasquerade, removeMasquerade } from "../dataplane/masquerade.ts";
import { parseCIDR } from "../ipam/cidr.ts";
import { faultPoint } from "./fault.ts";
import { trace } from "../util/trace.ts";

const DEFAULT_MTU = 1500;

type Undo = () => void | Promise<void>;

export async function cmdAdd(env: CniEnv, conf: NetConf): Promise<CniResult> {
  const undo: Undo[] = [];
  let committed = false;
  try {
    const result = await addSteps(env, conf, undo);
    committed = true;
    return result;
  } finally {
    if (!committed) {
      for (const u of undo.reverse()) {
        try {
          await u();
        } catch {
          // keep unwinding: one failed undo must not leave the rest behind
        }
      }
    }
  }
}

async function addSteps(env: CniEnv, conf: NetConf, undo: Undo[]): Promise<CniResult> {
  // Reading the bridge costs a spawn: only needed when the MTU has to come from it. Otherwise
  // the host batch creates it tolerantly and its `show` output proves it is a bridge.
  const bridgeNow = conf.mtu === undefined ? readLinkWithAddrs(conf.bridge) : "unknown";
  if (bridgeNow && bridgeNow !== "unknown") requireBridge(conf.bridge, bridgeNow);
  const mtu = conf.mtu ?? (bridgeNow !== "unknown" ? bridgeNow?.mtu : undefined) ?? DEFAULT_MTU;
  trace("read bridge");

  const ipamResult = await ipamAdd(conf, env);
  undo.push(ipamResult.undo);
  trace("ipam");
  faultPoint("after-ipam");
  const ips = ipamResult.result.ips ?? [];
  if (ips.length === 0) throw new CniError(CniCode.IoFailure, "IPAM returned no address");

  if (conf.isGateway) {
    if (ips.some((i) => !i.address.includes(":"))) ensureSysctl("net.ipv4.ip_forward", "1");
    if (ips.some((i) => i.address.includes(":"))) ensureSysctl("net.ipv6.conf.all.forwarding", "1");
  }
  const gatewayCidrs = conf.isGateway
    ? ips.filter((i) => i.gateway).map((i) => `${i.gateway}/${parseCIDR(i.address)!.prefix.bits}`)
    : [];
  const hostName = hostVethName(env.containerId, env.ifname);
  const hostCommands = (bridge: IpLink | undefined | "unknown") => [
    ...bridgeCommands(bridge, { name: conf.bridge, mtu, gatewayCidrs }),
    ...vethHostCommands({ hostName, ifname: env.ifname, netnsPath: env.netns, mtu, bridge: conf.bridge, hairpin: conf.hairpinMode }),
    ["link", "show", "dev", hostName],
    ["link", "show", "dev", conf.bridge],
  ];
  // Registered before the batch: a batch that fails halfway may already have made the pair.
  undo.push(() => { ipBatch([["link", "del", "dev", hostName]]); });
  const [hostLink, bridgeLink] = createHostSide(hostCommands, bridgeNow, hostName, conf.bridge, env) as [IpLink[], IpLink[]];
  requireBridge(conf.bridge, bridgeLink[0]!);
  trace("host batch");
  faultPoint("after-veth");

  const routes: CniRoute[] = [...(ipamResult.result.routes ?? [])];
  if (conf.isDefaultGateway) {
    for (const ipc of ips) {
      const def = ipc.address.includes(":") ? "::/0" : "0.0.0.0/0";
      if (ipc.gateway && !routes.some((r) => r.dst === def)) routes.push({ dst: def, gw: ipc.gateway });
    }
  }
  let podLink: IpLink[];
  try {
    [podLink] = ipBatch([...podCommands(env.ifname, ips, routes), ["link", "show", "dev", env.ifname]], { netns: env.netns }) as [IpLink[]];
  } catch (e) {
    throw new CniError(CniCode.IoFailure, `configuring ${env.ifname} in ${env.netns} failed: ${(e as Error).message}`, "the pod's namespace refused the change named in the message", { cause: e });
  }
  trace("pod batch");
  faultPoint("after-pod");

  if (conf.ipMasq) {
    addMasquerade(conf.name, env.containerId, ips.map((i) => i.address));
    undo.push(() => removeMasquerade(conf.name, env.containerId));
  }

  const interfaces: CniInterface[] = [
    { name: conf.bridge, mac: bridgeLink[0]?.address, mtu: bridgeLink[0]?.mtu },
    { name: hostName, mac: hostLink[0]?.address, mtu },
    { name: env.ifname, mac: podLink[0]?.address, mtu, sandbox: env.netns },
  ];
  return {
    cniVersion: conf.cniVersion,
    interfaces,
    ips: ips.map((i) => ({ ...i, interface: 2 })),
    routes,
    dns: conf.dns ?? ipamResult.result.dns ?? {},
  };
}

/** Runs the host batch; a stale host veth of this same attachment (left by a killed ADD) is replaced once. */
function createHostSide(
  build: (bridge: IpLink | undefined | "unknown") => IpCommand[], bridgeNow: IpLink | undefined | "unknown",
  hostName: string, bridgeName: string, env: CniEnv,
): unknown[][] {
  const batchOpts = { details: true, tolerate: toleratedBridgeFailure(bridgeName) };
  try {
    return ipBatch(build(bridgeNow), {}, batchOpts);
  } catch (e) {
    const vethAdd = e instanceof IpError && e.isExists && e.command?.[1] === "add" && e.command.includes(hostName);
    if (!vethAdd) {
      // Enslaving to something that is not a bridge fails here when the bridge was not read.
      if (e instanceof IpError && e.command?.includes("master")) {
        const current = readLinkWithAddrs(bridgeName);
        if (current) requireBridge(bridgeName, current);
      }
      throw wrapHostError(e, env);
    }
  }
  // "File exists" on the veth: either our stale host end or CNI_IFNAME inside the pod.
  // IPAM refused a second ADD for this attachment already, so a host end by our name is stale.
  if (readLinkWithAddrs(hostName)) {
    try {
      ipBatch([["link", "del", "dev", hostName]]);
      return ipBatch(build("unknown"), {}, batchOpts);
    } catch (e) {
      throw wrapHostError(e, env);
    }
  }
  throw new CniError(CniCode.InvalidEnv, `interface ${env.ifname} already exists in ${env.netns}`,
    "pick another CNI_IFNAME, or DEL the attachment that owns it first");
}

function wrapHostError(e: unknown, env: CniEnv): unknown {
  if (e instanceof IpError && /Invalid argument/.test(e.stderr) && e.command?.includes(env.netns)) {
    return new CniError(CniCode.InvalidEnv, `CNI_NETNS ${env.netns} is not a network namespace`, "pass the path of the container's network namespace");
  }
  if (e instanceof IpError) return new CniError(CniCode.IoFailure, e.message, "the kernel refused a change on the node; see the message for the command", { cause: e });
  return e;
}
