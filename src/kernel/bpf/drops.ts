// BpfDropTap: bpf/drops.c on the kernel's kfree_skb tracepoint, for the agent's drop
// attribution: the kernel's reason and where, the device and the network namespace (by inode),
// the packet's first bytes. Only the namespaces userspace names are reported (the node's and its
// pods'), without the reasons it marks as an endpoint's own. Reason names come from the kernel's
// own `enum skb_drop_reason` in its BTF, so no tracefs is needed at all; locations can be
// resolved to kernel symbols (/proc/kallsyms, read once). Times are CLOCK_REALTIME nanoseconds,
// converted from the program's CLOCK_MONOTONIC when read.
import { readFileSync } from "node:fs";
import { KIND, kernelBtf } from "./btf.ts";
import { rawTracepoint, tpBtf } from "./features.ts";
import { type BpfLink, attachTracepoint } from "./link.ts";
import { type TypedMap, u32, u64, u8 } from "./map.ts";
import { type BpfObject, loadObject } from "./object.ts";
import { embeddedObject } from "./objects.ts";
import { monotonicToRealtime } from "./clock.ts";
import { RingBuffer } from "./ringbuf.ts";

export interface DropTapEvent {
  /** CLOCK_REALTIME nanoseconds (converted from the program's monotonic clock when read). */
  timeNs: bigint;
  reason: number;
  /** The kernel's name without SKB_DROP_REASON_ ("NO_SOCKET", "NETFILTER_DROP"). */
  reasonName: string;
  /** The caller's address in the kernel, and its symbol when asked for ("nft_do_chain+0x3e8"). */
  location: bigint;
  symbol?: string;
  /** The skb's device (0: none, then the namespace came from its socket). */
  ifindex: number;
  netnsInode: number;
  /** EtherType (2048 IPv4, 34525 IPv6, 2054 ARP). */
  protocol: number;
  skbLen: number;
  /** From the network header, up to 128 bytes. */
  frame: Uint8Array;
  /** The link-layer header before it, when the skb had a valid one (up to 16 bytes). */
  mac?: Uint8Array;
}

export interface DropTapOptions {
  /** tp_btf (typed, the default where the kernel allows it) or raw_tracepoint. */
  mode?: "auto" | "tp_btf" | "raw_tracepoint";
  ringBytes?: number;
  /** Resolve each location to a kernel symbol. */
  symbols?: boolean;
  object?: Uint8Array;
}

export const DROP_EVENT_SIZE = 184;
const SKIP_REASONS = 1024;

let reasonCache: Map<number, string> | undefined;

/** The kernel's drop reasons by number, from its BTF (enum skb_drop_reason). */
export function dropReasonNames(): Map<number, string> {
  if (reasonCache) return reasonCache;
  const k = kernelBtf();
  const out = new Map<number, string>();
  for (const id of k.find("skb_drop_reason", KIND.ENUM)) {
    for (const { name, value } of k.enumValues(id)) out.set(value, name.replace(/^SKB_DROP_REASON_/, "").replace(/^SKB_/, ""));
  }
  reasonCache = out;
  return out;
}

/** Reason numbers by name (as dropReasonNames gives them); unknown names are an error. */
export function dropReasonNumbers(names: readonly string[]): number[] {
  const byName = new Map([...dropReasonNames()].map(([n, s]) => [s, n]));
  return names.map((s) => {
    const n = byName.get(s.replace(/^SKB_DROP_REASON_/, ""));
    if (n === undefined) throw new RangeError(`this kernel has no drop reason ${s}`);
    return n;
  });
}

let kallsyms: { addrs: BigUint64Array; names: string[] } | undefined;

