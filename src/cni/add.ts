// ADD: the bridge checked (or made), an address from IPAM, the veth pair with its peer created
// inside the pod's namespace, the pod's addresses and routes set through a netlink socket opened
// in that namespace: one process, no exec. Each side effect pushes its inverse onto an undo
// list that is unwound if anything later fails.
import { badName, isNamespaceName, isPodName } from "../util/text.ts";
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";
import type { CniInterface, CniResult, CniRoute } from "./result.ts";
import { ipamAdd } from "./ipam.ts";
import { dataplaneToCni } from "./dataplane-errors.ts";
import { Rtnl, addMacvlan, delLink } from "../kernel/netlink/index.ts";
import { openNetns } from "../kernel/netns.ts";
import { closeFd, writeFd } from "../kernel/files.ts";
import { ensureSysctl } from "../kernel/sysctl.ts";
import { ensureBridge, readBridge } from "../dataplane/bridge.ts";
import { configurePod, createVeth, deleteVeth, hostVethName, randomMac, vethAlias } from "../dataplane/veth.ts";
import { addMasquerade, removeMasquerade } from "../dataplane/masquerade.ts";
import { parseCIDR } from "../net/cidr.ts";
import { faultPoint } from "./fault.ts";
import { trace } from "./trace.ts";
import { podRecordDir, writePodRecord } from "../node/pod-record.ts";
import { attachDatapath } from "./datapath.ts";

const DEFAULT_MTU = 1500;

type Undo = () => void | Promise<void>;

export async function cmdAdd(env: CniEnv, conf: NetConf): Promise<CniResult> {
  const undo: Undo[] = [];
  let committed = false;
  const node = Rtnl.open();
  let pod: Rtnl | undefined;
  try {
    pod = Rtnl.open({ netns: env.netns });
    const result = await addWith(env, conf, undo, node, pod);
    committed = true;
    return result;
  } catch (e) {
    throw dataplaneToCni(e);
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
    pod?.close();
    node.close();
  }
}

async function addWith(env: CniEnv, conf: NetConf, undo: Undo[], node: Rtnl, pod: Rtnl): Promise<CniResult> {
  if (conf.mode === "macvlan") return addMacvlanPod(env, conf, undo, node, pod);
  // A link of the bridge's name that is not a bridge is refused before IPAM or any change.
  const bridgeNow = readBridge(node, conf.bridge);
  const mtu = conf.mtu ?? bridgeNow?.mtu ?? DEFAULT_MTU;
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
  const bridge = ensureBridge(node, bridgeNow, { name: conf.bridge, mtu, gatewayCidrs });
  trace("bridge");

  const hostName = hostVethName(env.containerId, env.ifname);
  const want = { alias: vethAlias(conf.name, env.containerId, env.ifname), hostMac: randomMac(), hostName, ifname: env.ifname, netnsPath: env.netns, mtu, bridge, hairpin: conf.hairpinMode };
  if (createVeth(node, want) === "stale-host-end") {
    // A killed ADD left this attachment's host end; IPAM has just said the attachment is free.
    deleteVeth(node, hostName);
    if (createVeth(node, want)) throw new CniError(CniCode.IoFailure, `host veth ${hostName} came back while it was being replaced`, "another ADD for this attachment runs at the same time");
  }
  undo.push(() => { deleteVeth(node, hostName); });
  trace("veth");
  faultPoint("after-veth");

  const routes = podRoutes(conf, ipamResult.result.routes ?? [], ips);
  noDadOnPod(env, ips);
  const podLink = configurePod(pod, env.ifname, ips, routes);
  trace("pod");
  faultPoint("after-pod");

  if (conf.ipMasq) {
    addMasquerade(conf.name, env.containerId, ips.map((i) => i.address));
    undo.push(() => removeMasquerade(conf.name, env.containerId));
  }

  // eBPF datapath: the pod's entries and from_pod on its host veth (the conflist says so only while the agent runs it).
  if (conf.datapath) {
    undo.push(attachDatapath(conf.datapath, node, hostName, ips.map((i) => i.address), podLink.mac ?? "", bridge.mac ?? ""));
    trace("datapath");
  }

  recordPod(conf, env, ips.map((i) => i.address), hostName, podLink.mac);
  const interfaces: CniInterface[] = [
    { name: conf.bridge, mac: bridge.mac, mtu: bridge.mtu },
    { name: hostName, mac: want.hostMac, mtu },
    { name: env.ifname, mac: podLink.mac, mtu, sandbox: env.netns },
  ];
  return {
    cniVersion: conf.cniVersion,
    interfaces,
    ips: ips.map((i) => ({ ...i, interface: 2 })),
    routes,
    dns: conf.dns ?? ipamResult.result.dns ?? {},
  };
}

