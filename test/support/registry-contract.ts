// One contract every subnet registry keeps (file, etcd, the Kubernetes API): what the agent
// relies on, stated once and run against each store. A store plugs in through a harness that
// knows how to make a fresh space, what a node needs before it can lease (Kubernetes: a podCIDR
// from the controller manager), how leases end without their holder (a TTL; Kubernetes: the
// podCIDR moved), how to write records no agent would write, and how to cut connections.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCIDR, prefixContains } from "../../src/net/cidr.ts";
import { type Lease, type LeaseRequest, type NetworkConfig, type SubnetRegistry, LeaseLostError, resolveNetwork } from "../../src/store/registry.ts";
import { validateLeases } from "../../src/store/validate.ts";

export interface RegistrySpace {
  /** A client, as one agent holds it. */
  open(): Promise<SubnetRegistry>;
  /** What must happen before `node` can lease: Kubernetes gives it a podCIDR; stores that allocate need nothing. */
  admit(node: string): Promise<void>;
  /** Writes records no agent would write, each in the store's own format. */
  plantHostile(records: HostileRecord[]): Promise<void>;
  /** Cuts the store's connections (etcd restarted, the API's streams dropped); absent when there are none. */
  interrupt?(): Promise<void>;
  /** Kubernetes: `from`'s podCIDR is given to `to` (its Node re-created with another one): how a lease is lost there. */
  reassign?(from: string, to: string): Promise<void>;
  close(): Promise<void>;
}

/** A record no agent would write: `raw` replaces its data with text that is not JSON. */
export interface HostileRecord {
  subnet: string;
  node: string;
  publicIp: string;
  raw?: string;
}

export interface RegistryHarness {
  kind: string;
  /** Leases end by themselves after this long without renewal; absent when the store has no TTL (Kubernetes). */
  shortTtlMs?: number;
  space(config: NetworkConfig): Promise<RegistrySpace>;
}

const HOUR = 3_600_000;
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const request = (node: string, i = 7): LeaseRequest => ({ node, publicIp: `172.18.0.${i}`, backendType: "vxlan", backendData: { vtepMac: `0e:47:ac:12:00:${i.toString(16).padStart(2, "0")}` } });

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(50);
  }
}

