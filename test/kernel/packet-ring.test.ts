// The packet ring against the real kernel, tcpdump's view as the oracle: packets sent between two
// namespaces are seen on both interfaces of the sender's namespace side (out) and counted with
// their wire length; frames are cut to the snap length; the ring is drained in blocks.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { addAddr, addVeth, setLink, withRtnl } from "../../src/kernel/netlink/index.ts";
import { addNetns, delNetns, inNetns, netnsPath, openNetns } from "../../src/kernel/netns.ts";
import { closeFd } from "../../src/kernel/files.ts";
import { PACKET_OUTGOING, PacketRing } from "../../src/kernel/packet-ring.ts";

const tag = `gz-r${process.pid % 100000}`;
after(() => { for (const n of ["a", "b"]) { try { delNetns(`${tag}-${n}`); } catch { /* gone */ } } });

test("packet ring: every packet of the namespace with its interface, direction, wire length, cut to the snap length", async () => {
  for (const n of ["a", "b"]) addNetns(`${tag}-${n}`);
  const a = netnsPath(`${tag}-a`), b = netnsPath(`${tag}-b`);
  withRtnl({ netns: a }, (nl) => {
    const fd = openNetns(b);
    try {
      nl.run([addVeth({ name: "va", up: true }, { name: "vb", netnsFd: fd, netnsLabel: "b" })]);
    } finally {
      closeFd(fd);
    }
    nl.run([addAddr(nl.link("va")!, "10.99.0.1/24")]);
  });
  withRtnl({ netns: b }, (nl) => nl.run([addAddr(nl.link("vb")!, "10.99.0.2/24"), setLink(nl.link("vb")!, { up: true })]));
  const ring = inNetns(a, () => PacketRing.open({ snaplen: 96, blockSize: 1 << 16, blocks: 8, retireMs: 10 }));
  try {
    const va = withRtnl({ netns: a }, (nl) => nl.link("va")!.index);
    const r = spawnSync("nsenter", [`--net=${a}`, "ping", "-c", "3", "-i", "0.2", "-s", "1000", "10.99.0.2"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 50)); // the block's retire timeout
    const seen: { ifindex: number; out: boolean; len: number; snap: number; proto: number }[] = [];
    ring.drain((p) => seen.push({ ifindex: p.ifindex, out: p.pktType === PACKET_OUTGOING, len: p.len, snap: p.data.length, proto: p.data[23]! }));
    const echo = seen.filter((s) => s.proto === 1 && s.len === 14 + 20 + 8 + 1000);
    assert.equal(echo.filter((s) => s.out).length, 3, "three requests out of va");
    assert.equal(echo.filter((s) => !s.out).length, 3, "three replies into va");
    assert.ok(echo.every((s) => s.ifindex === va && s.snap === 96), JSON.stringify(echo));
    assert.equal(ring.stats().drops, 0);
  } finally {
    ring.close();
  }
});
