// Netlink messages without a kernel: replies built here the way the kernel lays them out are
// parsed back field by field; then the same replies cut short and garbled at random must give
// either a parsed object, undefined, or a NetlinkParseError: never another exception or a hang.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Attrs, NetlinkParseError, NlWriter, messages } from "../../src/kernel/netlink/wire.ts";
import { parseLink } from "../../src/kernel/netlink/link.ts";
import { parseAddr } from "../../src/kernel/netlink/addr.ts";
import { parseRoute } from "../../src/kernel/netlink/route.ts";
import { parseFdb, parseNeigh } from "../../src/kernel/netlink/neigh.ts";
import { AF_BRIDGE, AF_INET, AF_INET6, IFA, IFF, IFLA, IFLA_BRPORT, IFLA_INFO, IFLA_VXLAN, NDA, NTF, NUD, RTA, RTM } from "../../src/kernel/netlink/uapi.ts";

const mac = (s: string) => new Uint8Array(s.split(":").map((x) => parseInt(x, 16)));

function vxlanLink(): Uint8Array {
  const w = new NlWriter(64);
  w.beginMessage(RTM.NEWLINK, 0, 7);
  const at = w.fixed(16);
  w.view.setInt32(at + 4, 5, true);
  w.view.setUint32(at + 8, IFF.UP | IFF.LOWER_UP, true);
  w.string(IFLA.IFNAME, "gauze.1");
  w.u32(IFLA.MTU, 1450);
  w.bytes(IFLA.ADDRESS, mac("0e:47:ac:12:00:02"));
  w.u32(IFLA.MASTER, 3);
  w.string(IFLA.IFALIAS, "hello");
  w.u8(IFLA.OPERSTATE, 6);
  w.beginNest(IFLA.LINKINFO);
  w.string(IFLA_INFO.KIND, "vxlan");
  w.beginNest(IFLA_INFO.DATA);
  w.u32(IFLA_VXLAN.ID, 42);
  w.bytes(IFLA_VXLAN.LOCAL, new Uint8Array([172, 18, 0, 2]));
  w.u32(IFLA_VXLAN.LINK, 2);
  w.u16be(IFLA_VXLAN.PORT, 8472);
  w.u8(IFLA_VXLAN.LEARNING, 0);
  w.endNest();
  w.string(IFLA_INFO.SLAVE_KIND, "bridge");
  w.beginNest(IFLA_INFO.SLAVE_DATA);
  w.u8(IFLA_BRPORT.MODE, 1);
  w.endNest();
  w.endNest();
  w.endMessage();
  return w.buf.slice(0, w.len);
}

function route6(): Uint8Array {
  const w = new NlWriter(16);
  w.beginMessage(RTM.NEWROUTE, 0, 1);
  const at = w.fixed(12);
  w.view.setUint8(at, AF_INET6);
  w.view.setUint8(at + 1, 48);
  w.view.setUint8(at + 4, 254);
  w.view.setUint8(at + 5, 71);
  w.view.setUint8(at + 7, 1);
  w.view.setUint32(at + 8, 4, true);
  w.bytes(RTA.DST, new Uint8Array([0xfd, 0x99, ...new Array(14).fill(0)]));
  w.bytes(RTA.GATEWAY, new Uint8Array([0xfd, 0, 0, 9, ...new Array(11).fill(0), 7]));
  w.u32(RTA.OIF, 4);
  w.u32(RTA.PRIORITY, 1024);
  w.endMessage();
  return w.buf.slice(0, w.len);
}

function addr4(): Uint8Array {
  const w = new NlWriter(16);
  w.beginMessage(RTM.NEWADDR, 0, 1);
  const at = w.fixed(8);
  w.view.setUint8(at, AF_INET);
  w.view.setUint8(at + 1, 24);
  w.view.setUint32(at + 4, 3, true);
  w.bytes(IFA.ADDRESS, new Uint8Array([10, 244, 1, 1]));
  w.bytes(IFA.LOCAL, new Uint8Array([10, 244, 1, 1]));
  w.string(IFA.LABEL, "cni0");
  w.endMessage();
  return w.buf.slice(0, w.len);
}

function neigh(family: number): Uint8Array {
  const w = new NlWriter(16);
  w.beginMessage(RTM.NEWNEIGH, 0, 1);
  const at = w.fixed(12);
  w.view.setUint8(at, family);
  w.view.setInt32(at + 4, 5, true);
  w.view.setUint16(at + 8, NUD.PERMANENT, true);
  w.view.setUint8(at + 10, family === AF_BRIDGE ? NTF.SELF : 0);
  if (family === AF_BRIDGE) {
    w.bytes(NDA.LLADDR, mac("0e:47:ac:12:00:03"));
    w.bytes(NDA.DST, new Uint8Array([172, 18, 0, 3]));
  } else {
    w.bytes(NDA.DST, new Uint8Array([10, 244, 2, 0]));
    w.bytes(NDA.LLADDR, mac("0e:47:ac:12:00:03"));
  }
  w.endMessage();
  return w.buf.slice(0, w.len);
}

