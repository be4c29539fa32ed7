// `gauze dissect <file|->` and `gauze capture`: the CLI side of src/capture.
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { CaptureFormatError } from "../capture/reader.ts";
import { DissectRun, type DissectOptions } from "../capture/run.ts";
import { decodeOptions } from "../packet/dissect.ts";
import { FilterError, captureFilterToBpf, compileFilter } from "../capture/filter.ts";
import { summaryText, type SummaryReport } from "../capture/summary.ts";

export interface DissectCliOptions {
  json?: boolean;
  summary?: boolean;
  vxlanPort?: string;
  limit?: string;
  filter?: string;
}

export class UsageError extends Error {}

export function parsePorts(text: string | undefined, what: string): number[] | undefined {
  if (text === undefined) return undefined;
  const ports = text.split(",").filter(Boolean).map(Number);
  if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new UsageError(`${what} ${JSON.stringify(text)}: give ports from 1 to 65535, comma-separated (e.g. 8472,4789)`);
  }
  return ports;
}

export function buildOptions(o: DissectCliOptions): DissectOptions {
  const mode = o.summary ? "summary" : o.json ? "json" : "text";
  let limit: number | undefined;
  if (o.limit !== undefined) {
    limit = Number(o.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit ${JSON.stringify(o.limit)}: give a whole number of packets, at least 1`);
  }
  const vxlanPorts = parsePorts(o.vxlanPort, "--vxlan-port");
  return {
    mode,
    ...(limit !== undefined ? { limit } : {}),
    ...(o.filter !== undefined ? { filter: compileFilter(o.filter) } : {}),
    // The summary needs sizes, not checksums or TCP options: skipping them makes it 2x faster.
    decode: decodeOptions({ ...(vxlanPorts ? { vxlanPorts } : {}), detail: mode !== "summary" }),
  };
}

/** Writes to stdout; a closed pipe (`| head`) ends the program quietly. */
export function stdoutWrite(bytes: Uint8Array | string): void {
  try {
    if (typeof bytes === "string") {
      writeSync(1, bytes);
      return;
    }
    for (let off = 0; off < bytes.length;) off += writeSync(1, bytes, off, bytes.length - off);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EPIPE") process.exit(0);
    throw e;
  }
}

export function printSummary(r: SummaryReport, json: boolean): void {
  stdoutWrite(json ? JSON.stringify(r, null, 2) + "\n" : summaryText(r));
}

export function runDissect(file: string, o: DissectCliOptions): number {
  let opts: DissectOptions;
  try {
    opts = buildOptions(o);
  } catch (e) {
    if (e instanceof UsageError || e instanceof FilterError) {
      process.stderr.write(`gauze dissect: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let fd: number;
  try {
    fd = file === "-" ? 0 : openSync(file, "r");
  } catch (e) {
    process.stderr.write(`gauze dissect: cannot open ${file}: ${(e as Error).message}\n`);
    return 1;
  }
  const run = new DissectRun(opts, stdoutWrite);
  const read = (buf: Uint8Array, off: number, len: number): number => {
    for (;;) {
      try {
        return readSync(fd, buf, off, len, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      }
    }
  };
  try {
    while (run.fillFrom(read));
    const report = run.finish();
    if (report) printSummary(report, !!o.json);
    if (run.note) process.stderr.write(`gauze dissect: ${file}: note: ${run.note}\n`);
    return 0;
  } catch (e) {
    run.flush();
    if (e instanceof CaptureFormatError) {
      process.stderr.write(`gauze dissect: ${file}: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}

export interface CaptureCliOptions extends DissectCliOptions {
  iface: string;
  netns?: string;
  count?: string;
  duration?: string;
  write?: string;
}

function positive(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`${what} ${JSON.stringify(v)}: give a positive number`);
  return n;
}

export async function runCapture(o: CaptureCliOptions): Promise<number> {
  let opts: DissectOptions;
  let count: number | undefined;
  let durationSec: number | undefined;
  let bpf: string | undefined;
  try {
    // For capture, --filter is tcpdump's own (BPF) filter, applied in the kernel.
    opts = buildOptions({ ...o, filter: undefined });
    count = positive(o.count, "--count");
    durationSec = positive(o.duration, "--duration");
    if (count !== undefined && !Number.isInteger(count)) throw new UsageError("--count takes a whole number");
    bpf = o.filter ? captureFilterToBpf(o.filter) : undefined;
  } catch (e) {
    if (e instanceof UsageError || e instanceof FilterError) {
      process.stderr.write(`gauze capture: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const run = new DissectRun(opts, stdoutWrite);
  const { captureLive } = await import("../capture/live.ts");
  try {
    const r = await captureLive(run, {
      iface: o.iface, ...(o.netns ? { netns: o.netns } : {}), ...(bpf ? { bpf } : {}),
      ...(count ? { count } : {}), ...(durationSec ? { durationSec } : {}), ...(o.write ? { writeFile: o.write } : {}),
      onListening: (line) => process.stderr.write(`gauze capture: ${line.trim()}${o.netns ? ` (netns ${o.netns})` : ""}\n`),
    });
    const report = run.finish();
    if (report) printSummary(report, !!o.json);
    process.stderr.write(`gauze capture: ${run.packetsRead} packets, stopped by ${r.stoppedBy}\n`);
    return 0;
  } catch (e) {
    run.flush();
    process.stderr.write(`gauze capture: ${(e as Error).message}\n`);
    return 1;
  }
}
