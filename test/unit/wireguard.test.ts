// WireGuard without a tunnel: the dissector on synthetic messages of every type (what a capture
// of sealed traffic can and cannot say), the backend's options, this node's key pair (checked
// against `wg pubkey`), and the backend's plan from a view of the device's peers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeOptions, dissect } from "../../src/packet/dissect.ts";
import type { Packet } from "../../src/capture/reader.ts";
import { packetJson, packetText } from "../../src/capture/format.ts";
import { Summary, summaryText } from "../../src/capture/summary.ts";
import { WireguardBackend, nodeKeys, parseWireguardOptions, validKey } from "../../src/backend/wireguard.ts";
import type { KernelView } from "../../src/backend/backend.ts";
import type { Lease } from "../../src/store/registry.ts";
import { concat, eth, ipv4, udp } from "../support/packets.ts";
import { parseCIDR } from "../../src/net/cidr.ts";

const POD_NETWORK = parseCIDR("10.244.0.0/16")!.prefix;

const le32 = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; };
/** A WireGuard transport message: header (type 4, receiver, counter) + sealed packet + 16-byte tag. */
const transport = (sealed: number, counter = 5) => concat(new Uint8Array([4, 0, 0, 0]), le32(0x11223344), le32(counter), le32(0), new Uint8Array(sealed), new Uint8Array(16));
const frame = (wg: Uint8Array) => eth("0e:00:00:00:00:02", "0e:00:00:00:00:01", 0x0800, ipv4("172.18.0.2", "172.18.0.3", 17, udp("172.18.0.2", "172.18.0.3", 51820, 51820, wg)));
const packet = (data: Uint8Array): Packet => ({ n: 1, offset: 0, tsSec: 0, tsNsec: 0, wireLen: data.length, linkType: 1, iface: 0, data });

test("dissect: a sealed ping is 156 bytes of outer IP, 96 sealed (84 padded to 16), 60 bytes of overhead; nothing inside is readable", () => {
  const p = packet(frame(transport(96)));
  const d = dissect(p, decodeOptions());
  assert.equal(d.malformed, undefined);
  assert.deepEqual(d.layers.map((l) => l.kind), ["eth", "ipv4", "udp", "wireguard"], "no inner IP or ICMP: it is encrypted");
  assert.deepEqual(d.sealed, { kind: "wireguard", outerIpLen: 156, innerPaddedLen: 96, overheadBytes: 60 });
  assert.equal(d.tunnel, undefined);
  assert.match(packetText(p, d), /wireguard: outer frame 170 bytes, outer IP 156, sealed inner packet 96 \(padded to 16\), overhead 60 \(IP 20 \+ UDP 8 \+ WireGuard 32\)/);
  assert.match(packetText(p, d), /WireGuard 16B {2}transport data, receiver 0x11223344, counter 5, sealed packet 96 bytes \(\+16 tag\)/);
  const j = packetJson(p, d) as { sealed: Record<string, unknown>; layers: Record<string, unknown>[] };
  assert.deepEqual(j.sealed, { protocol: "wireguard", outerIpLen: 156, innerPaddedLen: 96, overheadBytes: 60 });
  assert.deepEqual(j.layers[3], { layer: "wireguard", depth: 0, offset: 42, headerLen: 16, type: 4, receiver: 0x11223344, counter: "5", sealedLen: 96 });
  // A full-size segment: 1440 is already a multiple of 16, so the overhead is exactly 60.
  assert.deepEqual(dissect(packet(frame(transport(1440))), decodeOptions()).sealed, { kind: "wireguard", outerIpLen: 1500, innerPaddedLen: 1440, overheadBytes: 60 });
});

test("--summary: WireGuard's flows are node pairs, sealed sizes inside, 60 bytes a packet (plus padding) as the overhead", () => {
  const sum = new Summary();
  for (const n of [96, 96, 1440]) sum.add(dissect(packet(frame(transport(n))), decodeOptions({ detail: false })));
  sum.add(dissect(packet(frame(new Uint8Array([1, 0, 0, 0, ...new Uint8Array(144)]))), decodeOptions({ detail: false }))); // a handshake: no packet inside
  const r = sum.report();
  // The handshake carries no packet: it is a flow of its own outside the tunnel (UDP between the nodes).
  assert.deepEqual(r.flows.filter((f) => f.tunnelProtocol === "none").map((f) => [f.outerSource, f.outerDestination, f.innerProtocol, f.packets]), [["172.18.0.2", "172.18.0.3", "udp", 1]]);
  assert.deepEqual(r.flows.filter((f) => f.tunnelProtocol !== "none").map((f) => [f.outerSource, f.outerDestination, f.tunnelProtocol, f.innerSource, f.packets, f.outerBytes, f.innerBytes, f.overheadBytes]), [["172.18.0.2", "172.18.0.3", "wireguard", "(sealed)", 3, 156 + 156 + 1500, 96 + 96 + 1440, 180]]);
  assert.equal(r.totals.tunnelPackets, 3);
  assert.match(summaryText(r), /172\.18\.0\.2\s+172\.18\.0\.3\s+wireguard\s+-\s+\(sealed\)\s+\(sealed\)\s+-\s+3\s+1812\s+1632\s+180/);
});

