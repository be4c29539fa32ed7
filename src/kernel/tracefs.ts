// Packet drops as the kernel reports them, without eBPF: the skb:kfree_skb tracepoint, enabled
// in a tracefs instance of our own (instances/<name>: its own buffer, so other tracing users are
// not disturbed), read from its trace_pipe without blocking. Each drop comes with the kernel's
// reason (named by this kernel's own table: the numbers change between kernels), the function
// it happened in, the protocol, and the process it happened under. Neither the namespace nor
// the packet's addresses are in the event: callers attribute drops by what they saw of the packet.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, rmdirSync, writeFileSync, constants } from "node:fs";
import { join } from "node:path";
import { libc } from "./libc.ts";
import { TRACEFS } from "./pseudofs.ts";

export interface DropEvent {
  /** Wall-clock nanoseconds since the epoch (converted from the tracer's monotonic clock). */
  tsNs: bigint;
  pid: number;
  comm: string;
  /** EtherType of the packet (2048 IPv4, 34525 IPv6, 2054 ARP). */
  protocol: number;
  /** Where in the kernel: e.g. "nft_do_chain+0x3e8/0x610". */
  location: string;
  reason: string;
}

export class TracefsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TracefsError";
  }
}

/** Reasons that are an endpoint's own business (a socket's, TCP's), not the network's. */
const ENDPOINT_REASON = /^(NOT_SPECIFIED|TCP_|SOCKET_|UNIX_|PROTO_MEM|QUEUE_PURGE|SKB_UCOPY_FAULT|PACKET_SOCK_ERROR)/;

/** Whether a drop reason is an endpoint's own (a socket's, TCP's) rather than the network's; NOT_SPECIFIED counts as one. */
export function isEndpointReason(reason: string): boolean {
  return ENDPOINT_REASON.test(reason);
}

export function tracefsRoot(): string {
  for (const d of [TRACEFS.path, ...TRACEFS.alsoAt]) if (existsSync(join(d, "instances"))) return d;
  throw new TracefsError(`tracefs is not mounted at ${TRACEFS.path}: ${TRACEFS.fix} (a DaemonSet mounts the host's ${TRACEFS.path})`);
}

/** This kernel's drop reasons, number to name, from the tracepoint's own format file. */
export function dropReasons(root = tracefsRoot()): Map<number, string> {
  const fmt = readFileSync(join(root, "events/skb/kfree_skb/format"), "utf8");
  const out = new Map<number, string>();
  for (const m of fmt.matchAll(/\{\s*(\d+),\s*"([A-Z0-9_]+)"\s*\}/g)) out.set(Number(m[1]), m[2]!);
  return out;
}

const LINE = /^\s*(.+)-(\d+)\s+\[\d+\]\s+\S+\s+(\d+)\.(\d+):\s+kfree_skb:\s+skbaddr=\S+(?:\s+rx_sk=\S+)?\s+protocol=(\d+)\s+location=(\S+)\s+reason:\s+(\S+)/;

/** One trace_pipe line as a drop; undefined for anything else. `offsetNs` turns the monotonic clock into wall-clock time. */
export function parseDropLine(line: string, offsetNs: bigint): DropEvent | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const mono = BigInt(m[3]!) * 1_000_000_000n + BigInt(m[4]!.padEnd(9, "0").slice(0, 9));
  return { comm: m[1]!.trim(), pid: Number(m[2]), tsNs: mono + offsetNs, protocol: Number(m[5]), location: m[6]!, reason: m[7]! };
}

/** Wall-clock minus monotonic time (the tracer's "mono" clock), in nanoseconds, both read now. */
function clockOffsetNs(): bigint {
  const c = libc();
  const ts = new BigInt64Array(2);
  c.clock_gettime(0, ts); // CLOCK_REALTIME
  const real = ts[0]! * 1_000_000_000n + ts[1]!;
  c.clock_gettime(1, ts); // CLOCK_MONOTONIC
  return real - (ts[0]! * 1_000_000_000n + ts[1]!);
}

