// The plugin's verbs against the real kernel: ADD builds bridge, veth, addresses and routes and
// pods talk through the bridge; CHECK, DEL (twice, as containerd), GC, STATUS, VERSION.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type AddResult, World, gauzeConf, ipIn, json, linkExists, nsPath, ping, plugin, reservations, sh,
} from "./helpers.ts";

const w = new World("p");
const node = w.netns("node");
const dataDir = w.tempDir();
const conf = gauzeConf(dataDir);

function add(pod: string, id: string, c: object = conf, ifname = "eth0") {
  return plugin({ node, command: "ADD", containerId: id, netns: nsPath(pod), ifname }, c);
}

test("VERSION lists every supported version", () => {
  const r = plugin({ node, command: "VERSION" }, { cniVersion: "1.1.0" });
  assert.equal(r.status, 0);
  assert.deepEqual(json(r), { cniVersion: "1.1.0", supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] });
});

test("ADD wires two pods to the bridge and they reach each other and the gateway", () => {
  const a = w.netns("a");
  const b = w.netns("b");
  const ra = add(a, "ctr-a");
  assert.equal(ra.status, 0, ra.stdout + ra.stderr);
  const res = json<AddResult>(ra);
  assert.equal(res.cniVersion, "1.1.0");
  assert.equal(res.interfaces.length, 3);
  assert.equal(res.interfaces[0]!.name, "gzbr0");
  assert.match(res.interfaces[1]!.name, /^gz[0-9a-f]{12}$/);
  assert.deepEqual({ name: res.interfaces[2]!.name, sandbox: res.interfaces[2]!.sandbox }, { name: "eth0", sandbox: nsPath(a) });
  assert.equal(res.ips[0]!.address, "10.99.0.2/24");
  assert.equal(res.ips[0]!.gateway, "10.99.0.1");
  assert.equal(res.ips[0]!.interface, 2);
  assert.equal(res.ips[0]!.version, undefined, "1.x results carry no ips[].version");
  assert.deepEqual(res.routes, [{ dst: "0.0.0.0/0", gw: "10.99.0.1" }]);

  // What the result says is what the kernel has.
  const podLinks = ipIn<{ ifname: string; address: string; mtu: number; operstate: string }[]>(a, ["link", "show", "dev", "eth0"]);
  assert.equal(podLinks[0]!.address, res.interfaces[2]!.mac);
  const addrs = ipIn<{ addr_info: { local: string; prefixlen: number }[] }[]>(a, ["addr", "show", "dev", "eth0"]);
  assert.deepEqual(addrs[0]!.addr_info.map((x) => `${x.local}/${x.prefixlen}`).filter((x) => x.startsWith("10.")), ["10.99.0.2/24"]);
  const lo = ipIn<{ flags: string[] }[]>(a, ["link", "show", "dev", "lo"]);
  assert.ok(lo[0]!.flags.includes("UP"), "lo is up");
  const host = ipIn<{ master: string }[]>(node, ["link", "show", "dev", res.interfaces[1]!.name]);
  assert.equal(host[0]!.master, "gzbr0");
  const brAddrs = ipIn<{ addr_info: { local: string }[] }[]>(node, ["addr", "show", "dev", "gzbr0"]);
  assert.ok(brAddrs[0]!.addr_info.some((x) => x.local === "10.99.0.1"));
  const hairpin = ipIn<{ linkinfo: { info_slave_data: { hairpin: boolean } } }[]>(node, ["-d", "link", "show", "dev", res.interfaces[1]!.name]);
  assert.equal(hairpin[0]!.linkinfo.info_slave_data.hairpin, true);

  const rb = add(b, "ctr-b");
  assert.equal(rb.status, 0, rb.stdout);
  const ipb = json<AddResult>(rb).ips[0]!.address.split("/")[0]!;
  assert.equal(ipb, "10.99.0.3");
  assert.ok(ping(a, ipb), "pod a reaches pod b across the bridge");
  assert.ok(ping(b, "10.99.0.1"), "pod b reaches the gateway");
  assert.equal(reservations(dataDir).get("10.99.0.2"), "ctr-a\r\neth0", "host-local's file format");
});

