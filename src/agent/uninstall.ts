// `gauze uninstall`: the node as it was before gauze. What the agent made (device, routes,
// rules, subnet file, conflist, lease: `uninstallAgent`), and what the plugin made for pods
// (their host veths, the bridge, the IPAM reservations of gauze's network), and the plugin
// itself in the CNI bin dir. Leftover `cni0` and `flannel.1` after removing flannel are a
// common complaint; this leaves nothing of gauze's behind, and nothing of anyone else's goes.
import { readFileSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { Rtnl, delLink } from "../kernel/netlink/index.ts";
import { vethNetwork } from "../dataplane/veth.ts";
import type { SubnetRegistry } from "../store/registry.ts";
import { CONFLIST_NAME, nodePaths } from "../node/paths.ts";
import { type AgentOptions } from "./agent.ts";
import { type Lease, resolveNetwork, type ResolvedNetwork } from "../store/registry.ts";
import { createNetworkBackend } from "../backend/registry.ts";
import { DropWatch } from "../kernel/tracefs.ts";
import { parseCIDR } from "../net/cidr.ts";
import { removeNodeFiles } from "./node-files.ts";
import { removeMasquerade } from "./masquerade.ts";
import { readNodeLink, readNodeLink6 } from "./node-link.ts";
import { removeObserverPins, unmountAgentMounts } from "./observing.ts";
import { removeDatapathPins } from "./datapath.ts";
import { PolicyEnforcer } from "./policy.ts";

/** `gauze agent --uninstall`: everything the agent made on this node goes; the lease is released. */
export async function uninstallAgent(o: Pick<AgentOptions, "node" | "iface" | "registry" | "root" | "log">): Promise<string | undefined> {
  const paths = nodePaths(o.root);
  removeNodeFiles(paths);
  removeMasquerade();
  removeMasquerade(6);
  // NetworkPolicy's table (quiet where there is none, or no nft).
  try { if (PolicyEnforcer.uninstall()) o.log.info("removed gauze's NetworkPolicy table"); } catch { /* no nft: no table */ }
  // The eBPF observer's programs, links and maps (pinned so that they outlive an agent): before
  // bpffs is unmounted, should the agent have mounted it.
  for (const r of removeDatapathPins(o.node)) o.log.info({ removed: r }, "removed the eBPF datapath's objects");
  for (const r of removeObserverPins(o.node)) o.log.info({ removed: r }, "removed the eBPF observer's objects");
  // Whatever pseudo filesystem this node's agent mounted itself (a lab's are the lab's).
  for (const m of unmountAgentMounts(paths)) o.log.info({ unmounted: m }, "unmounted what the agent had mounted");
  // The drop watchers of this node's agents (one killed outright leaves its own behind).
  DropWatch.removeStale(`gauze-${o.node}-`);
  const leases = await o.registry.listLeases().catch(() => [] as Lease[]);
  const mine = leases.find((l) => l.node === o.node);
  if (mine) await o.registry.releaseLease(mine.subnet);
  let net: ResolvedNetwork | undefined;
  try {
    net = resolveNetwork(await o.registry.getNetworkConfig());
  } catch {
    // no config: remove the default device anyway
  }
  const nl = Rtnl.open();
  try {
    const link = (() => { try { return readNodeLink(nl, o.iface); } catch { return { iface: o.iface ?? "eth0", index: 0, ip: "0.0.0.0", mtu: 1500 }; } })();
    const type = net?.backendType ?? "vxlan";
    // Dual-stack: the IPv6 side goes too (its device and direct routes), with or without an IPv6 address left on the link.
    const link6 = net?.ipv6 ? (() => { try { return readNodeLink6(nl, link); } catch { return { ...link, ip: "::" }; } })() : undefined;
    const backend = createNetworkBackend({
      type, link, network: net?.network ?? parseCIDR("10.244.0.0/16")!.prefix, config: net?.backendConfig ?? {},
      ...(net?.ipv6 && link6 ? { ipv6: { ...net.ipv6, self: o.node, link: link6 } } : {}),
    });
    backend.uninstall(nl);
  } finally {
    nl.close();
  }
  o.log.info({ released: mine?.subnet }, "uninstalled");
  return mine?.subnet;
}

export interface UninstallOptions {
  node: string;
  iface?: string;
  registry: SubnetRegistry;
  root: string;
  binDir: string;
  log: Logger;
}

export interface UninstallReport {
  released?: string;
  veths: string[];
  bridges: string[];
  /** A bridge kept because ports that are not gauze's are still on it. */
  keptBridges: string[];
  reservations: number;
  files: string[];
}

/** What our conflist names (read before uninstallAgent removes it): the network and its bridges. */
function ourConflist(confDir: string): { network: string; bridges: string[]; dataDir?: string } {
  try {
    const c = JSON.parse(readFileSync(join(confDir, CONFLIST_NAME), "utf8")) as { name?: unknown; plugins?: { type?: unknown; bridge?: unknown; dataDir?: unknown }[] };
    const mine = (c.plugins ?? []).filter((p) => p.type === "gauze");
    return {
      network: typeof c.name === "string" ? c.name : "gauze",
      bridges: mine.map((p) => (typeof p.bridge === "string" ? p.bridge : "cni0")),
      ...(typeof mine[0]?.dataDir === "string" ? { dataDir: mine[0].dataDir } : {}),
    };
  } catch {
    return { network: "gauze", bridges: ["cni0"] };
  }
}

/** A path the conflist names, as seen from here (it already includes the root when one is given). */
function hostPath(p: string | undefined, root: string): string | undefined {
  if (!p) return undefined;
  return root && !p.startsWith(root) ? root + p : p;
}

export async function uninstallNode(o: UninstallOptions): Promise<UninstallReport> {
  const paths = nodePaths(o.root);
  const conf = ourConflist(paths.confDir);
  const report: UninstallReport = { veths: [], bridges: [], keptBridges: [], reservations: 0, files: [] };
  const released = await uninstallAgent({ node: o.node, ...(o.iface ? { iface: o.iface } : {}), registry: o.registry, root: o.root, log: o.log });
  if (released) report.released = released;
  report.files.push(join(paths.confDir, CONFLIST_NAME), paths.subnetFile);

  const nl = Rtnl.open();
  try {
    // Pods' host veths of gauze's network (their alias says so); then the bridge, if only ours were on it.
    const links = nl.links();
    const ours = links.filter((l) => l.kind === "veth" && vethNetwork(l.alias) === conf.network);
    for (const [e, l] of nl.apply(ours.map((l) => delLink(l))).map((e, i) => [e, ours[i]!] as const)) {
      if (!e || e.notFound) report.veths.push(l.name);
      else o.log.warn({ link: l.name, err: e.message }, "could not delete a pod veth");
    }
    for (const name of new Set(conf.bridges)) {
      const br = nl.link(name);
      if (!br || br.kind !== "bridge") continue;
      const others = nl.links(br).map((l) => l.name);
      if (others.length) {
        report.keptBridges.push(name);
        o.log.warn({ bridge: name, ports: others }, "bridge kept: ports that are not gauze's are on it");
        continue;
      }
      nl.run([delLink(br)], (_req, err) => err.notFound);
      report.bridges.push(name);
    }
  } finally {
    nl.close();
  }

  // IPAM reservations of gauze's network only (the data dir is shared with host-local).
  const netDir = join(hostPath(conf.dataDir, o.root) ?? paths.dataDir, conf.network);
  try {
    report.reservations = readdirSync(netDir).filter((f) => /^[0-9a-f.:]+$/i.test(f)).length;
    rmSync(netDir, { recursive: true, force: true });
    report.files.push(netDir);
  } catch {
    // none
  }
  // The plugin, and gauze's run directory.
  const plugin = join(o.binDir, "gauze");
  rmSync(plugin, { force: true });
  report.files.push(plugin);
  // Its contents, then the directory itself unless it is a mount point (a DaemonSet pod's
  // hostPath: kubelet made it and it stays, as every hostPath directory does).
  const runDir = dirname(paths.subnetFile);
  for (const f of (() => { try { return readdirSync(runDir); } catch { return []; } })()) rmSync(join(runDir, f), { recursive: true, force: true });
  try { rmdirSync(runDir); } catch { /* a mount point, or gone */ }
  report.files.push(runDir);
  try {
    rmdirSync(hostPath(conf.dataDir, o.root) ?? paths.dataDir); // only if now empty (and not a mount point)
  } catch {
    // holds another network's reservations, or was never there
  }
  o.log.info({ ...report }, "gauze uninstalled from this node");
  return report;
}