/** "symbol+0xoffset" for a kernel text address, from /proc/kallsyms (read once); undefined when unknown or hidden. */
export function kernelSymbol(addr: bigint): string | undefined {
  if (!kallsyms) {
    const rows: [bigint, string][] = [];
    let text = "";
    try { text = readFileSync("/proc/kallsyms", "utf8"); } catch { /* not readable: no symbols */ }
    for (const line of text.split("\n")) {
      const sp1 = line.indexOf(" "), sp2 = line.indexOf(" ", sp1 + 1);
      if (sp1 < 0 || sp2 < 0) continue;
      const t = line[sp1 + 1];
      if (t !== "t" && t !== "T") continue;
      const a = BigInt(`0x${line.slice(0, sp1)}`);
      if (a === 0n) continue; // kptr_restrict hides addresses
      const end = line.indexOf("\t", sp2 + 1);
      rows.push([a, line.slice(sp2 + 1, end < 0 ? undefined : end)]);
    }
    rows.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    kallsyms = { addrs: BigUint64Array.from(rows.map((r) => r[0])), names: rows.map((r) => r[1]) };
  }
  const { addrs, names } = kallsyms;
  let lo = 0, hi = addrs.length - 1, at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (addrs[mid]! <= addr) { at = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (at < 0) return undefined;
  const off = addr - addrs[at]!;
  return off > 0x100000n ? undefined : `${names[at]}+0x${off.toString(16)}`;
}

export function decodeDropEvent(rec: Uint8Array, offsetNs: bigint, names: Map<number, string>): DropTapEvent {
  if (rec.length < DROP_EVENT_SIZE) throw new RangeError(`drop event of ${rec.length} bytes, expected ${DROP_EVENT_SIZE}`);
  const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const reason = v.getUint32(16, true);
  const frameLen = Math.min(v.getUint16(34, true), 128), macLen = Math.min(v.getUint16(36, true), 16);
  const e: DropTapEvent = {
    timeNs: v.getBigUint64(0, true) + offsetNs, location: v.getBigUint64(8, true), reason, reasonName: names.get(reason) ?? `reason ${reason}`,
    ifindex: v.getUint32(20, true), netnsInode: v.getUint32(24, true), skbLen: v.getUint32(28, true), protocol: v.getUint16(32, true),
    frame: rec.slice(56, 56 + frameLen),
  };
  if (macLen) e.mac = rec.slice(40, 40 + macLen);
  return e;
}

export class BpfDropTap {
  private readonly ring: RingBuffer;
  private readonly link: BpfLink;
  private readonly filter: TypedMap<number, number>;
  private readonly skip: TypedMap<number, number>;
  private closed = false;

  private constructor(readonly obj: BpfObject, readonly mode: "tp_btf" | "raw_tracepoint", private readonly o: DropTapOptions) {
    this.filter = obj.map("netns_filter").typed(u32, u8);
    this.skip = obj.map("skip_reasons").typed(u32, u8);
    this.ring = RingBuffer.open(obj.map("drop_events"));
    try {
      this.link = attachTracepoint(obj.program(mode === "tp_btf" ? "drops_btf" : "drops_raw"));
    } catch (e) {
      this.ring.close();
      throw e;
    }
  }

  static open(o: DropTapOptions = {}): BpfDropTap {
    let mode: "tp_btf" | "raw_tracepoint" = o.mode === "raw_tracepoint" ? "raw_tracepoint" : "tp_btf";
    if (o.mode === undefined || o.mode === "auto") {
      const tp = tpBtf("kfree_skb");
      if (!tp.ok) {
        const raw = rawTracepoint();
        if (!raw.ok) throw new Error(`drops cannot be traced: tp_btf/kfree_skb is ${tp.why}; raw_tracepoint is ${raw.why}`);
        mode = "raw_tracepoint";
      }
    }
    const obj = loadObject(o.object ?? embeddedObject("drops"), {
      programs: [mode === "tp_btf" ? "drops_btf" : "drops_raw"],
      ...(o.ringBytes ? { maxEntries: { drop_events: o.ringBytes } } : {}),
    });
    try {
      return new BpfDropTap(obj, mode, o);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  get warnings(): readonly string[] {
    return this.obj.warnings;
  }

  /** Report drops in exactly these network namespaces (inodes, as stat() of /proc/<pid>/ns/net gives). */
  setNamespaces(inodes: readonly number[]): void {
    const want = new Set(inodes);
    for (const k of [...this.filter.keys()]) if (!want.has(k)) this.filter.delete(k);
    for (const n of want) this.filter.update(n, 1);
  }

  namespaces(): number[] {
    return [...this.filter.keys()].sort((a, b) => a - b);
  }

  /** Do not report these reasons (numbers; see dropReasonNumbers for names). */
  setSkipReasons(reasons: readonly number[]): void {
    const skip = new Set(reasons);
    for (const r of skip) if (!Number.isInteger(r) || r < 0 || r >= SKIP_REASONS) throw new RangeError(`drop reason ${r}: only 0..${SKIP_REASONS - 1} can be skipped`);
    for (let r = 0; r < SKIP_REASONS; r++) {
      const want = skip.has(r) ? 1 : 0;
      if ((this.skip.lookup(r) ?? 0) !== want) this.skip.update(r, want);
    }
  }

  /** Up to `max` drops from the ring, decoded. */
  poll(max = 4096): DropTapEvent[] {
    const out: DropTapEvent[] = [];
    const offset = monotonicToRealtime();
    const names = dropReasonNames();
    this.ring.poll((r) => {
      const e = decodeDropEvent(r, offset, names);
      if (this.o.symbols) {
        const s = kernelSymbol(e.location);
        if (s) e.symbol = s;
      }
      out.push(e);
    }, max);
    return out;
  }

  wait(timeoutMs: number): boolean {
    return this.ring.wait(timeoutMs);
  }

  /** Drops the program could not put in the ring (it was full). */
  lost(): number {
    return (this.obj.map("drop_lost").perCpu(u32, u64).lookup(0) ?? []).reduce((a, b) => a + b, 0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.link.close();
    this.ring.close();
    this.obj.close();
  }
}
