// Config loading and result shaping: pure logic, no kernel.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../src/cni/config.ts";
import { parseCniArgs, type CniEnv } from "../../src/cni/env.ts";
import { convertResult, parseResult } from "../../src/cni/result.ts";
import { parseSubnetEnv, formatSubnetEnv } from "../../src/node/subnet-file.ts";
import { CniError } from "../../src/cni/errors.ts";

const env: CniEnv = { command: "ADD", containerId: "c1", netns: "/x", ifname: "eth0", args: { ignoreUnknown: false }, path: [] };

test("defaults match the documented ones", () => {
  const c = loadConfig(JSON.stringify({ cniVersion: "1.1.0", name: "n", type: "gauze", ipam: { ranges: [[{ subnet: "10.0.0.0/24" }]] } }), env);
  assert.equal(c.bridge, "cni0");
  assert.equal(c.isGateway, true);
  assert.equal(c.isDefaultGateway, true);
  assert.equal(c.hairpinMode, true);
  assert.equal(c.ipMasq, false);
  assert.equal(c.subnetFile, "/run/gauze/subnet.env");
  assert.equal(c.mtu, undefined);
  assert.equal(c.ipam.kind === "builtin" && c.ipam.dataDir, "/var/lib/cni/networks");
});

test("containerd's runtimeConfig (capitalised portMappings, null annotations) is accepted", () => {
  const c = loadConfig(JSON.stringify({
    cniVersion: "1.0.0", name: "n", type: "gauze", ipam: { ranges: [[{ subnet: "10.0.0.0/24" }]] },
    runtimeConfig: { portMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "" }], "io.kubernetes.cri.pod-annotations": null },
  }), env);
  assert.equal(c.cniVersion, "1.0.0");
});

test("ipam.type of another plugin delegates; host-local is built in", () => {
  const d = loadConfig(JSON.stringify({ cniVersion: "1.1.0", name: "n", ipam: { type: "static" } }), env);
  assert.deepEqual(d.ipam, { kind: "delegate", type: "static" });
  const h = loadConfig(JSON.stringify({ cniVersion: "1.1.0", name: "n", ipam: { type: "host-local", subnet: "10.0.0.0/24" } }), env);
  assert.equal(h.ipam.kind, "builtin");
});

test("CNI_ARGS parsing", () => {
  const a = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u;X=y");
  assert.equal(a.podName, "p");
  assert.equal(a.podNamespace, "ns");
  assert.throws(() => parseCniArgs("X=y"), (e: CniError) => e.code === 4);
  assert.deepEqual(parseCniArgs("IP=10.0.0.5,fd00::5").ips, ["10.0.0.5", "fd00::5"]);
});

test("results are shaped per version and parsed back from any version", () => {
  const r = { cniVersion: "1.1.0", interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:ff", mtu: 1450, sandbox: "/x" }], ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 }, { address: "fd00::2/64", interface: 0 }], routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1", mtu: 1400 }] };
  const v031 = convertResult(r, "0.3.1") as { ips: { version: string }[]; routes: Record<string, unknown>[]; interfaces: Record<string, unknown>[] };
  assert.deepEqual(v031.ips.map((i) => i.version), ["4", "6"]);
  assert.equal("mtu" in v031.routes[0]!, false);
  assert.equal("mtu" in v031.interfaces[0]!, false);
  const v11 = convertResult(r, "1.1.0") as { routes: { mtu: number }[]; interfaces: { mtu: number }[] };
  assert.equal(v11.routes[0]!.mtu, 1400);
  assert.equal(v11.interfaces[0]!.mtu, 1450);
  const back = parseResult(v031, "prevResult");
  assert.equal(back.ips![0]!.address, "10.0.0.2/24");
  assert.throws(() => parseResult({ ips: [{ address: "nope" }] }, "prevResult"), (e: CniError) => e.code === 6);
});

test("subnet file: gauze and flannel spellings, round trip", () => {
  const f = parseSubnetEnv("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n", "x");
  assert.deepEqual(f, { network: "10.244.0.0/16", subnet: "10.244.1.1/24", mtu: 1450, ipMasq: true });
  assert.deepEqual(parseSubnetEnv(formatSubnetEnv(f), "x"), f);
  assert.throws(() => parseSubnetEnv("GAUZE_NETWORK=10.0.0.0/8\nGAUZE_SUBNET=10.1.0.1/24\nGAUZE_MTU=9\n", "x"), /not an MTU/);
});
