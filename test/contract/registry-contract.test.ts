// Every subnet registry keeps one contract (test/support/registry-contract.ts): the file store on
// a real directory, etcd against a real etcd server (restarted to cut connections), and the
// Kubernetes store through the official client against the stand-in API server.
import { after, before } from "node:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { FileRegistry } from "../../src/store/file-registry.ts";
import { EtcdRegistry } from "../../src/store/etcd-registry.ts";
import { KubeRegistry, ANNOTATION } from "../../src/store/kube-registry.ts";
import { type NetworkConfig, ipv6SubnetFor, leaseKey, pickFreeSubnet, resolveNetwork } from "../../src/store/registry.ts";
import { formatPrefix } from "../../src/net/cidr.ts";
import { startEtcd, type TestEtcd } from "../support/etcd.ts";
import { startFakeNodesApi } from "../support/fake-nodes-api.ts";
import { type HostileRecord, registryContract } from "../support/registry-contract.ts";

const dir = mkdtempSync(join(tmpdir(), "gauze-contract-"));
let etcd: TestEtcd;
let raw: Etcd3;
before(async () => {
  etcd = await startEtcd({ slot: 2 });
  raw = new Etcd3({ hosts: etcd.endpoint });
});
after(async () => {
  raw.close();
  await etcd.remove();
  rmSync(dir, { recursive: true, force: true });
});
let spaces = 0;
const hourFromNow = () => Date.now() + 3_600_000;

registryContract({
  kind: "file",
  shortTtlMs: 300,
  async space(config: NetworkConfig) {
    const root = join(dir, `file-${spaces++}`);
    FileRegistry.init(root, config);
    return {
      open: async () => new FileRegistry(root),
      admit: async () => undefined,
      async plantHostile(records: HostileRecord[]) {
        for (const r of records) {
          writeFileSync(join(root, "leases", `${leaseKey(r.subnet)}.json`), r.raw ?? JSON.stringify({ subnet: r.subnet, node: r.node, publicIp: r.publicIp, backendType: "vxlan", backendData: {}, expiresAt: hourFromNow() }));
        }
      },
      close: async () => undefined,
    };
  },
});

registryContract({
  kind: "etcd",
  // etcd's shortest lease: a TTL below its minimum (about 1.5 s here) is raised to it.
  shortTtlMs: 2000,
  async space(config: NetworkConfig) {
    const prefix = `/contract${spaces++}`;
    const setup = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix, callTimeoutMs: 2000 });
    await setup.setNetworkConfig(config);
    setup.close();
    return {
      open: async () => new EtcdRegistry({ endpoints: [etcd.endpoint], prefix, callTimeoutMs: 2000 }),
      admit: async () => undefined,
      async plantHostile(records: HostileRecord[]) {
        for (const r of records) {
          await raw.put(`${prefix}/subnets/${leaseKey(r.subnet)}`).value(r.raw ?? JSON.stringify({ PublicIP: r.publicIp, BackendType: "vxlan", BackendData: {}, Node: r.node, Expires: hourFromNow() }));
        }
      },
      async interrupt() {
        await etcd.stop();
        await etcd.start();
      },
      close: async () => undefined,
    };
  },
});

registryContract({
  kind: "kube",
  async space(config: NetworkConfig) {
    const root = mkdtempSync(join(dir, "kube-"));
    const netConf = join(root, "net-conf.json");
    writeFileSync(netConf, JSON.stringify(config));
    const api = await startFakeNodesApi(root, { empty: true });
    const net = resolveNetwork(config);
    const podCidrs = () => [...api.nodes.values()].map((n) => String(n.spec?.podCIDR ?? ""));
    return {
      open: () => KubeRegistry.open({ kubeconfig: api.kubeconfig, netConf }),
      // The controller manager's part: the lowest free podCIDR.
      async admit(node: string) {
        const free = pickFreeSubnet(net, podCidrs());
        if (!free) throw new Error("the test network is full");
        const v6 = ipv6SubnetFor(net, formatPrefix(free));
        api.putNode(node, { podCIDR: formatPrefix(free), ...(v6 ? { podCIDR6: v6 } : {}) });
      },
      async reassign(from: string, to: string) {
        const cidr = String(api.nodes.get(from)!.spec.podCIDR);
        // Anywhere in the network (SubnetMin/SubnetMax bind gauze's allocation, not the controller manager's).
        const other = pickFreeSubnet(resolveNetwork({ Network: config.Network, SubnetLen: net.subnetLen }), [...podCidrs(), cidr]);
        api.putNode(from, { podCIDR: formatPrefix(other!) });
        api.putNode(to, { podCIDR: cidr });
      },
      async plantHostile(records: HostileRecord[]) {
        for (const r of records) {
          api.putNode(r.node, { podCIDR: r.subnet, annotations: { [ANNOTATION.publicIp]: r.publicIp, [ANNOTATION.backendType]: "vxlan", [ANNOTATION.backendData]: r.raw ?? "{}" } });
        }
      },
      interrupt: async () => api.drop(),
      close: async () => api.close(),
    };
  },
});