test("ADD results are shaped for the requested cniVersion", () => {
  for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]) {
    const pod = w.netns(`v${v.replaceAll(".", "")}`);
    const r = add(pod, `ctr-v${v}`, { ...conf, cniVersion: v });
    assert.equal(r.status, 0, r.stdout);
    const res = json<AddResult>(r);
    assert.equal(res.cniVersion, v);
    if (v.startsWith("0.")) assert.equal(res.ips[0]!.version, "4");
    else assert.equal(res.ips[0]!.version, undefined);
    assert.equal("mtu" in res.interfaces[2]!, false, "interface mtu only from 1.1.0");
    plugin({ node, command: "DEL", containerId: `ctr-v${v}`, netns: nsPath(pod) }, { ...conf, cniVersion: v });
  }
});

test("CHECK passes on a healthy attachment and names each kind of drift", () => {
  const pod = w.netns("chk");
  const r = add(pod, "ctr-chk");
  assert.equal(r.status, 0, r.stdout);
  const prevResult = json(r);
  const check = () => plugin({ node, command: "CHECK", containerId: "ctr-chk", netns: nsPath(pod) }, { ...conf, prevResult });
  assert.equal(check().status, 0, check().stdout);

  sh(["ip", "-n", pod, "route", "del", "default"]);
  let c = check();
  assert.equal(c.status, 1);
  assert.match(json<{ msg: string }>(c).msg, /route 0\.0\.0\.0\/0 via 10\.99\.0\.1 is missing/);

  const addr = (prevResult as unknown as AddResult).ips[0]!.address;
  sh(["ip", "-n", pod, "addr", "del", addr, "dev", "eth0"]);
  c = check();
  assert.match(json<{ msg: string }>(c).msg, new RegExp(`address ${addr.replace(/\./g, "\\.")} is missing`));

  const held = reservations(dataDir);
  const ip = addr.split("/")[0]!;
  assert.ok(held.has(ip));
  sh(["rm", join(dataDir, "gztest", ip)]);
  c = check();
  assert.match(json<{ msg: string }>(c).msg, /is not reserved/);

  sh(["ip", "-n", pod, "link", "del", "eth0"]);
  c = check();
  const e = json<{ code: number; msg: string }>(c);
  assert.equal(e.code, 100);
  assert.match(e.msg, /interface eth0 does not exist/);
  assert.match(e.msg, /host veth gz[0-9a-f]+ does not exist/);
});

test("DEL is idempotent: with the namespace, then with CNI_NETNS empty, then again", () => {
  const pod = w.netns("del");
  const r = add(pod, "ctr-del");
  assert.equal(r.status, 0, r.stdout);
  const res = json<AddResult>(r);
  const ip = res.ips[0]!.address.split("/")[0]!;
  const hostVeth = res.interfaces[1]!.name;
  assert.ok(reservations(dataDir).has(ip));
  const d1 = plugin({ node, command: "DEL", containerId: "ctr-del", netns: nsPath(pod) }, { ...conf, prevResult: res });
  assert.equal(d1.status, 0, d1.stdout);
  assert.equal(d1.stdout, "", "DEL prints nothing on success");
  assert.equal(reservations(dataDir).has(ip), false, "address released");
  assert.equal(linkExists(node, hostVeth), false, "host veth removed");
  assert.equal(linkExists(pod, "eth0"), false, "pod end removed with it");
  for (let i = 0; i < 2; i++) {
    const d = plugin({ node, command: "DEL", containerId: "ctr-del", netns: "" }, conf);
    assert.equal(d.status, 0, d.stdout);
  }
  // DEL for an attachment that never existed, with no namespace, is also fine.
  assert.equal(plugin({ node, command: "DEL", containerId: "never-was", netns: "" }, conf).status, 0);
});

