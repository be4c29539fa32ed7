// Both IPAM stores keep one contract: the on-disk store (host-local's format, in a real
// directory) and the in-memory one the allocator's unit tests use. If they ever differ, the
// allocator tests stop saying anything about the plugin.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskStore } from "../../src/ipam/disk-store.ts";
import { AllocationError, MemoryStore, allocate } from "../../src/ipam/allocator.ts";
import { canonicalizeRangeSet } from "../../src/ipam/range.ts";
import type { IpamStore } from "../../src/ipam/store.ts";
import { formatIP, parseIP } from "../../src/net/cidr.ts";

const stores: { kind: string; make(): { store: IpamStore; done(): void } }[] = [
  { kind: "memory", make: () => ({ store: new MemoryStore(), done: () => undefined }) },
  {
    kind: "disk",
    make() {
      const dir = mkdtempSync(join(tmpdir(), "gauze-ipam-contract-"));
      return { store: DiskStore.open(dir, "net"), done: () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
];
const ip = (s: string) => parseIP(s)!;
const held = (s: IpamStore) => s.list().map((r) => `${formatIP(r.ip)} ${r.containerId}/${r.ifname}`).sort();

for (const { kind, make } of stores) {
  const withStore = (body: (s: IpamStore) => void) => () => {
    const { store, done } = make();
    try {
      body(store);
    } finally {
      done();
    }
  };

  test(`${kind}: a reservation is exclusive; the holder keeps it when someone else asks`, withStore((s) => {
    assert.equal(s.reserve(ip("10.1.0.2"), "a", "eth0", "0"), true);
    assert.equal(s.reserve(ip("10.1.0.2"), "b", "eth0", "0"), false);
    assert.equal(s.reserve(ip("10.1.0.2"), "a", "eth0", "0"), false, "not even the holder reserves twice");
    assert.deepEqual(held(s), ["10.1.0.2 a/eth0"]);
  }));

  test(`${kind}: the last reserved address is kept per range set`, withStore((s) => {
    assert.equal(s.lastReserved("0"), undefined);
    s.reserve(ip("10.1.0.2"), "a", "eth0", "0");
    s.reserve(ip("fd00::5"), "a", "eth0", "1");
    s.reserve(ip("10.1.0.9"), "b", "eth0", "0");
    assert.equal(s.reserve(ip("10.1.0.9"), "c", "eth0", "0"), false);
    assert.equal(formatIP(s.lastReserved("0")!), "10.1.0.9", "a refused reservation does not move it");
    assert.equal(formatIP(s.lastReserved("1")!), "fd00::5");
  }));

  test(`${kind}: lookups and releases by attachment touch that attachment only`, withStore((s) => {
    s.reserve(ip("10.1.0.2"), "a", "eth0", "0");
    s.reserve(ip("fd00::2"), "a", "eth0", "1");
    s.reserve(ip("10.1.0.3"), "a", "eth1", "0");
    s.reserve(ip("10.1.0.4"), "ab", "eth0", "0");
    assert.deepEqual(s.getByAttachment("a", "eth0").map(formatIP).sort(), ["10.1.0.2", "fd00::2"]);
    assert.deepEqual(s.releaseByAttachment("a", "eth0").map(formatIP).sort(), ["10.1.0.2", "fd00::2"]);
    assert.deepEqual(s.releaseByAttachment("a", "eth0"), [], "a second release finds nothing (DEL is idempotent)");
    assert.deepEqual(held(s), ["10.1.0.3 a/eth1", "10.1.0.4 ab/eth0"]);
    s.release(ip("10.1.0.3"));
    s.release(ip("10.1.0.3"));
    assert.deepEqual(held(s), ["10.1.0.4 ab/eth0"]);
    assert.equal(s.reserve(ip("10.1.0.3"), "c", "eth0", "0"), true, "a released address can be reserved again");
  }));

  test(`${kind}: the allocator hands out the same addresses in the same order`, withStore((s) => {
    const set = canonicalizeRangeSet([{ subnet: "10.9.0.0/29" }], "ranges[0]");
    const got: string[] = [];
    for (const c of ["a", "b", "c"]) got.push(formatIP(allocate(s, set, "0", c, "eth0").ip));
    s.releaseByAttachment("b", "eth0");
    got.push(formatIP(allocate(s, set, "0", "d", "eth0").ip)); // round robin: after the last, not the freed one
    got.push(formatIP(allocate(s, set, "0", "e", "eth0", ip("10.9.0.3")).ip)); // requested
    got.push(formatIP(allocate(s, set, "0", "f", "eth0").ip));
    assert.deepEqual(got, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.3", "10.9.0.6"]);
    assert.throws(() => allocate(s, set, "0", "g", "eth0"), (e: AllocationError) => e.reason === "exhausted");
    assert.throws(() => allocate(s, set, "0", "a", "eth0", ip("10.9.0.3")), (e: AllocationError) => e.reason === "duplicate");
    assert.equal(new Set(s.list().map((r) => formatIP(r.ip))).size, s.list().length, "no address held twice");
  }));
}
