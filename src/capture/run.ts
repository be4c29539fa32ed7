// Drives reader -> dissector -> filter -> output for a file, stdin or a live tcpdump stream.
// Output is buffered and written in large slices; input is read in 4 MiB slices and dropped as
// soon as its packets are decoded, so memory does not grow with the capture.
import { CaptureReader } from "./reader.ts";
import { dissect } from "../packet/dissect.ts";
import type { DecodeOptions } from "../packet/decode/context.ts";
import type { PacketFilter } from "./filter.ts";
import { CHECKSUM_LEGEND, packetJson, shown, writePacketText } from "./format.ts";
import { AsciiSink } from "./ascii-sink.ts";
import { Summary, type SummaryReport } from "./summary.ts";

export interface DissectOptions {
  mode: "text" | "json" | "summary";
  limit?: number;
  filter?: PacketFilter;
  decode: DecodeOptions;
}

export type Write = (bytes: Uint8Array) => void;

/**
 * Collects output as UTF-8 bytes in one preallocated buffer (TextEncoder.encodeInto per piece)
 * and writes it in large slices: joining thousands of small strings and encoding them at once
 * cost more than decoding the packets did.
 */
export class BufferedWriter {
  private buf: Uint8Array;
  private used = 0;
  private readonly enc = new TextEncoder();
  constructor(private readonly write: Write, size = 1 << 20) {
    this.buf = new Uint8Array(size);
  }
  add(s: string): void {
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    if (this.used + s.length * 3 > this.buf.length) {
      this.flush();
      if (s.length * 3 > this.buf.length) this.buf = new Uint8Array(s.length * 3);
    }
    this.used += this.enc.encodeInto(s, this.buf.subarray(this.used)).written;
  }
  flush(): void {
    if (this.used === 0) return;
    this.write(this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

export class DissectRun {
  private readonly reader = new CaptureReader();
  private readonly out: BufferedWriter;
  private readonly text: AsciiSink;
  private readonly summary: Summary | undefined;
  private shown = 0;
  done = false;

  constructor(private readonly opts: DissectOptions, write: Write) {
    this.out = new BufferedWriter(write);
    this.text = new AsciiSink(write);
    this.summary = opts.mode === "summary" ? new Summary() : undefined;
  }

  get packetsRead(): number {
    return this.reader.packets;
  }

  /** What the reader forgave, said once (libpcap's leniency): undefined when nothing. */
  get note(): string | undefined {
    const c = this.reader.clamped;
    if (!c.count) return undefined;
    return `${c.count} ${c.count === 1 ? "packet claims" : "packets claim"} more captured bytes than the file's snapshot length ${c.snaplen} (the first, #${c.first}, ${c.claimed}): decoded up to the snapshot length and marked cut, as libpcap reads them`;
  }

  /** Feeds a chunk; returns false once --limit is reached (the caller may stop reading). */
  feed(chunk: Uint8Array): boolean {
    if (this.done) return false;
    this.reader.push(chunk);
    this.drain();
    return !this.done;
  }

  /** Reads from a synchronous source through the reader's own buffer (no copy per chunk). */
  fillFrom(read: (buf: Uint8Array, offset: number, length: number) => number): boolean {
    if (this.done) return false;
    const n = this.reader.fill(read);
    if (n === 0) return false;
    this.drain();
    return !this.done;
  }

  private drain(): void {
    const { mode, filter, limit, decode } = this.opts;
    for (;;) {
      const p = this.reader.next();
      if (!p) return;
      const d = dissect(p, decode);
      if (filter && !filter(d)) continue;
      this.shown++;
      if (this.summary) this.summary.add(d);
      else if (mode === "json") this.out.add(JSON.stringify(packetJson(p, d)) + "\n");
      else writePacketText(this.text, p, d);
      if (limit !== undefined && this.shown >= limit) {
        this.done = true;
        return;
      }
    }
  }

  /** Ends input: throws CaptureFormatError for a truncated file (after flushing what was decoded). */
  finish(): SummaryReport | undefined {
    try {
      if (!this.done) {
        this.reader.end();
        this.drain();
      }
      if (this.opts.mode === "text" && shown.offload) this.text.str(CHECKSUM_LEGEND);
    } finally {
      this.flush();
    }
    return this.summary?.report();
  }

  /** Flushes what was decoded so far (before reporting an error). */
  flush(): void {
    this.out.flush();
    this.text.flush();
  }
}