test("dissect: handshakes by their fixed sizes, keepalives, and what is not WireGuard", () => {
  const init = concat(new Uint8Array([1, 0, 0, 0]), new Uint8Array(144));
  assert.deepEqual(dissect(packet(frame(init)), decodeOptions()).layers.at(-1), { kind: "wireguard", depth: 0, offset: 42, headerLen: 148, msgType: 1 });
  const resp = concat(new Uint8Array([2, 0, 0, 0]), le32(7), le32(9), new Uint8Array(80));
  assert.equal((dissect(packet(frame(resp)), decodeOptions()).layers.at(-1) as { receiver?: number }).receiver, 9);
  const keepalive = dissect(packet(frame(transport(0))), decodeOptions());
  assert.equal(keepalive.sealed?.innerPaddedLen, 0);
  assert.match(dissect(packet(frame(concat(new Uint8Array([1, 0, 0, 0]), new Uint8Array(10)))), decodeOptions()).malformed?.reason ?? "", /a type 1 message is 148 bytes, not 14/);
  assert.match(dissect(packet(frame(new Uint8Array([9, 0, 0, 0, 1, 2]))), decodeOptions()).malformed?.reason ?? "", /not WireGuard/);
  assert.match(dissect(packet(frame(transport(20))), decodeOptions()).malformed?.reason ?? "", /not a multiple of 16/);
});

test("options: flannel's defaults; bad values and unknown options are named", () => {
  assert.deepEqual(parseWireguardOptions({ Type: "wireguard" }), { listenPort: 51820, keepalive: 0 });
  assert.deepEqual(parseWireguardOptions({ ListenPort: 51000, PersistentKeepaliveInterval: 25 }), { listenPort: 51000, keepalive: 25 });
  assert.throws(() => parseWireguardOptions({ ListenPort: "51820" }), /Backend\.ListenPort "51820" is not a UDP port/);
  assert.throws(() => parseWireguardOptions({ PSK: "x" }), /Backend\.PSK is not an option of the wireguard backend/);
});

test("this node's key: made once with mode 0600, the same afterwards; its public half is what wg pubkey says", () => {
  const dir = mkdtempSync(join(tmpdir(), "gauze-wgkey-"));
  try {
    const file = join(dir, "run", "gauze", "wireguard.key");
    const k = nodeKeys(file);
    assert.ok(validKey(k.privateKey) && validKey(k.publicKey));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(nodeKeys(file), k, "read back, not made again");
    const wg = spawnSync("wg", ["pubkey"], { input: readFileSync(file), encoding: "utf8" });
    assert.equal(wg.status, 0, "wireguard-tools' wg is the oracle (apt-get install wireguard-tools)");
    assert.equal(wg.stdout.trim(), k.publicKey);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("plan: a peer and a route per node with a key; the wrong endpoint fixed; gauze's stale peers and routes go; keyless leases skipped", () => {
  const b = new WireguardBackend({ link: { iface: "eth0", index: 2, ip: "172.18.0.2", prefixLen: 16, mtu: 1500 }, network: POD_NETWORK, config: {} });
  const key = (c: string) => Buffer.alloc(32, c).toString("base64");
  const lease = (node: string, subnet: string, ip: string, publicKey?: string): Lease => ({ node, subnet, publicIp: ip, backendType: "wireguard", backendData: publicKey ? { publicKey } : {}, expiresAt: 0 });
  const device = { index: 9, name: "gauze-wg", mtu: 1440, flags: 1, up: true, operstate: "UNKNOWN" };
  const view: KernelView = {
    device, neighbours: [], fdb: [],
    routes: [{ family: 4, dst: "10.244.9.0/24", oif: 9, table: 254, protocol: 71, scope: 253, type: 1, flags: 0 }],
    peers: [
      { publicKey: key("b"), endpoint: "172.18.0.99:51820", allowedIps: ["10.244.2.0/24"] },
      { publicKey: key("z"), endpoint: "172.18.0.9:51820", allowedIps: ["10.244.9.0/24"] },
    ],
  };
  const plan = b.plan(view, [lease("b", "10.244.2.0/24", "172.18.0.3", key("b")), lease("c", "10.244.3.0/24", "172.18.0.4", key("c")), lease("d", "10.244.4.0/24", "172.18.0.5"), lease("e", "10.244.5.0/24", "172.18.0.6", "short")]);
  assert.deepEqual(plan.changes.map((c) => `${c.op} ${c.peer}: ${c.text.replace(/peer [^ ]+…/, "peer …")}`), [
    "add b: peer … endpoint 172.18.0.3:51820 allowed 10.244.2.0/24", "add b: route 10.244.2.0/24 dev gauze-wg",
    "add c: peer … endpoint 172.18.0.4:51820 allowed 10.244.3.0/24", "add c: route 10.244.3.0/24 dev gauze-wg",
    "del : route 10.244.9.0/24 via -", "del : peer …",
  ]);
  assert.deepEqual(plan.skipped.map((s) => `${s.node}: ${s.why}`), ["d: no public key in its lease", "e: its public key is not a WireGuard key (32 bytes, base64)"]);
  assert.equal(plan.changes.filter((c) => c.text.startsWith("peer")).every((c) => c.run && !c.request), true, "peers go through the device's socket, routes through netlink");
});
