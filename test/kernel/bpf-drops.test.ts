// The drop tracer on the kernel's kfree_skb tracepoint, with real drops made inside gz-bpf
// namespaces: UDP to a closed port (NO_SOCKET, on lo) and an iptables DROP rule on output (a
// packet with no device yet: its namespace comes from its socket). Drops in a namespace that is
// not in the filter are not reported; skipped reasons are not either. Reason names come from the
// kernel's BTF (bpftool's dump of the same enum is the oracle). tp_btf and raw_tracepoint alike.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { setLink, withRtnl } from "../../src/kernel/netlink/index.ts";
import { addNetns, delNetns, netnsPath } from "../../src/kernel/netns.ts";
import { BpfDropTap, type DropTapEvent, dropReasonNames, dropReasonNumbers } from "../../src/kernel/bpf/drops.ts";

const tag = `gz-bpf${process.pid % 100000}d`;
let nsA = "", nsB = "", inoA = 0, inoB = 0;

before(() => {
  for (const n of ["a", "b"]) {
    addNetns(`${tag}-${n}`);
    withRtnl({ netns: netnsPath(`${tag}-${n}`) }, (nl) => nl.run([setLink(nl.link("lo")!, { up: true })]));
  }
  nsA = netnsPath(`${tag}-a`);
  nsB = netnsPath(`${tag}-b`);
  inoA = statSync(nsA).ino;
  inoB = statSync(nsB).ino;
});

after(() => {
  for (const n of ["a", "b"]) { try { delNetns(`${tag}-${n}`); } catch { /* gone */ } }
});

