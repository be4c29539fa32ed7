// The flow tap on a real veth pair between two gz-bpf namespaces: attached through tcx (in front
// of a program already there) and through a clsact filter, a ping across is seen leaving and
// coming back, with the flow table counting every packet; a restart with the pins kept hands the
// links and the flows to the next tap without a gap; remove() after a "crash" takes everything
// away. bpftool (link list), tc and ls are the oracles for what is attached and pinned. All
// traffic stays inside the namespaces made here.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { addAddr, addVeth, setLink, withRtnl } from "../../src/kernel/netlink/index.ts";
import { addNetns, delNetns, netnsPath, openNetns } from "../../src/kernel/netns.ts";
import { closeFd } from "../../src/kernel/files.ts";
import { BpfFlowTap, type FlowTapEvent } from "../../src/kernel/bpf/observer.ts";
import { attachTcx, clsactAttached, tcxAttached } from "../../src/kernel/bpf/link.ts";
import { BpfProgram } from "../../src/kernel/bpf/program.ts";
import { exit, mov64Imm, program } from "../../src/kernel/bpf/asm.ts";
import { ensureBpffs, listPins, removePins, unmountBpffs } from "../../src/kernel/bpf/pin.ts";
import { PROG_TYPE } from "../../src/kernel/bpf/uapi.ts";

const tag = `gz-bpf${process.pid % 100000}`;
const ROOT = `/run/gauze-test-bpfo-${process.pid}`;
const FS = join(ROOT, "bpffs");
let mounted = false;
let nsA = "", nsB = "", va = 0;
const IP_A = "10.201.7.1", IP_B = "10.201.7.2";

before(() => {
  const r = ensureBpffs(FS);
  assert.ok(r.ok, r.ok ? "" : r.why);
  mounted = r.ok && r.mounted;
  addNetns(`${tag}-a`);
  addNetns(`${tag}-b`);
  nsA = netnsPath(`${tag}-a`);
  nsB = netnsPath(`${tag}-b`);
  withRtnl({ netns: nsA }, (nl) => {
    const fd = openNetns(nsB);
    try {
      nl.run([addVeth({ name: "va", up: true }, { name: "vb", netnsFd: fd, netnsLabel: "b" })]);
    } finally {
      closeFd(fd);
    }
    nl.run([addAddr(nl.link("va")!, `${IP_A}/24`), setLink(nl.link("lo")!, { up: true })]);
    va = nl.link("va")!.index;
  });
  withRtnl({ netns: nsB }, (nl) => nl.run([addAddr(nl.link("vb")!, `${IP_B}/24`), setLink(nl.link("vb")!, { up: true })]));
});

after(() => {
  for (const n of ["a", "b"]) { try { delNetns(`${tag}-${n}`); } catch { /* gone */ } }
  try { removePins(join(FS, "t")); } catch { /* not there */ }
  if (mounted) unmountBpffs(FS);
  rmSync(ROOT, { recursive: true, force: true });
});

