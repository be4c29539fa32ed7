// The subnet registry's command-line flags, defined once: their names, types, help and defaults.
// The agent, `gauze uninstall` and the lab's store helpers take all of them; `lab up` takes the
// etcd client ones to pass on to its agents; `storeArgs` turns a set back into arguments for a
// process the lab starts. (Commander registers them from these tables, in cli/.)

/** How an etcd client reaches and proves itself to etcd. */
export interface EtcdFlags {
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdCafile?: string;
  etcdCertfile?: string;
  etcdKeyfile?: string;
  etcdUsername?: string;
  etcdPasswordFile?: string;
}

/** The etcd flags a lab keeps for its agents: everything but where etcd is (the lab knows that). */
export type EtcdAuthFlags = Pick<EtcdFlags, "etcdCafile" | "etcdCertfile" | "etcdKeyfile" | "etcdUsername" | "etcdPasswordFile">;

export interface StoreFlags extends EtcdFlags {
  store: string;
  storeDir: string;
  kubeconfig?: string;
  netConf?: string;
}

export interface FlagDef<K extends string> {
  /** commander's spelling: "--etcd-cafile <file>". */
  flag: string;
  key: K;
  help: string;
  default?: string;
}

export const DEFAULT_ETCD_PREFIX = "/gauze.dev/network";

export const ETCD_FLAGS: readonly FlagDef<keyof EtcdFlags>[] = [
  { flag: "--etcd-endpoints <urls>", key: "etcdEndpoints", help: "etcd client URLs, comma-separated" },
  { flag: "--etcd-prefix <prefix>", key: "etcdPrefix", help: "etcd key prefix", default: DEFAULT_ETCD_PREFIX },
  { flag: "--etcd-cafile <file>", key: "etcdCafile", help: "CA to trust for etcd's certificate (default: the system's)" },
  { flag: "--etcd-certfile <file>", key: "etcdCertfile", help: "client certificate for etcd (mutual TLS; with --etcd-keyfile)" },
  { flag: "--etcd-keyfile <file>", key: "etcdKeyfile", help: "client key for etcd" },
  { flag: "--etcd-username <name>", key: "etcdUsername", help: "etcd user (password authentication)" },
  { flag: "--etcd-password-file <file>", key: "etcdPasswordFile", help: "file holding the etcd user's password" },
];

export const STORE_FLAGS: readonly FlagDef<keyof StoreFlags>[] = [
  { flag: "--store <kind>", key: "store", help: "subnet registry: file (embedded), etcd, or kube (the Kubernetes API)", default: "file" },
  { flag: "--store-dir <dir>", key: "storeDir", help: "directory of the file registry", default: "/var/lib/gauze/registry" },
  ...ETCD_FLAGS,
  { flag: "--kubeconfig <path>", key: "kubeconfig", help: "with --store kube: a kubeconfig (default: in-cluster)" },
  { flag: "--net-conf <path>", key: "netConf", help: "with --store kube: the network config (flannel's net-conf.json)", default: "/etc/gauze/net-conf.json" },
];

/** The bare option name of a definition: "--etcd-cafile". */
export function optionName(d: FlagDef<string>): string {
  return d.flag.split(" ")[0]!;
}

/** Store flags as arguments, to pass on to an agent or helper the lab starts. */
export function storeArgs(f: StoreFlags): string[] {
  const a = ["--store", f.store];
  if (f.store === "file") a.push("--store-dir", f.storeDir);
  for (const d of ETCD_FLAGS) {
    const v = f[d.key];
    if (v) a.push(optionName(d), v);
  }
  return a;
}
