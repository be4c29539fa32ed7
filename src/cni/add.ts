// ADD: address from IPAM, bridge (created on first use), veth pair with its peer created
// inside the pod's namespace, addresses and routes in the pod. Each side effect pushes its
// inverse onto an undo list that is unwound if anything later fails.
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import type { CniInterface, CniResult, CniRoute } from "./result.ts";
import { ipamAdd } from "../ipam/ipam.ts";
import { type EarlyBatch, type IpCommand, type IpLink, IpError, ipBatch, startBatch } from "../kernel/ip.ts";
import { ensureSysctl } from "../kernel/sysctl.ts";
import { bridgeCommands, readLinkWithAddrs, requireBridge, toleratedBridgeFailure } from "../dataplane/bridge.ts";
import { hostVethName, podCommands, vethHostCommands } from "../dataplane/veth.ts";
import { addMasquerade, removeMasquerade } from "../dataplane/masquerade.ts";
import { formatIP, parseCIDR } from "../ipam/cidr.ts";
import { faultPoint } from "./fault.ts";
import { trace } from "../util/trace.ts";

const DEFAULT_MTU = 1500;

type Undo = () => void | Promise<void>;

/** The two ip processes an ADD needs, started as early as possible (see ip.ts:startBatch). */
export interface EarlyIp {
  host: EarlyBatch;
  pod: EarlyBatch;
}

export function startEarlyIp(env: CniEnv): EarlyIp {
  return { host: startBatch({}, { details: true, force: true }), pod: startBatch({ netns: env.netns }) };
}