function sh(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function ping(count: number): void {
  const r = spawnSync("nsenter", [`--net=${nsA}`, "ping", "-c", String(count), "-i", "0.2", "-W", "2", IP_B], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

async function pollFor(tap: BpfFlowTap, want: (e: FlowTapEvent[]) => boolean, ms = 2000): Promise<FlowTapEvent[]> {
  const all: FlowTapEvent[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    all.push(...tap.poll());
    if (want(all)) return all;
    tap.wait(20);
  }
  return all;
}

const echo = (type: number) => (e: FlowTapEvent) => e.proto === 1 && e.icmp?.type === type && e.ifindex === va;
const linkIds = () => new Set((JSON.parse(sh("bpftool", "-j", "link", "list")) as { id: number }[]).map((l) => l.id));

test("tcx: in front of what is attached, a ping across seen both ways, counted whole; taken over across a restart; detached to nothing", async () => {
  const pinDir = join(FS, "t", "tcx");
  // A program already on the hook: the tap goes in front of it (BPF_F_BEFORE).
  const other = BpfProgram.load({ name: "gz_other", type: PROG_TYPE.SCHED_CLS, insns: program(mov64Imm(0, -1), exit()), license: "GPL" });
  const otherLink = attachTcx(other, va, "ingress", nsA);
  let tap: BpfFlowTap | undefined;
  try {
    tap = BpfFlowTap.open({ netns: nsA, pinDir, mode: "tcx" });
    tap.attach(va);
    tap.attach(va);
    assert.deepEqual(tap.attached(), [va]);
    const q = tcxAttached(va, "ingress", nsA);
    const ours = tap.obj.program("observe_ingress").info().id;
    assert.deepEqual(q.progIds, [ours, other.info().id], "the observer runs first");
    assert.equal(tcxAttached(va, "egress", nsA).progIds.length, 1, "attached once, however often asked");
    assert.ok(q.linkIds.every((id) => linkIds().has(id)), "bpftool lists the links");
    const sent = Date.now();
    ping(3);
    const ev = await pollFor(tap, (all) => all.some(echo(8)) && all.some(echo(0)));
    const req = ev.find(echo(8))!, rep = ev.find(echo(0))!;
    // The kernel's monotonic stamp comes out as wall-clock time: after the ping began, before now.
    const at = Number(req.timeNs / 1_000_000n);
    assert.ok(at >= sent - 1 && at <= Date.now() + 1, `event at ${at}, ping from ${sent} to ${Date.now()}`);
    assert.ok(rep.timeNs >= req.timeNs, "the reply after the request");
    assert.deepEqual([req.egress, req.src, req.dst, req.reason, req.icmp!.seq], [true, IP_A, IP_B, "new", 1]);
    assert.deepEqual([rep.egress, rep.src, rep.dst, rep.reason], [false, IP_B, IP_A, "new"]);
    assert.equal(req.len, 98, "a 64-byte ping is 98 bytes on the wire");
    assert.equal(req.frame.length, 98);
    assert.equal(req.frame[12], 0x08, "the frame from its Ethernet header");
    // The table has every packet, reported or not (the interval is a second; pings come every 0.2 s).
    const flows = [...tap.countedFlows()].filter(([k]) => k.ifindex === va && k.proto === 1);
    assert.deepEqual(flows.map(([k, s]) => [k.egress, s.packets]).sort(), [[false, 3], [true, 3]]);
    // Restart with the pins kept: the links stay (and keep counting), the next tap takes them over.
    const before = tcxAttached(va, "egress", nsA).linkIds;
    tap.close({ keepPins: true });
    tap = undefined;
    assert.deepEqual(listPins(pinDir), ["config", "events", "flow_cache", "flows", `links/tcx-${va}-egress`, `links/tcx-${va}-ingress`]);
    ping(1);
    tap = BpfFlowTap.open({ netns: nsA, pinDir, mode: "tcx" });
    assert.deepEqual([...tap.obj.adopted].sort(), ["config", "events", "flow_cache", "flows"]);
    // Each ping run is its own flow (its ICMP id): the old one with 3, the one sent meanwhile with 1.
    const kept = [...tap.countedFlows()].filter(([k]) => k.ifindex === va && k.proto === 1 && k.egress).map(([, s]) => s.packets).sort();
    assert.deepEqual(kept, [1, 3], "counted while no agent ran");
    tap.attach(va);
    assert.deepEqual(tcxAttached(va, "egress", nsA).linkIds, before, "the same link, now running the new program");
    assert.equal(tcxAttached(va, "egress", nsA).progIds[0], tap.obj.program("observe_egress").info().id);
    ping(1);
    const after = await pollFor(tap, (all) => all.some(echo(8)));
    assert.ok(after.some(echo(8)), "events reach the new tap");
    tap.detach(va);
    assert.deepEqual(tcxAttached(va, "ingress", nsA).progIds, [other.info().id]);
    assert.deepEqual(tcxAttached(va, "egress", nsA).progIds, []);
    assert.ok(before.every((id) => !linkIds().has(id)), "bpftool: the links are gone");
  } finally {
    tap?.close();
    otherLink.close();
    other.close();
  }
  assert.deepEqual(listPins(pinDir), [], "ls: nothing pinned");
});

test("remove() after a tap died with its pins: links detached, pins gone", () => {
  const pinDir = join(FS, "t", "crash");
  const tap = BpfFlowTap.open({ netns: nsA, pinDir, mode: "tcx" });
  tap.attach(va);
  const ids = tcxAttached(va, "ingress", nsA).linkIds;
  tap.close({ keepPins: true });
  assert.equal(tcxAttached(va, "ingress", nsA).progIds.length, 1, "still observing");
  const removed = BpfFlowTap.remove(pinDir, nsA);
  assert.ok(removed.some((r) => r.includes(`links/tcx-${va}-ingress`)), removed.join("\n"));
  assert.deepEqual(tcxAttached(va, "ingress", nsA).progIds, []);
  assert.deepEqual(tcxAttached(va, "egress", nsA).progIds, []);
  assert.ok(ids.every((id) => !linkIds().has(id)));
  assert.deepEqual(listPins(pinDir), []);
});

test("clsact (kernels before 6.6): a named bpf filter on each hook, tc sees it, a ping is seen, and it all goes", async () => {
  const tap = BpfFlowTap.open({ netns: nsA, mode: "clsact" });
  try {
    assert.equal(tap.mode, "clsact");
    tap.attach(va);
    tap.attach(va);
    const tc = JSON.parse(sh("nsenter", `--net=${nsA}`, "tc", "-j", "filter", "show", "dev", "va", "ingress")) as { kind: string; options?: { bpf_name?: string; prog?: { id: number } } }[];
    const f = tc.filter((x) => x.options?.bpf_name);
    assert.deepEqual(f.map((x) => [x.kind, x.options!.bpf_name, x.options!.prog?.id]), [["bpf", "gauze-observe-ingress", tap.obj.program("observe_ingress").info().id]]);
    assert.deepEqual(clsactAttached(va, "egress", nsA).map((x) => x.name), ["gauze-observe-egress"]);
    ping(2);
    const ev = await pollFor(tap, (all) => all.some(echo(8)) && all.some(echo(0)));
    assert.ok(ev.some(echo(8)) && ev.some(echo(0)), JSON.stringify(ev.map((e) => [e.proto, e.icmp?.type, e.ifindex])));
    tap.detach(va);
    assert.deepEqual(clsactAttached(va, "ingress", nsA), []);
    assert.doesNotMatch(sh("nsenter", `--net=${nsA}`, "tc", "qdisc", "show", "dev", "va"), /clsact/, "the qdisc it left empty is gone");
    // A tap that died leaves its filters; remove() finds them by name.
    tap.attach(va);
  } finally {
    tap.close({ keepPins: true });
  }
  assert.equal(clsactAttached(va, "ingress", nsA).length, 1);
  const removed = BpfFlowTap.remove(join(FS, "t", "none"), nsA);
  assert.deepEqual(removed.filter((r) => r.startsWith("clsact")).sort(), ["clsact filter gauze-observe-egress on va", "clsact filter gauze-observe-ingress on va", "clsact qdisc on va"]);
  assert.deepEqual(clsactAttached(va, "ingress", nsA), []);
});

