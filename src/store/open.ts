// Opens the registry named by the command line (agent, lab helpers): one place for the flags.
// The etcd and Kubernetes clients are large: imported only when their store is chosen, so that
// every other command starts without them.
import { FileRegistry } from "./file-registry.ts";
import type { SubnetRegistry } from "./registry.ts";

const DEFAULT_ETCD_PREFIX = "/gauze.dev/network";

export interface StoreFlags {
  store: string;
  storeDir: string;
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdCafile?: string;
  etcdCertfile?: string;
  etcdKeyfile?: string;
  etcdUsername?: string;
  etcdPasswordFile?: string;
  kubeconfig?: string;
  netConf?: string;
}

export async function openRegistry(f: StoreFlags): Promise<SubnetRegistry> {
  switch (f.store) {
    case "kube": {
      const { KubeRegistry } = await import("./kube-registry.ts");
      return KubeRegistry.open({ ...(f.kubeconfig ? { kubeconfig: f.kubeconfig } : {}), netConf: f.netConf ?? "/etc/gauze/net-conf.json" });
    }
    case "file":
      return new FileRegistry(f.storeDir);
    case "etcd": {
      const endpoints = (f.etcdEndpoints ?? "").split(",").map((e) => e.trim()).filter(Boolean);
      if (endpoints.length === 0) throw new Error("--store etcd needs --etcd-endpoints, e.g. http://10.0.0.1:2379");
      const { EtcdRegistry } = await import("./etcd-registry.ts");
      return new EtcdRegistry({
        endpoints, prefix: f.etcdPrefix ?? DEFAULT_ETCD_PREFIX,
        ...(f.etcdCafile ? { cafile: f.etcdCafile } : {}), ...(f.etcdCertfile ? { certfile: f.etcdCertfile } : {}), ...(f.etcdKeyfile ? { keyfile: f.etcdKeyfile } : {}),
        ...(f.etcdUsername ? { username: f.etcdUsername } : {}), ...(f.etcdPasswordFile ? { passwordFile: f.etcdPasswordFile } : {}),
      });
    }
    default:
      throw new Error(`--store ${f.store}: use file, etcd or kube`);
  }
}

/** Store flags as arguments, to pass on to an agent or helper the lab starts. */
export function storeArgs(f: StoreFlags): string[] {
  const a = ["--store", f.store];
  if (f.store === "file") a.push("--store-dir", f.storeDir);
  if (f.etcdEndpoints) a.push("--etcd-endpoints", f.etcdEndpoints);
  if (f.etcdPrefix) a.push("--etcd-prefix", f.etcdPrefix);
  if (f.etcdCafile) a.push("--etcd-cafile", f.etcdCafile);
  if (f.etcdCertfile) a.push("--etcd-certfile", f.etcdCertfile);
  if (f.etcdKeyfile) a.push("--etcd-keyfile", f.etcdKeyfile);
  if (f.etcdUsername) a.push("--etcd-username", f.etcdUsername);
  if (f.etcdPasswordFile) a.push("--etcd-password-file", f.etcdPasswordFile);
  return a;
}
