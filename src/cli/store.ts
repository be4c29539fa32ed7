// Hidden helpers for the lab: write the network config, release a node's lease, list leases,
// run from wherever the registry is reachable (for the lab's etcd: the underlay namespace).
import { openRegistry } from "../store/open.ts";
import type { StoreFlags } from "../store/flags.ts";
import { FileRegistry } from "../store/file-registry.ts";
import type { EtcdRegistry } from "../store/etcd-registry.ts";

export async function storeInit(o: StoreFlags & { network: string; backend: string; directRouting?: boolean; ipv6Network?: string; wait: string }): Promise<number> {
  const config = {
    Network: o.network, SubnetLen: 24, ...(o.ipv6Network ? { EnableIPv6: true, IPv6Network: o.ipv6Network } : {}),
    Backend: { Type: o.backend, ...(o.directRouting ? { DirectRouting: true } : {}) },
  };
  if (o.store === "file") {
    FileRegistry.init(o.storeDir, config);
    return 0;
  }
  const r = (await openRegistry(o)) as EtcdRegistry;
  const until = Date.now() + Number(o.wait) * 1000;
  try {
    for (;;) {
      try {
        await r.setNetworkConfig(config);
        return 0;
      } catch (e) {
        if (Date.now() > until) {
          process.stderr.write(`gauze store init: ${(e as Error).message}\n`);
          return 1;
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  } finally {
    r.close();
  }
}

export async function storeRelease(o: StoreFlags & { node: string }): Promise<number> {
  const r = await openRegistry(o);
  try {
    for (const l of await r.listLeases()) if (l.node === o.node) await r.releaseLease(l.subnet);
    return 0;
  } finally {
    r.close();
  }
}

export async function storeLeases(o: StoreFlags): Promise<number> {
  const r = await openRegistry(o);
  try {
    console.log(JSON.stringify(await r.listLeases()));
    return 0;
  } finally {
    r.close();
  }
}