/** One UDP datagram to 127.0.0.1:<port> from inside the namespace (bash's /dev/udp). */
function udpTo(ns: string, port: number): void {
  const r = spawnSync("nsenter", [`--net=${ns}`, "bash", "-c", `echo gauze > /dev/udp/127.0.0.1/${port}`], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

async function drain(tap: BpfDropTap, want: (e: DropTapEvent[]) => boolean, ms = 1500): Promise<DropTapEvent[]> {
  const all: DropTapEvent[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    all.push(...tap.poll());
    if (want(all)) break;
    tap.wait(20);
  }
  return all;
}

test("reason names are the kernel's enum skb_drop_reason, as bpftool reads it", () => {
  const names = dropReasonNames();
  const r = spawnSync("bpftool", ["-j", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], { encoding: "utf8", maxBuffer: 1 << 30 });
  assert.equal(r.status, 0);
  const e = (JSON.parse(r.stdout) as { types: { kind: string; name: string; values?: { name: string; val: number }[] }[] }).types.find((t) => t.kind === "ENUM" && t.name === "skb_drop_reason")!;
  assert.ok(e.values!.length > 50);
  // bpftool 7.1 prints enum values as signed 32-bit (SUBSYS_MASK 0xffff0000 as -65536).
  for (const v of e.values!) assert.equal(names.get(v.val >>> 0), v.name.replace(/^SKB_DROP_REASON_/, "").replace(/^SKB_/, ""), v.name);
  const val = (n: string) => e.values!.find((v) => v.name === n)!.val;
  assert.deepEqual(dropReasonNumbers(["NO_SOCKET", "SKB_DROP_REASON_NETFILTER_DROP"]), [val("SKB_DROP_REASON_NO_SOCKET"), val("SKB_DROP_REASON_NETFILTER_DROP")]);
  assert.throws(() => dropReasonNumbers(["NO_SUCH_REASON"]), /no drop reason NO_SUCH_REASON/);
});

for (const mode of ["tp_btf", "raw_tracepoint"] as const) {
  test(`${mode}: a drop in a listed namespace is reported with its reason, device, namespace and bytes; one elsewhere is not`, async () => {
    const tap = BpfDropTap.open({ mode, symbols: true });
    try {
      assert.equal(tap.mode, mode);
      tap.setNamespaces([inoA]);
      assert.deepEqual(tap.namespaces(), [inoA]);
      udpTo(nsB, 9);
      udpTo(nsA, 9);
      const ev = await drain(tap, (all) => all.some((e) => e.netnsInode === inoA && e.reasonName === "NO_SOCKET"));
      assert.ok(ev.every((e) => e.netnsInode === inoA), `only namespace A: ${JSON.stringify(ev.map((e) => e.netnsInode))}`);
      assert.ok(!ev.some((e) => e.netnsInode === inoB));
      const d = ev.find((e) => e.reasonName === "NO_SOCKET")!;
      assert.ok(d, JSON.stringify(ev.map((e) => e.reasonName)));
      assert.equal(d.ifindex, 1, "on lo");
      assert.equal(d.protocol, 0x0800);
      assert.equal(d.frame[0], 0x45, "the IPv4 header first");
      assert.deepEqual([...d.frame.subarray(16, 20)], [127, 0, 0, 1]);
      assert.equal((d.frame[22]! << 8) | d.frame[23]!, 9, "to port 9");
      assert.equal(new TextDecoder().decode(d.frame.subarray(28, 34)), "gauze\n");
      assert.equal(d.mac?.length, 14, "lo's Ethernet header");
      assert.ok(d.location > 0n);
      assert.match(d.symbol ?? "", /udp/, `dropped in UDP's receive path: ${d.symbol}`);
      assert.ok(Math.abs(Number(d.timeNs / 1_000_000n) - Date.now()) < 5000, "wall-clock time");
      // Skipped reasons are not reported.
      tap.setSkipReasons(dropReasonNumbers(["NO_SOCKET"]));
      udpTo(nsA, 9);
      const skipped = await drain(tap, () => false, 300);
      assert.deepEqual(skipped.filter((e) => e.reasonName === "NO_SOCKET"), []);
      tap.setSkipReasons([]);
      udpTo(nsA, 9);
      const again = await drain(tap, (all) => all.some((e) => e.reasonName === "NO_SOCKET"));
      assert.ok(again.some((e) => e.reasonName === "NO_SOCKET"));
      // No namespace listed: nothing.
      tap.setNamespaces([]);
      udpTo(nsA, 9);
      assert.deepEqual(await drain(tap, () => false, 300), []);
      assert.equal(tap.lost(), 0);
    } finally {
      tap.close();
    }
  });
}

test("an iptables DROP on output: no device yet, the namespace from the packet's socket", async (t) => {
  const ipt = spawnSync("nsenter", [`--net=${nsA}`, "iptables", "-A", "OUTPUT", "-p", "udp", "--dport", "9999", "-j", "DROP"], { encoding: "utf8" });
  if (ipt.status !== 0) return t.skip(`iptables: ${ipt.stderr}`);
  const tap = BpfDropTap.open();
  try {
    tap.setNamespaces([inoA, inoB]);
    const r = spawnSync("nsenter", [`--net=${nsA}`, "bash", "-c", "echo gauze > /dev/udp/127.0.0.1/9999"], { encoding: "utf8" });
    assert.notEqual(r.status, 0, "the send is refused (EPERM from the DROP)");
    const ev = await drain(tap, (all) => all.some((e) => e.reasonName === "NETFILTER_DROP"));
    const d = ev.find((e) => e.reasonName === "NETFILTER_DROP");
    assert.ok(d, JSON.stringify(ev.map((e) => [e.reasonName, e.netnsInode])));
    assert.equal(d.netnsInode, inoA);
    assert.equal(d.ifindex, 0, "no device on the output hook: the namespace came from the socket");
    assert.equal(d.frame[0], 0x45);
    assert.equal((d.frame[22]! << 8) | d.frame[23]!, 9999);
  } finally {
    tap.close();
    spawnSync("nsenter", [`--net=${nsA}`, "iptables", "-D", "OUTPUT", "-p", "udp", "--dport", "9999", "-j", "DROP"]);
  }
});