export async function cmdAdd(env: CniEnv, conf: NetConf, early: EarlyIp = startEarlyIp(env)): Promise<CniResult> {
  const undo: Undo[] = [];
  let committed = false;
  try {
    const result = await addWith(env, conf, undo, early.host, early.pod);
    committed = true;
    return result;
  } finally {
    early.host.cancel();
    early.pod.cancel();
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

async function addWith(env: CniEnv, conf: NetConf, undo: Undo[], hostBatch: EarlyBatch, podBatch: EarlyBatch): Promise<CniResult> {
  // Reading the bridge costs a spawn: only needed when the MTU has to come from it. Otherwise
  // the host batch creates it tolerantly and its `show` output proves it is a bridge.
  const bridgeNow = conf.mtu === undefined ? readLinkWithAddrs(conf.bridge) : "unknown";
  if (bridgeNow && bridgeNow !== "unknown") requireBridge(conf.bridge, bridgeNow);
  const mtu = conf.mtu ?? (bridgeNow !== "unknown" ? bridgeNow?.mtu : undefined) ?? DEFAULT_MTU;
  trace("read bridge");

  const hostName = hostVethName(env.containerId, env.ifname);
  const hostCommands = (gatewayCidrs: string[]) => (bridge: IpLink | undefined | "unknown") => [
    ...bridgeCommands(bridge, { name: conf.bridge, mtu, gatewayCidrs }),
    ...vethHostCommands({ hostName, ifname: env.ifname, netnsPath: env.netns, mtu, bridge: conf.bridge, hairpin: conf.hairpinMode }),
    ["link", "show", "dev", hostName],
    ["link", "show", "dev", conf.bridge],
  ];
  // The veth's name is derived from the attachment: delete it on rollback only if this ADD made
  // it (a second ADD for a live attachment must not take the live pod's veth down).
  let vethMade = false;
  const track = (p: Promise<unknown[][]>) => p.then(
    (out) => { vethMade = true; return out; },
    (e: unknown) => { if ((e as { vethMade?: boolean }).vethMade) vethMade = true; throw e; },
  );
  undo.push(() => { if (vethMade) ipBatch([["link", "del", "dev", hostName]]); });
  // When the gateways follow from the config (one range per set, the usual case), the host side
  // is built by ip while IPAM picks the address here: they overlap. A stale host end is only
  // replaced once IPAM has said this attachment is free.
  const known = knownGateways(conf);
  const hostEarly = known ? track(createHostSide(hostCommands(known), bridgeNow, hostName, conf.bridge, env, hostBatch, false)) : undefined;
  if (hostEarly) {
    hostEarly.catch(() => undefined); // awaited below; a rejection must not go unhandled meanwhile
    // Whatever fails from here on, the host batch has to finish before the veth's undo looks.
    undo.push(() => hostEarly.then(() => undefined, () => undefined));
  }

  let ipamResult;
  try {
    ipamResult = await ipamAdd(conf, env);
  } catch (e) {
    await hostEarly?.catch(() => undefined); // let the host side finish before the undo list runs
    throw e;
  }
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
  let hostOut: unknown[][];
  try {
    hostOut = await (hostEarly ?? track(createHostSide(hostCommands(gatewayCidrs), bridgeNow, hostName, conf.bridge, env, hostBatch, true)));
  } catch (e) {
    if (!(e instanceof StaleVeth)) throw e;
    hostOut = await track(createHostSide(hostCommands(gatewayCidrs), "unknown", hostName, conf.bridge, env, SYNC_HOST_BATCH, true));
  }
  const [hostLink, bridgeLink] = hostOut as [IpLink[], IpLink[]];
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
    [podLink] = (await podBatch.run([...podCommands(env.ifname, ips, routes), ["link", "show", "dev", env.ifname]])) as [IpLink[]];
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

/** Gateway CIDRs known before allocation: built-in IPAM with exactly one range per set. */
function knownGateways(conf: NetConf): string[] | undefined {
  const ipam = conf.ipam;
  if (conf.ipamProblem || ipam.kind !== "builtin" || ipam.rangeSets.some((s) => s.length !== 1)) return undefined;
  if (!conf.isGateway) return [];
  return ipam.rangeSets.map((s) => `${formatIP(s[0]!.gateway)}/${s[0]!.subnet.bits}`);
}

/** The host end of this attachment exists already: left from a killed ADD (replaced once IPAM agrees). */
class StaleVeth extends Error {}

/** A plain synchronous batch, for the retry after a stale host end is removed. */
const SYNC_HOST_BATCH: EarlyBatch = {
  run: async (commands, tolerate) => ipBatch(commands, {}, { details: true, ...(tolerate ? { tolerate } : {}) }),
  cancel: () => undefined,
};

/**
 * Runs the host batch. On failure the error says whether the veth pair was made before it
 * (`vethMade`), for the undo list. "File exists" on the veth: CNI_IFNAME is taken in the pod
 * (an error), or our host end is left over (replaced when `replaceStale`, else StaleVeth).
 */
async function createHostSide(
  build: (bridge: IpLink | undefined | "unknown") => IpCommand[], bridgeNow: IpLink | undefined | "unknown",
  hostName: string, bridgeName: string, env: CniEnv, batch: EarlyBatch, replaceStale: boolean,
): Promise<unknown[][]> {
  const tolerate = toleratedBridgeFailure(bridgeName);
  try {
    return await batch.run(build(bridgeNow), tolerate);
  } catch (e) {
    const vethAdd = e instanceof IpError && e.command?.[1] === "add" && e.command.includes(hostName);
    if (!(vethAdd && e.isExists)) {
      const vethMade = !vethAdd; // a later line failed: the pair exists
      // Enslaving to something that is not a bridge fails here when the bridge was not read.
      if (e instanceof IpError && e.command?.includes("master")) {
        const current = readLinkWithAddrs(bridgeName);
        try {
          if (current) requireBridge(bridgeName, current);
        } catch (notBridge) {
          throw Object.assign(notBridge as Error, { vethMade });
        }
      }
      throw Object.assign(wrapHostError(e, env) as Error, { vethMade });
    }
  }
  if (!readLinkWithAddrs(hostName)) {
    throw new CniError(CniCode.InvalidEnv, `interface ${env.ifname} already exists in ${env.netns}`,
      "pick another CNI_IFNAME, or DEL the attachment that owns it first");
  }
  if (!replaceStale) throw new StaleVeth(hostName);
  try {
    ipBatch([["link", "del", "dev", hostName]]);
    return ipBatch(build("unknown"), {}, { details: true, tolerate });
  } catch (e) {
    throw Object.assign(wrapHostError(e, env) as Error, { vethMade: true });
  }
}

function wrapHostError(e: unknown, env: CniEnv): unknown {
  if (e instanceof IpError && /Invalid argument/.test(e.stderr) && e.command?.includes(env.netns)) {
    return new CniError(CniCode.InvalidEnv, `CNI_NETNS ${env.netns} is not a network namespace`, "pass the path of the container's network namespace");
  }
  if (e instanceof IpError) return new CniError(CniCode.IoFailure, e.message, "the kernel refused a change on the node; see the message for the command", { cause: e });
  return e;
}
