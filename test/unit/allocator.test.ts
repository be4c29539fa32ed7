// Allocation logic with host-local's semantics, on the in-memory store: order, gateway
// skipping, round robin from the last reservation, exhaustion, and a randomised check that no
// address is ever held twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AllocationError, MemoryStore, allocate, candidates } from "../../src/ipam/allocator.ts";
import { canonicalizeRangeSet, rangeSetCapacity } from "../../src/ipam/range.ts";
import { formatIP, parseIP } from "../../src/net/cidr.ts";

const set = (...specs: { subnet: string; rangeStart?: string; rangeEnd?: string; gateway?: string }[]) => canonicalizeRangeSet(specs, "ipam.ranges[0]");

test("defaults: start .1, end broadcast-1, gateway .1 (skipped)", () => {
  const s = set({ subnet: "10.1.0.0/29" });
  assert.deepEqual([...candidates(s, undefined)].map((c) => formatIP(c.ip)), ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]);
  assert.equal(rangeSetCapacity(s), 5n);
});

test("round robin continues after last_reserved_ip and wraps across ranges", () => {
  const s = set({ subnet: "10.1.0.0/29" }, { subnet: "10.2.0.0/30" });
  const order = [...candidates(s, parseIP("10.1.0.5"))].map((c) => formatIP(c.ip));
  assert.deepEqual(order, ["10.1.0.6", "10.2.0.2", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"]);
});

test("a last_reserved_ip outside the set starts from the beginning", () => {
  const s = set({ subnet: "10.1.0.0/29" });
  assert.equal(formatIP([...candidates(s, parseIP("192.0.2.1"))][0]!.ip), "10.1.0.2");
});

test("explicit rangeStart/rangeEnd/gateway", () => {
  const s = set({ subnet: "10.1.0.0/24", rangeStart: "10.1.0.10", rangeEnd: "10.1.0.12", gateway: "10.1.0.11" });
  assert.deepEqual([...candidates(s, undefined)].map((c) => formatIP(c.ip)), ["10.1.0.10", "10.1.0.12"]);
});

test("IPv6 ranges have no broadcast to skip", () => {
  const s = set({ subnet: "fd00::/126" });
  assert.deepEqual([...candidates(s, undefined)].map((c) => formatIP(c.ip)), ["fd00::2", "fd00::3"]);
});

test("overlapping or mixed-family ranges are refused", () => {
  assert.throws(() => set({ subnet: "10.1.0.0/24" }, { subnet: "10.1.0.128/25" }), /overlaps/);
  assert.throws(() => set({ subnet: "10.1.0.0/24" }, { subnet: "fd00::/64" }), /mixes IPv4 and IPv6/);
  assert.throws(() => set({ subnet: "10.1.0.0/24", rangeStart: "10.1.0.20", rangeEnd: "10.1.0.10" }), /after rangeEnd/);
});

test("allocate: duplicate attachment, requested address, exhaustion", () => {
  const s = set({ subnet: "10.1.0.0/30" });
  const store = new MemoryStore();
  assert.equal(formatIP(allocate(store, s, "0", "a", "eth0").ip), "10.1.0.2");
  assert.throws(() => allocate(store, s, "0", "a", "eth0"), (e: AllocationError) => e.reason === "duplicate");
  assert.throws(() => allocate(store, s, "0", "b", "eth0"), (e: AllocationError) => e.reason === "exhausted");
  assert.throws(() => allocate(store, s, "0", "c", "eth0", parseIP("10.1.0.2")), (e: AllocationError) => e.reason === "unavailable");
  assert.throws(() => allocate(store, s, "0", "c", "eth0", parseIP("10.1.0.1")), (e: AllocationError) => e.reason === "invalid");
  store.releaseByAttachment("a", "eth0");
  assert.equal(formatIP(allocate(store, s, "0", "b", "eth0").ip), "10.1.0.2");
});

test("randomised: any interleaving of allocate and release never holds one address twice", () => {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const s = set({ subnet: "10.7.0.0/27" }, { subnet: "10.8.0.0/28" });
  const cap = Number(rangeSetCapacity(s));
  const store = new MemoryStore();
  const live = new Map<string, string>();
  for (let i = 0; i < 5000; i++) {
    if (rand() < 0.6) {
      const id = `c${i}`;
      try {
        const a = allocate(store, s, "0", id, "eth0");
        const k = formatIP(a.ip);
        assert.equal([...live.values()].includes(k), false, `${k} handed out twice`);
        live.set(id, k);
      } catch (e) {
        assert.equal((e as AllocationError).reason, "exhausted");
        assert.equal(live.size, cap, "exhausted only when really full");
      }
    } else if (live.size) {
      const ids = [...live.keys()];
      const id = ids[Math.floor(rand() * ids.length)]!;
      store.releaseByAttachment(id, "eth0");
      live.delete(id);
    }
    assert.equal(store.list().length, live.size);
  }
});

test("a second ADD for a live attachment is refused with or without a requested address, and takes nothing", () => {
  const s = set({ subnet: "10.1.0.0/29" });
  const store = new MemoryStore();
  const first = allocate(store, s, "0", "ctr", "eth0", parseIP("10.1.0.3"));
  assert.equal(formatIP(first.ip), "10.1.0.3");
  assert.throws(() => allocate(store, s, "0", "ctr", "eth0", parseIP("10.1.0.5")), (e: unknown) => e instanceof AllocationError && e.reason === "duplicate");
  assert.throws(() => allocate(store, s, "0", "ctr", "eth0"), (e: unknown) => e instanceof AllocationError && e.reason === "duplicate");
  assert.deepEqual(store.list().map((r) => formatIP(r.ip)), ["10.1.0.3"], "only the first reservation");
});
