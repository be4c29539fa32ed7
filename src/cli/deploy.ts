// `gauze manifests` and `gauze image`: what a cluster installs gauze from.
import { DEFAULT_IPV6_NETWORK, ManifestError, renderManifest } from "../deploy/manifest.ts";
import { ImageError, buildImage } from "../deploy/image.ts";
import type { EtcdFlags } from "../store/flags.ts";

export interface ManifestsCliOptions extends Pick<EtcdFlags, "etcdEndpoints"> { podCidr: string; backend: string; image?: string; store: string; mtu?: string; datapath?: string; ipv6?: string | boolean; traceProbes?: boolean; uninstall?: boolean }

export function manifestsCli(o: ManifestsCliOptions): number {
  try {
    process.stdout.write(renderManifest({
      podCidr: o.podCidr, backend: o.backend, store: o.store as "kube" | "etcd",
      ...(o.image ? { image: o.image } : {}), ...(o.etcdEndpoints ? { etcdEndpoints: o.etcdEndpoints } : {}),
      ...(o.mtu !== undefined ? { mtu: Number(o.mtu) } : {}), ...(o.uninstall ? { uninstall: true } : {}), ...(o.datapath ? { datapath: o.datapath as "ebpf" } : {}),
      ...(o.ipv6 ? { ipv6Network: o.ipv6 === true ? DEFAULT_IPV6_NETWORK : o.ipv6 } : {}), ...(o.traceProbes ? { traceProbes: true } : {}),
    }));
    return 0;
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    process.stderr.write(`gauze manifests: ${e.message}\n`);
    return 2;
  }
}

export interface ImageCliOptions { tag?: string; podmanRoot?: string; json?: boolean }

export function imageCli(o: ImageCliOptions): number {
  try {
    const r = buildImage({ executable: process.execPath, ...(o.tag ? { tag: o.tag } : {}), ...(o.podmanRoot ? { store: { root: o.podmanRoot } } : {}), progress: (l) => process.stderr.write(`${l}\n`) });
    if (o.json) {
      console.log(JSON.stringify(r));
      return 0;
    }
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const big = [...r.files].sort((a, b) => b.bytes - a.bytes);
    console.log(`${r.tag}: ${mb(r.size)}, ${r.files.length} files, built in ${(r.ms / 1000).toFixed(1)} s`);
    for (const f of big.slice(0, 8)) console.log(`  ${mb(f.bytes).padStart(9)}  ${f.path}`);
    const rest = big.slice(8);
    console.log(`  ${mb(rest.reduce((a, f) => a + f.bytes, 0)).padStart(9)}  ${rest.length} more (iptables modules, libraries, /etc files, links)`);
    return 0;
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    process.stderr.write(`gauze image: ${e.message}\n`);
    return 1;
  }
}