test("GC removes reservations and veths that are not valid attachments, keeps the rest", () => {
  const keep = w.netns("gck");
  const drop = w.netns("gcd");
  const rk = json<AddResult>(add(keep, "ctr-keep"));
  const rd = json<AddResult>(add(drop, "ctr-drop"));
  const gc = plugin({ node, command: "GC" }, { ...conf, "cni.dev/valid-attachments": [
    { containerID: "ctr-keep", ifname: "eth0" }, { containerID: "ctr-a", ifname: "eth0" }, { containerID: "ctr-b", ifname: "eth0" },
  ] });
  assert.equal(gc.status, 0, gc.stdout);
  const held = reservations(dataDir);
  assert.ok(held.has(rk.ips[0]!.address.split("/")[0]!), "valid reservation kept");
  assert.equal(held.has(rd.ips[0]!.address.split("/")[0]!), false, "invalid reservation released");
  assert.ok(linkExists(node, rk.interfaces[1]!.name));
  assert.equal(linkExists(node, rd.interfaces[1]!.name), false);
  assert.ok(ping(keep, "10.99.0.1"), "the kept pod still works");
});

test("GC needs cniVersion 1.1.0 and the valid-attachments list", () => {
  const old = plugin({ node, command: "GC" }, { ...conf, cniVersion: "1.0.0", "cni.dev/valid-attachments": [] });
  assert.equal(json<{ code: number }>(old).code, 1);
  const none = plugin({ node, command: "GC" }, conf);
  assert.equal(json<{ code: number }>(none).code, 7);
});

test("STATUS: ok with a usable range, code 50 when the subnet file is missing or the range is full", () => {
  assert.equal(plugin({ node, command: "STATUS" }, conf).status, 0);
  const noFile = plugin({ node, command: "STATUS" }, { cniVersion: "1.1.0", name: "gzsub", type: "gauze", subnetFile: join(dataDir, "missing.env") });
  assert.equal(noFile.status, 1);
  const e = json<{ code: number; msg: string; details: string }>(noFile);
  assert.equal(e.code, 50);
  assert.match(e.msg, /missing\.env does not exist/);
  assert.match(e.details, /agent/);

  const tiny = { ...conf, name: "gztiny", ipam: { ranges: [[{ subnet: "10.98.0.0/30" }]], dataDir } };
  const pod = w.netns("tiny");
  assert.equal(add(pod, "ctr-tiny", tiny).status, 0);
  const full = plugin({ node, command: "STATUS" }, tiny);
  assert.equal(json<{ code: number }>(full).code, 50);
  plugin({ node, command: "DEL", containerId: "ctr-tiny", netns: nsPath(pod) }, tiny);
  assert.equal(plugin({ node, command: "STATUS" }, tiny).status, 0);
});

test("the subnet file written by the agent drives IPAM, MTU and routes", () => {
  const file = join(dataDir, "subnet.env");
  writeFileSync(file, "GAUZE_NETWORK=10.97.0.0/16\nGAUZE_SUBNET=10.97.3.1/24\nGAUZE_MTU=1450\nGAUZE_IPMASQ=true\n");
  const sconf = { cniVersion: "1.1.0", name: "gzsubnet", type: "gauze", bridge: "gzbr1", subnetFile: file };
  const pod = w.netns("sub");
  w.dirs.push("/var/lib/cni/networks/gzsubnet"); // host-local's default data dir, for this network only
  const r = plugin({ node, command: "ADD", containerId: "ctr-sub", netns: nsPath(pod) }, sconf);
  assert.equal(r.status, 0, r.stdout);
  const res = json<AddResult>(r);
  assert.equal(res.ips[0]!.address, "10.97.3.2/24");
  assert.deepEqual(res.routes, [{ dst: "10.97.0.0/16" }, { dst: "0.0.0.0/0", gw: "10.97.3.1" }]);
  assert.equal(ipIn<{ mtu: number }[]>(pod, ["link", "show", "dev", "eth0"])[0]!.mtu, 1450);
  assert.equal(ipIn<{ mtu: number }[]>(node, ["link", "show", "dev", "gzbr1"])[0]!.mtu, 1450);
  assert.equal(res.interfaces[2]!.mtu, 1450);
  // Reservations go to host-local's default place unless the config says otherwise: clean it.
  assert.equal(plugin({ node, command: "DEL", containerId: "ctr-sub", netns: nsPath(pod) }, sconf).status, 0);
});

