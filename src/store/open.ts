// Opens the registry the command line names (agent, uninstall, lab helpers; flags in flags.ts).
// The etcd and Kubernetes clients are large: imported only when their store is chosen, so that
// every other command starts without them.
import { FileRegistry } from "./file-registry.ts";
import type { SubnetRegistry } from "./registry.ts";
import { DEFAULT_ETCD_PREFIX, type StoreFlags } from "./flags.ts";

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