export class DropWatch {
  private fd: number;
  private rest = "";
  private readonly buf = Buffer.alloc(1 << 16);
  private offsetNs = clockOffsetNs();
  private closed = false;
  /** Lines read and left out because a call asked for fewer (see read). */
  skipped = 0;

  private constructor(private readonly dir: string, private readonly baseFilter: string[]) {
    this.fd = openSync(join(dir, "trace_pipe"), constants.O_RDONLY | constants.O_NONBLOCK);
  }

  /**
   * A private instance named `name` with kfree_skb on, filtered in the kernel to the network's
   * reasons (`pids`: only drops under these processes, e.g. one probe's).
   */
  static open(name: string, o: { pids?: number[]; allReasons?: boolean } = {}): DropWatch {
    const root = tracefsRoot();
    const dir = join(root, "instances", name);
    try {
      if (!existsSync(dir)) mkdirSync(dir);
      writeFileSync(join(dir, "trace_clock"), "mono");
      // allReasons: NOT_SPECIFIED too (a probe's own packet freed without a reason still says where).
      const skip = o.allReasons ? [] : [...dropReasons(root)].filter(([, n]) => ENDPOINT_REASON.test(n)).map(([k]) => `reason != ${k}`);
      const w = new DropWatch(dir, skip);
      w.setPids(o.pids ?? []);
      writeFileSync(join(dir, "events/skb/kfree_skb/enable"), "1");
      return w;
    } catch (e) {
      try { DropWatch.remove(dir); } catch { /* half made */ }
      throw new TracefsError(`tracefs instance ${dir}: ${(e as Error).message}`);
    }
  }

  /** Only drops under these processes from now on (none given: every process). */
  setPids(pids: number[]): void {
    const terms = [...this.baseFilter, ...(pids.length ? [`(${pids.map((p) => `common_pid == ${p}`).join(" || ")})`] : [])];
    // "0" clears a filter.
    writeFileSync(join(this.dir, "events/skb/kfree_skb/filter"), terms.join(" && ") || "0");
  }

  /**
   * Drops reported since the last call, at most `max` of them; lines past it are read and left
   * out (the caller counts them as lost), so a flood of drops costs a bounded parse per call.
   */
  read(max = Infinity): DropEvent[] {
    if (this.closed) return [];
    let text = this.rest;
    for (let reads = 0; reads < 16; reads++) {
      let n = 0;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") break;
        throw e;
      }
      if (n <= 0) break;
      text += this.buf.toString("utf8", 0, n);
    }
    const lines = text.split("\n");
    this.rest = lines.pop() ?? "";
    this.offsetNs = clockOffsetNs();
    const out: DropEvent[] = [];
    for (const l of lines) {
      if (out.length >= max) { this.skipped++; continue; }
      const d = parseDropLine(l, this.offsetNs);
      if (d) out.push(d);
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try { closeSync(this.fd); } catch { /* closed */ }
    DropWatch.remove(this.dir);
  }

  /**
   * Removes instances whose name starts with `prefix` (an agent killed outright leaves its own
   * behind), except those `keep` names. Returns the names removed.
   */
  static removeStale(prefix: string, keep: (name: string) => boolean = () => false): string[] {
    let root: string;
    try {
      root = tracefsRoot();
    } catch {
      return [];
    }
    const gone: string[] = [];
    for (const n of readdirSync(join(root, "instances"))) {
      if (!n.startsWith(prefix) || keep(n)) continue;
      DropWatch.remove(join(root, "instances", n));
      if (!existsSync(join(root, "instances", n))) gone.push(n);
    }
    return gone;
  }

  private static remove(dir: string): void {
    try { writeFileSync(join(dir, "events/skb/kfree_skb/enable"), "0"); } catch { /* gone */ }
    // The kernel refuses while a reader holds trace_pipe open (EBUSY): callers close it first.
    try { rmdirSync(dir); } catch { /* gone, or still read by a live agent: its own close removes it */ }
  }
}