test("CNI_ARGS as kubelet sends them, and an IP request, are honoured", () => {
  const pod = w.netns("args");
  const r = plugin({
    node, command: "ADD", containerId: "ctr-args", netns: nsPath(pod),
    args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=ctr-args;K8S_POD_UID=1234;IP=10.99.0.77",
  }, conf);
  assert.equal(r.status, 0, r.stdout);
  assert.equal(json<AddResult>(r).ips[0]!.address, "10.99.0.77/24");
  assert.equal(plugin({ node, command: "DEL", containerId: "ctr-args", netns: "" }, conf).status, 0);
});

test("dual stack: an IPv4 and an IPv6 range set give each pod both families, default routes for both; CHECK and DEL cover both", () => {
  const ds = { ...gauzeConf(dataDir, { name: "gzdual", bridge: "gzbr6" }), ipam: { ranges: [[{ subnet: "10.77.0.0/24" }], [{ subnet: "fd00:77::/64" }]], dataDir } };
  const a = w.netns("dsa");
  const b = w.netns("dsb");
  const ra = plugin({ node, command: "ADD", containerId: "ds-a", netns: nsPath(a) }, ds);
  const rb = plugin({ node, command: "ADD", containerId: "ds-b", netns: nsPath(b) }, ds);
  assert.equal(ra.status, 0, ra.stdout);
  const res = json<AddResult>(ra);
  assert.deepEqual(res.ips.map((i) => i.address), ["10.77.0.2/24", "fd00:77::2/64"]);
  assert.deepEqual(res.routes, [{ dst: "0.0.0.0/0", gw: "10.77.0.1" }, { dst: "::/0", gw: "fd00:77::1" }]);
  const ipb6 = json<AddResult>(rb).ips[1]!.address.split("/")[0]!;
  // IPv6 duplicate address detection takes a moment before the address is usable.
  let ok6 = false;
  for (let i = 0; i < 30 && !ok6; i++) ok6 = sh(["ip", "netns", "exec", a, "ping", "-c", "1", "-W", "1", ipb6]).status === 0;
  assert.ok(ok6, "IPv6 across the bridge");
  assert.ok(ping(a, "10.77.0.3"));
  assert.equal(plugin({ node, command: "CHECK", containerId: "ds-a", netns: nsPath(a) }, { ...ds, prevResult: res }).status, 0);
  assert.deepEqual([...reservations(dataDir, "gzdual").keys()].sort(), ["10.77.0.2", "10.77.0.3", "fd00:77::2", "fd00:77::3"]);
  for (const [id, ns] of [["ds-a", a], ["ds-b", b]] as const) assert.equal(plugin({ node, command: "DEL", containerId: id, netns: nsPath(ns) }, ds).status, 0);
  assert.equal(reservations(dataDir, "gzdual").size, 0);
});

test("CNI_NETNS as /proc/<pid>/ns/net (an unnamed namespace, as some runtimes pass it)", async () => {
  const { spawn } = await import("node:child_process");
  const holder = spawn("unshare", ["--net", "sleep", "30"], { stdio: "ignore" });
  try {
    await new Promise((r) => setTimeout(r, 100));
    const nsFile = `/proc/${holder.pid}/ns/net`;
    const r = plugin({ node, command: "ADD", containerId: "ctr-proc", netns: nsFile }, conf);
    assert.equal(r.status, 0, r.stdout);
    const ip = json<AddResult>(r).ips[0]!.address.split("/")[0]!;
    assert.match(sh(["nsenter", `--net=${nsFile}`, "ip", "-4", "addr", "show", "dev", "eth0"]).stdout, new RegExp(ip.replace(/\./g, "\\.")));
    assert.equal(sh(["nsenter", `--net=${nsFile}`, "ping", "-c", "1", "-W", "1", "10.99.0.1"]).status, 0);
    assert.equal(plugin({ node, command: "DEL", containerId: "ctr-proc", netns: nsFile }, conf).status, 0);
  } finally {
    holder.kill("SIGKILL");
  }
});
