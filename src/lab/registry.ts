// The lab's subnet registry: the embedded file registry in the lab's tree, or etcd (the lab's
// own, in the underlay namespace where every node reaches it, or one given with --etcd-*). The
// network config is written here at `lab up` and at a backend switch; a node that leaves has its
// lease released here. Registry operations run where the registry is reachable: the file one in
// this process, etcd through `gauze store` inside the underlay namespace.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { gauzeExecutable, runSync } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import { FileRegistry } from "../store/file-registry.ts";
import { type StoreFlags, storeArgs } from "../store/flags.ts";
import { spawnInNetns, stopProcess } from "./processes.ts";
import { type LabState, type Progress, UNDERLAY_GW, backendBlock, labDir, saveLab, withLab } from "./state.ts";

const ETCD_CLIENT = `http://${UNDERLAY_GW}:2379`;

/** The store flags every agent of this lab gets. */
export function storeFlags(s: LabState): StoreFlags {
  return { store: s.store.kind, storeDir: s.registryDir, ...(s.store.endpoints ? { etcdEndpoints: s.store.endpoints } : {}), ...s.store.etcdAuth };
}

/** The lab's own etcd: in the underlay namespace, on 172.18.0.1:2379, where every node reaches it. */
export async function startEtcd(s: LabState, progress: Progress): Promise<void> {
  const dir = join(labDir(s.name), "etcd");
  mkdirSync(dir, { recursive: true });
  const argv = ["etcd", "--name", `gz-${s.name}`, "--data-dir", join(dir, "data"), "--listen-client-urls", `${ETCD_CLIENT},http://127.0.0.1:2379`,
    "--advertise-client-urls", ETCD_CLIENT, "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
    "--initial-cluster", `gz-${s.name}=http://127.0.0.1:2380`, "--log-level", "warn"];
  s.store.etcdPid = spawnInNetns(netnsPath(s.underlayNs), argv, join(dir, "etcd.log"));
  s.store.etcdDir = dir;
  s.store.endpoints = ETCD_CLIENT;
  saveLab(s);
  progress(`etcd started in ${s.underlayNs} on ${ETCD_CLIENT} (pid ${s.store.etcdPid})`);
}

export async function etcdStop(lab: string): Promise<void> {
  await withLab(lab, async (s) => {
    await stopProcess(s.store.etcdPid, 2000, "SIGTERM", s.store.etcdDir);
  });
}

export async function etcdStart(lab: string): Promise<void> {
  await withLab(lab, async (s) => {
    if (s.store.kind !== "etcd" || !s.store.etcdDir) throw new Error(`lab ${lab} does not run its own etcd`);
    await startEtcd(s, () => undefined);
  });
}

/** `gauze store <args>` against the lab's etcd, from the underlay namespace (the file registry needs none). */
export function storeHelper(s: LabState, args: string[]): void {
  if (s.store.kind === "file") return;
  const endpoints = s.store.endpoints === ETCD_CLIENT ? "http://127.0.0.1:2379" : s.store.endpoints!;
  const argv = [gauzeExecutable(), "store", ...args, ...storeArgs({ ...storeFlags(s), etcdEndpoints: endpoints })];
  const r = runSync(argv, { netns: netnsPath(s.underlayNs) });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.trim() || r.stdout.trim()}`);
}

/** Writes the network config (pod network, subnet length, backend, dual-stack) into the registry. */
export function initRegistry(s: LabState, podCidr: string, backend: string): void {
  const block = backendBlock(backend);
  const v6 = s.podCidr6 ? { EnableIPv6: true, IPv6Network: s.podCidr6 } : {};
  if (s.store.kind === "file") FileRegistry.init(s.registryDir, { Network: podCidr, SubnetLen: 24, ...v6, Backend: block });
  else storeHelper(s, ["init", "--network", podCidr, "--backend", block.Type, ...(block.DirectRouting ? ["--direct-routing"] : []), ...(s.podCidr6 ? ["--ipv6-network", s.podCidr6] : [])]);
}

/** A node left: its lease goes (the file registry here, etcd through the helper). */
export async function releaseNodeLease(s: LabState, node: string): Promise<void> {
  if (s.store.kind === "file") {
    const reg = new FileRegistry(s.registryDir);
    for (const l of await reg.listLeases()) if (l.node === node) await reg.releaseLease(l.subnet);
    reg.close();
  } else {
    storeHelper(s, ["release", "--node", node]);
  }
}