function parseAll(b: Uint8Array): unknown[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: unknown[] = [];
  for (const m of messages(b, v, b.length)) out.push(parseLink(b, v, m), parseAddr(b, v, m), parseRoute(b, v, m), parseNeigh(b, v, m), parseFdb(b, v, m));
  return out;
}

function one<T>(b: Uint8Array, parse: (b: Uint8Array, v: DataView, m: Parameters<typeof parseLink>[2]) => T): T {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const [m] = [...messages(b, v, b.length)];
  return parse(b, v, m!);
}

test("a link reply: name, index, flags, MTU, MAC, master, alias, operstate, VXLAN and bridge-port details", () => {
  assert.deepEqual(one(vxlanLink(), parseLink), {
    index: 5, name: "gauze.1", mtu: 1450, flags: IFF.UP | IFF.LOWER_UP, up: true, operstate: "UP", mac: "0e:47:ac:12:00:02", master: 3, alias: "hello",
    kind: "vxlan", slaveKind: "bridge", vxlan: { vni: 42, port: 8472, learning: false, dev: 2, local: "172.18.0.2" }, hairpin: true,
  });
});

test("route, address, neighbour and FDB replies", () => {
  assert.deepEqual(one(route6(), parseRoute), { family: 6, dst: "fd99::/48", table: 254, protocol: 71, scope: 0, type: 1, flags: 4, gateway: "fd00:9::7", oif: 4, priority: 1024 });
  assert.deepEqual(one(addr4(), parseAddr), { index: 3, family: 4, address: "10.244.1.1", prefixLen: 24, scope: 0 });
  assert.deepEqual(one(neigh(AF_INET), parseNeigh), { family: 4, index: 5, dst: "10.244.2.0", state: NUD.PERMANENT, flags: 0, lladdr: "0e:47:ac:12:00:03" });
  assert.deepEqual(one(neigh(AF_BRIDGE), parseFdb), { index: 5, mac: "0e:47:ac:12:00:03", state: NUD.PERMANENT, flags: NTF.SELF, dst: "172.18.0.3" });
  // Each parser says "not mine" to the others' messages.
  assert.equal(one(neigh(AF_BRIDGE), parseNeigh), undefined);
  assert.equal(one(neigh(AF_INET), parseFdb), undefined);
});

test("writer: attributes are 4-byte aligned, nests carry their length and the nested flag", () => {
  const w = new NlWriter(8);
  w.beginMessage(RTM.NEWLINK, 0, 1);
  w.fixed(16);
  w.u8(1, 7);
  w.beginNest(2);
  w.string(3, "ab");
  w.endNest();
  w.endMessage();
  const b = w.buf.slice(0, w.len);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), b.length);
  assert.equal(b.length % 4, 0);
  const a = new Attrs(b, v, 32, b.length, 3);
  assert.equal(a.u8(1), 7);
  assert.equal(a.nested(2, 3)!.string(3), "ab");
  assert.equal(v.getUint16(40 + 2, true) & 0x8000, 0x8000, "NLA_F_NESTED");
  assert.equal(a.garbled, false);
});

test("replies cut short anywhere, or with a length that lies, are reported, not trusted", () => {
  const full = vxlanLink();
  for (let n = 0; n < full.length; n++) {
    const cut = full.slice(0, n);
    try {
      const out = parseAll(cut);
      // A cut inside the header stops the walk with nothing; a cut message is never half-read.
      assert.ok(out.length === 0, `cut at ${n} parsed something`);
    } catch (e) {
      assert.ok(e instanceof NetlinkParseError, `cut at ${n}: ${(e as Error).message}`);
    }
  }
  // A message whose header is consistent but that ends early: what is there is read, nothing more.
  const short = vxlanLink().slice(0, 16 + 16 + 12);
  new DataView(short.buffer).setUint32(0, short.length, true);
  const link = one(short, parseLink);
  assert.equal(link?.name, "gauze.1");
  assert.equal(link?.vxlan, undefined);
  assert.equal(link?.mtu, 0);
  // An attribute whose length runs past its message stops the walk; the ones before it stand.
  const over = vxlanLink();
  new DataView(over.buffer).setUint16(32 + 12, 4000, true); // the MTU attribute claims 4000 bytes
  const l2 = one(over, parseLink);
  assert.equal(l2?.name, "gauze.1");
  assert.equal(l2?.mac, undefined);
});

test("fuzz: 20 000 garbled replies never throw anything but NetlinkParseError", () => {
  const seeds = [vxlanLink(), route6(), addr4(), neigh(AF_INET), neigh(AF_BRIDGE)];
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  let parsed = 0, refused = 0;
  for (let i = 0; i < 20000; i++) {
    const base = seeds[i % seeds.length]!;
    const b = base.slice();
    const flips = 1 + Math.floor(rnd() * 6);
    for (let f = 0; f < flips; f++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const cut = rnd() < 0.3 ? b.slice(0, Math.floor(rnd() * b.length)) : b;
    try {
      parseAll(cut);
      parsed++;
    } catch (e) {
      if (!(e instanceof NetlinkParseError)) throw new Error(`input ${Buffer.from(cut).toString("hex")}: ${(e as Error).stack}`);
      refused++;
    }
  }
  assert.ok(parsed > 0 && refused > 0, `${parsed} parsed, ${refused} refused`);
});