/** Registers the contract's tests for one store. */
export function registryContract(h: RegistryHarness): void {
  const name = (s: string) => `${h.kind}: ${s}`;
  /** A fresh space and the clients opened in it, all closed afterwards whatever happens. */
  async function inSpace(config: NetworkConfig, body: (s: RegistrySpace, open: () => Promise<SubnetRegistry>) => Promise<void>): Promise<void> {
    const space = await h.space(config);
    const opened: SubnetRegistry[] = [];
    try {
      await body(space, async () => { const r = await space.open(); opened.push(r); return r; });
    } finally {
      for (const r of opened) r.close();
      await space.close();
    }
  }

  test(name("allocation: nodes leasing at once get different subnets of the configured length inside the network, listed as leased"), async () => {
    const config = { Network: "10.70.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan" } };
    await inSpace(config, async (space, open) => {
      const nodes = Array.from({ length: 8 }, (_, i) => `node-${i}`);
      for (const n of nodes) await space.admit(n);
      const clients = await Promise.all(nodes.map(() => open()));
      const leases = await Promise.all(nodes.map((n, i) => clients[i]!.acquireLease(request(n, 10 + i), HOUR)));
      const net = resolveNetwork(config);
      assert.equal(new Set(leases.map((l) => l.subnet)).size, nodes.length, leases.map((l) => l.subnet).join(" "));
      for (const l of leases) {
        const p = parseCIDR(l.subnet)!;
        assert.equal(p.prefix.bits, 24, l.subnet);
        assert.ok(prefixContains(net.network, p.prefix.ip), `${l.subnet} inside ${config.Network}`);
      }
      const listed = await clients[0]!.listLeases();
      for (const [i, n] of nodes.entries()) {
        const l = listed.find((x) => x.node === n);
        assert.ok(l, `${n} listed`);
        assert.equal(l.subnet, leases[i]!.subnet);
        assert.equal(l.publicIp, `172.18.0.${10 + i}`);
        assert.equal(l.backendType, "vxlan");
        assert.equal(l.backendData.vtepMac, request(n, 10 + i).backendData.vtepMac);
        assert.equal(l.problem, undefined);
      }
    });
  });

  test(name("a node that leases again (an agent restart) gets its own subnet back, and is listed once"), async () => {
    await inSpace({ Network: "10.71.0.0/16" }, async (space, open) => {
      for (const n of ["keeper", "other"]) await space.admit(n);
      const first = await (await open()).acquireLease(request("keeper"), HOUR);
      await (await open()).acquireLease(request("other", 8), HOUR);
      const again = await (await open()).acquireLease(request("keeper"), HOUR);
      assert.equal(again.subnet, first.subnet);
      const mine = (await (await open()).listLeases()).filter((l) => l.node === "keeper");
      assert.deepEqual(mine.map((l) => l.subnet), [first.subnet]);
    });
  });

  test(name("renewal keeps the lease; renewing a lease the node no longer holds is LeaseLostError, and the listing names one owner"), async () => {
    // One subnet only: whoever holds it is the only possible owner.
    await inSpace({ Network: "10.72.0.0/16", SubnetMin: "10.72.5.0", SubnetMax: "10.72.5.0" }, async (space, open) => {
      await space.admit("first");
      const a = await open();
      const ttl = h.shortTtlMs ?? HOUR;
      const lease = await a.acquireLease(request("first"), ttl);
      assert.equal(lease.subnet, "10.72.5.0/24");
      const renewed = await a.renewLease(lease, ttl);
      assert.ok(renewed.expiresAt >= lease.expiresAt, "renewal moves the expiry forward");
      assert.deepEqual((await a.listLeases()).map((l) => l.node), ["first"]);

      let winner: string;
      if (h.shortTtlMs !== undefined) {
        // The holder stops renewing; after the TTL the subnet is free, and two nodes race for it.
        await until("the lease to expire", async () => (await (await open()).listLeases()).length === 0 || undefined, ttl + 10_000);
        const [b, c] = [await open(), await open()];
        const raced = await Promise.allSettled([b.acquireLease(request("second", 8), HOUR), c.acquireLease(request("third", 9), HOUR)]);
        const won = raced.filter((r): r is PromiseFulfilledResult<Lease> => r.status === "fulfilled");
        assert.equal(won.length, 1, `exactly one of two racing nodes gets the only subnet: ${raced.map((r) => r.status === "fulfilled" ? r.value.node : String(r.reason)).join(" | ")}`);
        const lost = raced.find((r) => r.status === "rejected") as PromiseRejectedResult;
        assert.match(String(lost.reason), /no free \/24 left in 10\.72\.0\.0\/16/);
        winner = won[0]!.value.node;
      } else {
        await space.reassign!("first", "second");
        await (await open()).acquireLease(request("second", 8), HOUR);
        winner = "second";
      }
      await assert.rejects(a.renewLease(renewed, HOUR), (e: unknown) => e instanceof LeaseLostError && /10\.72\.5\.0\/24 is no longer this node's/.test((e as Error).message));
      const holders = (await (await open()).listLeases()).filter((l) => l.subnet === "10.72.5.0/24");
      assert.deepEqual(holders.map((l) => l.node), [winner], "one subnet, one owner, after the loser tried to renew");
    });
  });

  if (h.shortTtlMs !== undefined) {
    test(name("a lease nobody renews expires: it leaves the listing and its subnet is leased again"), async () => {
      await inSpace({ Network: "10.73.0.0/16", SubnetMin: "10.73.9.0", SubnetMax: "10.73.9.0" }, async (_space, open) => {
        const a = await open();
        await a.acquireLease(request("gone"), h.shortTtlMs!);
        await assert.rejects((await open()).acquireLease(request("late", 8), HOUR), /no free \/24/, "taken while the lease lives");
        const b = await open();
        await until("the lease to leave the listing", async () => (await b.listLeases()).every((l) => l.node !== "gone") || undefined, h.shortTtlMs! + 10_000);
        assert.equal((await b.acquireLease(request("late", 8), HOUR)).subnet, "10.73.9.0/24");
      });
    });
  }

  if (h.shortTtlMs !== undefined) {
    test(name("a node takes back the subnet it had when its lease expired or its record was garbled, never another node's"), async () => {
      await inSpace({ Network: "10.78.0.0/16" }, async (space, open) => {
        const r = await open();
        const x = await r.acquireLease(request("x"), HOUR);
        const y = await r.acquireLease(request("y", 8), HOUR);
        const z = await r.acquireLease(request("z", 9), h.shortTtlMs!);
        assert.deepEqual([x.subnet, y.subnet, z.subnet], ["10.78.0.0/24", "10.78.1.0/24", "10.78.2.0/24"]);
        // Expired while away, and a lower subnet is free: the node still gets its own back.
        await r.releaseLease(x.subnet);
        await until("z's lease to expire", async () => (await (await open()).listLeases()).every((l) => l.node !== "z") || undefined, h.shortTtlMs! + 10_000);
        assert.equal((await (await open()).acquireLease(request("z", 9), HOUR, z.subnet)).subnet, z.subnet);
        // Its record garbled (not a lease at all): taken back, the garbage replaced.
        await space.plantHostile([{ subnet: y.subnet, node: "y", publicIp: "172.18.0.8", raw: "{garbled" }]);
        const back = await (await open()).acquireLease(request("y", 8), HOUR, y.subnet);
        assert.equal(back.subnet, y.subnet);
        const listed = await (await open()).listLeases();
        assert.deepEqual(listed.filter((l) => l.subnet === y.subnet).map((l) => [l.node, l.problem]), [["y", undefined]]);
        // Another node's live lease is never taken, whatever a node asks for.
        const w = await (await open()).acquireLease(request("w", 10), HOUR, z.subnet);
        assert.notEqual(w.subnet, z.subnet);
        assert.deepEqual((await (await open()).listLeases()).filter((l) => l.subnet === z.subnet).map((l) => l.node), ["z"]);
      });
    });
  }

  test(name("dual-stack: a lease carries its IPv6 half (the subnet of the same index, the IPv6 address, the IPv6 VTEP MAC), listed by every client and kept by renewal"), async () => {
    await inSpace({ Network: "10.76.0.0/16", EnableIPv6: true, IPv6Network: "fd00:76::/56" }, async (space, open) => {
      for (const n of ["d1", "d2"]) await space.admit(n);
      const [a, b] = [await open(), await open()];
      const req = (node: string, i: number): LeaseRequest => ({ ...request(node, i), publicIpv6: `fd47::${i}`, backendData: { vtepMac: `0e:47:ac:12:00:0${i}`, v6VtepMac: `0e:36:00:00:00:0${i}` } });
      const la = await a.acquireLease(req("d1", 2), HOUR);
      const lb = await b.acquireLease(req("d2", 3), HOUR);
      for (const l of [la, lb]) assert.equal(l.ipv6Subnet, `fd00:76:0:${Number(l.subnet.split(".")[2]).toString(16)}::/64`.replace(":0:0::/64", "::/64"), `${l.node}: ${l.subnet} / ${l.ipv6Subnet}`);
      assert.notEqual(la.ipv6Subnet, lb.ipv6Subnet);
      const seen = (await b.listLeases()).find((l) => l.node === "d1")!;
      assert.deepEqual([seen.ipv6Subnet, seen.publicIpv6, seen.backendData.v6VtepMac], [la.ipv6Subnet, "fd47::2", "0e:36:00:00:00:02"]);
      const renewed = await a.renewLease(la, HOUR);
      const again = (await b.listLeases()).find((l) => l.node === "d1")!;
      assert.deepEqual([renewed.ipv6Subnet, again.ipv6Subnet, again.publicIpv6], [la.ipv6Subnet, la.ipv6Subnet, "fd47::2"]);
    });
  });

  test(name("release: the lease leaves the listing"), async () => {
    await inSpace({ Network: "10.74.0.0/16" }, async (space, open) => {
      for (const n of ["leaving", "staying"]) await space.admit(n);
      const r = await open();
      const leaving = await r.acquireLease(request("leaving"), HOUR);
      await r.acquireLease(request("staying", 8), HOUR);
      await r.releaseLease(leaving.subnet);
      await r.releaseLease(leaving.subnet); // twice: nothing to do the second time, no error
      const nodes = (await (await open()).listLeases()).map((l) => l.node);
      assert.deepEqual(nodes, ["staying"]);
    });
  });

  test(name("a node that cannot get a subnet gets an error that says what to do"), async () => {
    await inSpace({ Network: "10.75.0.0/16", SubnetMin: "10.75.1.0", SubnetMax: "10.75.1.0" }, async (space, open) => {
      await space.admit("only");
      await (await open()).acquireLease(request("only"), HOUR);
      // A store that allocates: the network is full. Kubernetes: this node has no podCIDR.
      await assert.rejects((await open()).acquireLease(request("nobody-admitted", 8), HOUR), /(no free \/24 left in 10\.75\.0\.0\/16 \(1 leased\) \(remove nodes|pod cidr not assigned \(have the controller manager|HTTP 404 not found \(--node must be)/);
    });
  });

  test(name("watch: another node's lease is seen at once; after the connection is cut, watching resumes and the listing is current"), async () => {
    await inSpace({ Network: "10.76.0.0/16" }, async (space, open) => {
      for (const n of ["w1", "w2"]) await space.admit(n);
      const watcher = await open();
      let changes = 0;
      const stop = watcher.watch(() => { changes++; });
      try {
        await wait(300); // the watch is established
        const base = changes;
        const l1 = await (await open()).acquireLease(request("w1"), HOUR);
        await until("a change for w1", () => changes > base || undefined);
        assert.ok((await watcher.listLeases()).some((l) => l.subnet === l1.subnet && l.node === "w1"));
        if (space.interrupt) await space.interrupt();
        const l2 = await until("a lease after the cut", async () => {
          try {
            return await (await open()).acquireLease(request("w2", 8), HOUR);
          } catch {
            return undefined;
          }
        }, 15_000);
        await until("the watcher's listing to show w2", async () => {
          try {
            return (await watcher.listLeases()).some((l) => l.subnet === l2.subnet && l.node === "w2") || undefined;
          } catch {
            return undefined;
          }
        }, 15_000);
        const seen = changes;
        const third = await open();
        await third.releaseLease(l1.subnet);
        await until("the release to be seen by the resumed watch", () => changes > seen || undefined, 15_000);
      } finally {
        stop();
      }
    });
  });

  test(name("hostile records are listed as what they are: the agent's checks refuse each, valid leases pass, and the network does not look full"), async () => {
    const config = { Network: "10.77.0.0/16", SubnetMin: "10.77.0.0", SubnetMax: "10.77.1.0" };
    await inSpace(config, async (space, open) => {
      await space.admit("honest");
      const honest = await (await open()).acquireLease(request("honest"), HOUR);
      const planted: HostileRecord[] = [
        { subnet: "0.0.0.0/1", node: "evil-wide", publicIp: "172.18.0.250" }, // half the address space
        { subnet: "10.99.0.0/24", node: "evil-outside", publicIp: "172.18.0.251" }, // outside the network
        { subnet: "10.77.200.0/24", node: "evil-garbled", publicIp: "172.18.0.252", raw: "not json at all" },
      ];
      await space.plantHostile(planted);
      const r = await open();
      const listed = await r.listLeases();
      const net = resolveNetwork(config);
      const { valid, invalid } = validateLeases(listed, { network: net.network, subnetLen: net.subnetLen, self: "observer", underlayFamily: 4, backendTypes: ["vxlan", "host-gw"] });
      assert.deepEqual(valid.map((l) => `${l.node} ${l.subnet}`), [`honest ${honest.subnet}`]);
      assert.equal(invalid.length, planted.length, invalid.map((i) => `${i.key}: ${i.why}`).join(" | "));
      for (const i of invalid) assert.ok(i.key && i.why, "each refusal names where the record is and why");
      // Two subnets exist and the honest node holds one: the other is still free for a new node.
      await space.admit("newcomer");
      const got = await r.acquireLease(request("newcomer", 8), HOUR);
      assert.notEqual(got.subnet, honest.subnet);
    });
  });
}