/**
 * macvlan mode: the pod's interface is a macvlan of the node's uplink, made straight inside the
 * pod's namespace. No bridge, no veth, no tunnel: the pod is a station on the underlay's L2, its
 * default route the underlay's router. (The node itself cannot reach its own macvlan pods: the
 * kernel keeps a parent and its macvlans apart; doctor's overlay.macvlan-host check says so.)
 */
async function addMacvlanPod(env: CniEnv, conf: NetConf, undo: Undo[], node: Rtnl, pod: Rtnl): Promise<CniResult> {
  const master = conf.master ? node.link(conf.master) : defaultRouteLink(node);
  if (!master) {
    throw new CniError(CniCode.InvalidConfig, conf.master ? `master interface ${conf.master} does not exist on this node` : "no IPv4 default route on this node to find the macvlan master by",
      "set \"master\" to the node's uplink interface (e.g. eth0)");
  }
  const mtu = conf.mtu ?? master.mtu;
  const ipamResult = await ipamAdd(conf, env);
  undo.push(ipamResult.undo);
  faultPoint("after-ipam");
  const ips = ipamResult.result.ips ?? [];
  if (ips.length === 0) throw new CniError(CniCode.IoFailure, "IPAM returned no address");
  const fd = openNetns(env.netns);
  try {
    node.run([addMacvlan({ name: env.ifname, master, mode: "bridge", mtu, netnsFd: fd, netnsLabel: env.netns })]);
  } finally {
    closeFd(fd);
  }
  undo.push(() => { pod.apply([delLink(env.ifname)]); });
  faultPoint("after-veth");
  const routes = podRoutes(conf, ipamResult.result.routes ?? [], ips);
  noDadOnPod(env, ips);
  const podLink = configurePod(pod, env.ifname, ips, routes);
  faultPoint("after-pod");
  recordPod(conf, env, ips.map((i) => i.address));
  return {
    cniVersion: conf.cniVersion,
    interfaces: [{ name: env.ifname, mac: podLink.mac, mtu, sandbox: env.netns }],
    ips: ips.map((i) => ({ ...i, interface: 0 })),
    routes,
    dns: conf.dns ?? ipamResult.result.dns ?? {},
  };
}

/**
 * IPv6: duplicate address detection off on the pod's interface before it comes up (the reference
 * bridge plugin does the same unless asked). IPAM hands each address out once, and while DAD
 * runs on the kernel's link-local address the pod's first IPv6 packets wait 2 s.
 */
function noDadOnPod(env: CniEnv, ips: { address: string }[]): void {
  if (ips.some((i) => i.address.includes(":"))) ensureSysctl(`net.ipv6.conf.${env.ifname}.accept_dad`, "0", env.netns);
}

/** The link the node's IPv4 default route leaves through. */
function defaultRouteLink(nl: Rtnl) {
  const r = nl.routes(4).find((x) => x.dst === "0.0.0.0/0" && x.table === 254 && x.oif);
  return r?.oif ? nl.linkByIndex(r.oif) : undefined;
}

/** IPAM's routes, plus a default route via each family's gateway when the config asks for one. */
function podRoutes(conf: NetConf, ipamRoutes: CniRoute[], ips: { address: string; gateway?: string }[]): CniRoute[] {
  const routes: CniRoute[] = [...ipamRoutes];
  if (conf.isDefaultGateway) {
    for (const ipc of ips) {
      const def = ipc.address.includes(":") ? "::/0" : "0.0.0.0/0";
      if (ipc.gateway && !routes.some((r) => r.dst === def)) routes.push({ dst: def, gw: ipc.gateway });
    }
  }
  return routes;
}

/**
 * The pod record the node's agent names flows by (only where an agent manages the node). The
 * pod's name and namespace come from the runtime: input, kept only when Kubernetes would accept
 * them (a name with a newline or an escape code would reach every terminal that shows a flow).
 */
function recordPod(conf: NetConf, env: CniEnv, ips: string[], hostIface?: string, podMac?: string): void {
  if (!conf.agentManaged) return; // no agent here to read it
  const { podName, podNamespace } = env.args;
  const bad = [podName !== undefined && !isPodName(podName) ? badName("K8S_POD_NAME", podName) : undefined,
    podNamespace !== undefined && !isNamespaceName(podNamespace) ? badName("K8S_POD_NAMESPACE", podNamespace) : undefined].filter((x): x is string => !!x);
  if (bad.length) writeFd(2, `gauze: ${bad.join("; ")}: the pod is recorded without its name (its flows show addresses)\n`);
  const named = bad.length === 0 && podName !== undefined;
  writePodRecord(podRecordDir(conf.subnetFile), {
    ...(named ? { pod: podName } : {}), ...(named && podNamespace ? { namespace: podNamespace } : {}),
    containerId: env.containerId, ifname: env.ifname, netns: env.netns, ips, ...(hostIface ? { hostIface } : {}), ...(podMac ? { podMac } : {}),
  });
}
