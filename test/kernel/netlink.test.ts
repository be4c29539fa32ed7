// The netlink client against the real kernel, with iproute2 as the independent oracle: what
// gauze makes, `ip -j` / `bridge -j` must see; what ip makes, gauze must read the same. Runs
// under bun (the runtime the plugin and agent use), as root, inside gz-k* namespaces only.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  NetlinkError, Rtnl, addAddr, addBridge, addRoute, addVeth, addVxlan, delFdb, delLink, delNeigh, delRoute, markLink, replaceFdb, replaceNeigh,
  replaceRoute, setHairpin, setLink, withRtnl,
} from "../../src/kernel/netlink/index.ts";
import { watchKernel, type KernelEvent } from "../../src/kernel/netlink/monitor.ts";
import { addNetns, delNetns, inNetns, netnsKind, netnsPath, openNetns } from "../../src/kernel/netns.ts";
import { closeFd } from "../../src/kernel/files.ts";

const tag = `gz-k${process.pid % 100000}`;
const made: string[] = [];
function ns(suffix: string): string {
  const name = `${tag}-${suffix}`;
  addNetns(name);
  made.push(name);
  return netnsPath(name);
}
after(() => { for (const n of made) delNetns(n); });

function ipj(netns: string, ...args: string[]): unknown[] {
  const r = spawnSync("nsenter", [`--net=${netns}`, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as unknown[]) : [];
}

test("namespaces: made and removed without ip; ip netns list agrees", () => {
  const p = ns("a");
  assert.equal(netnsKind(p), "netns");
  const listed = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout;
  assert.match(listed, new RegExp(`^${tag}-a\\b`, "m"));
  // A fresh namespace: only lo, down.
  const links = ipj(p, "ip", "-j", "link", "show") as { ifname: string; flags: string[] }[];
  assert.deepEqual(links.map((l) => l.ifname), ["lo"]);
  const name = `${tag}-gone`;
  addNetns(name);
  delNetns(name);
  assert.equal(netnsKind(netnsPath(name)), "missing");
  assert.doesNotMatch(spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout, new RegExp(`^${name}\\b`, "m"));
  assert.throws(() => addNetns("not-ours"), /only manages gz-\* namespaces/);
});

test("a pod's attachment as the plugin makes it: bridge, veth with its peer in another namespace, hairpin, alias, addresses, routes", () => {
  const node = ns("node");
  const pod = ns("pod");
  withRtnl({ netns: node }, (nl) => {
    nl.run([addBridge({ name: "gzbr0", mtu: 1450, mac: "0a:58:0a:f4:01:01", up: true })]);
    const br = nl.link("gzbr0")!;
    nl.run([addAddr(br, "10.244.1.1/24")]);
    const fd = openNetns(pod);
    try {
      nl.run([addVeth({ name: "gzv1", mtu: 1450, master: br, up: true }, { name: "eth0", mtu: 1450, netnsFd: fd }), markLink("gzv1", { alias: "gauze:net:abc/eth0", hairpin: true })]);
    } finally {
      closeFd(fd);
    }
    const host = nl.link("gzv1")!;
    const [ipHost] = ipj(node, "ip", "-j", "-d", "link", "show", "dev", "gzv1") as { ifname: string; master: string; mtu: number; ifalias?: string; flags: string[]; linkinfo: { info_kind: string; info_slave_data: { hairpin: boolean } }; address: string }[];
    assert.equal(ipHost!.master, "gzbr0");
    assert.equal(ipHost!.mtu, 1450);
    assert.equal(ipHost!.linkinfo.info_kind, "veth");
    assert.equal(ipHost!.linkinfo.info_slave_data.hairpin, true);
    assert.equal(ipHost!.ifalias, "gauze:net:abc/eth0");
    assert.ok(ipHost!.flags.includes("UP"));
    assert.equal(host.mac, ipHost!.address);
    assert.equal(host.hairpin, true);
    assert.equal(host.alias, "gauze:net:abc/eth0");
    const [ipBr] = ipj(node, "ip", "-j", "-d", "addr", "show", "dev", "gzbr0") as { address: string; linkinfo: { info_kind: string }; addr_info: { local: string; prefixlen: number }[] }[];
    assert.equal(ipBr!.address, "0a:58:0a:f4:01:01");
    assert.equal(ipBr!.linkinfo.info_kind, "bridge");
    assert.deepEqual(ipBr!.addr_info.map((a) => `${a.local}/${a.prefixlen}`), ["10.244.1.1/24"]);
    // setHairpin (AF_BRIDGE protinfo) turns it off again; the oracle agrees.
    nl.run([setHairpin(host, false)]);
    const [after] = ipj(node, "ip", "-j", "-d", "link", "show", "dev", "gzv1") as { linkinfo: { info_slave_data: { hairpin: boolean } } }[];
    assert.equal(after!.linkinfo.info_slave_data.hairpin, false);
  });
  withRtnl({ netns: pod }, (nl) => {
    const eth0 = nl.link("eth0")!;
    nl.run([setLink({ index: 1, name: "lo" }, { up: true }), addAddr(eth0, "10.244.1.2/24"), setLink(eth0, { up: true }), addRoute({ dst: "default", via: "10.244.1.1", dev: eth0 })]);
    const routes = ipj(pod, "ip", "-j", "route", "show") as { dst: string; gateway?: string; dev: string }[];
    assert.ok(routes.some((r) => r.dst === "default" && r.gateway === "10.244.1.1" && r.dev === "eth0"), JSON.stringify(routes));
    const mine = nl.routes(4).map((r) => `${r.dst} ${r.gateway ?? "-"}`).sort();
    assert.deepEqual(mine, ["0.0.0.0/0 10.244.1.1", "10.244.1.0/24 -"]);
    assert.deepEqual(nl.addrs(eth0, 4).map((a) => `${a.address}/${a.prefixLen}`), ["10.244.1.2/24"]);
    assert.equal(nl.link("lo")!.up, true);
  });
  // Traffic: the pod reaches its gateway through what was made.
  assert.equal(spawnSync("nsenter", [`--net=${pod}`, "ping", "-c", "1", "-W", "1", "10.244.1.1"]).status, 0);
  // Deleting the host end removes the pair.
  withRtnl({ netns: node }, (nl) => nl.run([delLink("gzv1")]));
  assert.deepEqual((ipj(pod, "ip", "-j", "link", "show") as { ifname: string }[]).map((l) => l.ifname), ["lo"]);
});

test("the overlay as the agent makes it: vxlan device, onlink routes, permanent neighbours, FDB; read back like ip reads them", () => {
  const node = ns("vx");
  withRtnl({ netns: node }, (nl) => {
    const fd = openNetns(ns("vxpeer"));
    try {
      nl.run([addVeth({ name: "eth0", up: true }, { name: "eth0", netnsFd: fd })]);
    } finally {
      closeFd(fd);
    }
    const eth0 = nl.link("eth0")!;
    nl.run([addAddr(eth0, "172.18.0.2/16")]);
    nl.run([addVxlan({ name: "gauze.1", vni: 1, port: 8472, local: "172.18.0.2", dev: eth0, learning: false, mac: "0e:47:ac:12:00:02", mtu: 1450, up: true })]);
    const vx = nl.link("gauze.1")!;
    const [ipVx] = ipj(node, "ip", "-j", "-d", "link", "show", "dev", "gauze.1") as { mtu: number; address: string; linkinfo: { info_kind: string; info_data: { id: number; port: number; local: string; learning: boolean; link: string } } }[];
    assert.deepEqual(ipVx!.linkinfo.info_data.id, 1);
    assert.equal(ipVx!.linkinfo.info_data.port, 8472);
    assert.equal(ipVx!.linkinfo.info_data.local, "172.18.0.2");
    assert.equal(ipVx!.linkinfo.info_data.learning, false);
    assert.equal(ipVx!.linkinfo.info_data.link, "eth0");
    assert.equal(ipVx!.mtu, 1450);
    assert.deepEqual(vx.vxlan, { vni: 1, port: 8472, learning: false, dev: eth0.index, local: "172.18.0.2" });
    nl.run([
      replaceFdb(vx, "0e:47:ac:12:00:03", "172.18.0.3"),
      replaceNeigh(vx, "10.244.2.0", "0e:47:ac:12:00:03"),
      replaceRoute({ dst: "10.244.2.0/24", via: "10.244.2.0", dev: vx, onlink: true, protocol: 71 }),
    ]);
    const routes = ipj(node, "ip", "-j", "route", "show", "dev", "gauze.1") as { dst: string; gateway: string; flags: string[]; protocol: string }[];
    assert.deepEqual(routes.map((r) => [r.dst, r.gateway, r.flags, r.protocol]), [["10.244.2.0/24", "10.244.2.0", ["onlink"], "71"]]);
    const neigh = ipj(node, "ip", "-j", "neigh", "show", "dev", "gauze.1") as { dst: string; lladdr: string; state: string[] }[];
    assert.deepEqual(neigh.map((n) => [n.dst, n.lladdr, n.state]), [["10.244.2.0", "0e:47:ac:12:00:03", ["PERMANENT"]]]);
    const fdb = (ipj(node, "bridge", "-j", "fdb", "show", "dev", "gauze.1") as { mac: string; dst?: string; state?: string }[]).filter((f) => f.dst);
    assert.deepEqual(fdb.map((f) => [f.mac, f.dst, f.state]), [["0e:47:ac:12:00:03", "172.18.0.3", "permanent"]]);
    // gauze reads what it made the way ip does.
    assert.deepEqual(nl.routes(4, vx).map((r) => [r.dst, r.gateway, r.flags, r.protocol]), [["10.244.2.0/24", "10.244.2.0", 4, 71]]);
    assert.deepEqual(nl.neighbours(4, vx).map((n) => [n.dst, n.lladdr, n.state]), [["10.244.2.0", "0e:47:ac:12:00:03", 0x80]]);
    assert.deepEqual(nl.fdb(vx).filter((f) => f.dst).map((f) => [f.mac, f.dst]), [["0e:47:ac:12:00:03", "172.18.0.3"]]);
    // Deleting them, one request each in one batch.
    nl.run([delRoute({ dst: "10.244.2.0/24", dev: vx, protocol: 71 }), delNeigh(vx, "10.244.2.0"), delFdb(vx, "0e:47:ac:12:00:03", "172.18.0.3")]);
    assert.deepEqual(nl.routes(4, vx), []);
    assert.deepEqual(nl.neighbours(4, vx).filter((n) => n.state & 0x80), []);
    assert.deepEqual(nl.fdb(vx).filter((f) => f.dst), []);
  });
});

test("what ip makes, gauze reads: links, addresses, IPv6, routes with metrics", () => {
  const node = ns("read");
  const ip = (...a: string[]) => assert.equal(spawnSync("nsenter", [`--net=${node}`, "ip", ...a]).status, 0, a.join(" "));
  ip("link", "add", "gzb9", "type", "bridge");
  ip("link", "set", "gzb9", "up");
  ip("addr", "add", "10.9.0.1/24", "dev", "gzb9");
  ip("-6", "addr", "add", "fd00:9::1/64", "dev", "gzb9", "nodad");
  ip("route", "add", "10.99.0.0/16", "via", "10.9.0.7", "dev", "gzb9", "metric", "5");
  ip("-6", "route", "add", "fd99::/48", "via", "fd00:9::7", "dev", "gzb9");
  withRtnl({ netns: node }, (nl) => {
    const br = nl.link("gzb9")!;
    assert.equal(br.kind, "bridge");
    assert.equal(br.up, true);
    const addrs = nl.addrs(br).map((a) => `${a.address}/${a.prefixLen}`);
    assert.ok(addrs.includes("10.9.0.1/24") && addrs.includes("fd00:9::1/64"), addrs.join(" "));
    const r4 = nl.routes(4, br).find((r) => r.dst === "10.99.0.0/16")!;
    assert.equal(r4.gateway, "10.9.0.7");
    assert.equal(r4.priority, 5);
    const r6 = nl.routes(6, br).find((r) => r.dst === "fd99::/48")!;
    assert.equal(r6.gateway, "fd00:9::7");
    assert.ok(nl.links().some((l) => l.name === "lo" && l.index === 1));
  });
});

test("refusals name the operation and the object, with the errno and the kernel's own words", () => {
  const node = ns("err");
  withRtnl({ netns: node }, (nl) => {
    nl.run([addBridge({ name: "gzb1", up: true })]);
    const br = nl.link("gzb1")!;
    let e: unknown;
    try { nl.run([addRoute({ dst: "10.244.1.0/24", via: "10.244.1.0", dev: br })]); } catch (x) { e = x; }
    assert.ok(e instanceof NetlinkError);
    assert.equal(e.code, "ENETUNREACH");
    assert.match(e.message, /^add route 10\.244\.1\.0\/24 via 10\.244\.1\.0 dev gzb1 in \/run\/netns\/.*: network is unreachable \(ENETUNREACH\)/);
    assert.match(e.message, /\(kernel: .+\)$/, "the extended ack text");
    assert.throws(() => nl.run([addBridge({ name: "gzb1" })]), /add link gzb1 type bridge.*: file exists \(EEXIST\)/);
    assert.throws(() => nl.run([delLink("gzb-nothere")]), /delete link gzb-nothere.*: no such device \(ENODEV\)/);
    // One bad request in a batch fails alone; the others are done.
    const out = nl.apply([addAddr(br, "10.1.0.1/24"), delLink("gzb-nothere"), addAddr(br, "10.2.0.1/24")]);
    assert.deepEqual(out.map((x) => x?.code), [undefined, "ENODEV", undefined]);
    assert.equal(nl.addrs(br, 4).length, 2);
    // A thousand requests in one call: chunked under the hood, every answer accounted for.
    const many = Array.from({ length: 1000 }, (_, i) => addAddr(br, `10.50.${i >> 8}.${(i & 255) || 1}/32`));
    const res = nl.apply(many);
    assert.equal(res.length, 1000);
    // i = 0 and i = 1 both give x.y.z.1 in each of the four /24s: four duplicates, the rest made.
    assert.equal(res.filter((x) => x?.code === "EEXIST").length, 4);
    assert.equal(res.filter((x) => x === undefined).length, 996);
    assert.equal(nl.addrs(br, 4).length, 2 + 996);
  });
});

test("a socket opened in another namespace stays there; the thread returns home", () => {
  const a = ns("home-a");
  const before = spawnSync("readlink", ["/proc/self/ns/net"], { encoding: "utf8" }).stdout;
  const sock = Rtnl.open({ netns: a });
  try {
    sock.run([addBridge({ name: "gzonly-a" })]);
    assert.ok(sock.link("gzonly-a"));
    // The caller's own namespace does not have it.
    withRtnl({}, (home) => assert.equal(home.link("gzonly-a"), undefined));
    assert.equal(inNetns(a, () => withRtnl({}, (inside) => !!inside.link("gzonly-a"))), true);
  } finally {
    sock.close();
  }
  assert.equal(spawnSync("readlink", ["/proc/self/ns/net"], { encoding: "utf8" }).stdout, before);
});

test("events: deletions and changes in the namespace arrive, parsed", async () => {
  const node = ns("ev");
  const got: KernelEvent[] = [];
  const watch = inNetns(node, () => watchKernel({ onEvents: (e) => got.push(...e), onOverrun: () => undefined }));
  try {
    withRtnl({ netns: node }, (nl) => {
      nl.run([addBridge({ name: "gzev0", up: true })]);
      const br = nl.link("gzev0")!;
      nl.run([addAddr(br, "10.7.0.1/24")]);
      nl.run([addRoute({ dst: "10.8.0.0/16", via: "10.7.0.9", dev: br })]);
      nl.run([delRoute({ dst: "10.8.0.0/16", dev: br })]);
      nl.run([delLink(br)]);
    });
    const until = Date.now() + 2000;
    while (Date.now() < until && !got.some((e) => e.kind === "link" && e.op === "del")) await new Promise((r) => setTimeout(r, 10));
    assert.ok(got.some((e) => e.kind === "link" && e.op === "new" && e.link.name === "gzev0"));
    assert.ok(got.some((e) => e.kind === "addr" && e.op === "new" && e.addr.address === "10.7.0.1"));
    assert.ok(got.some((e) => e.kind === "route" && e.op === "new" && e.route.dst === "10.8.0.0/16" && e.route.gateway === "10.7.0.9"));
    assert.ok(got.some((e) => e.kind === "route" && e.op === "del" && e.route.dst === "10.8.0.0/16"));
    assert.ok(got.some((e) => e.kind === "link" && e.op === "del" && e.link.name === "gzev0"));
  } finally {
    watch.stop();
  }
});
