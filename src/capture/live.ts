// Live capture: tcpdump writes pcap to its stdout as packets arrive (-U -w -) and gauze decodes
// the stream with the same reader and decoders as for files. tcpdump runs in the namespace given
// (by name under /run/netns, or a path), started inside it, and stops on count, duration or Ctrl-C.
import { startPiped } from "../kernel/spawn.ts";
import { netnsArg } from "../kernel/netns.ts";
import { createWriteStream, type WriteStream } from "node:fs";
/** What takes the stream: feed() returns false to stop the capture (e.g. --limit reached). */
export interface ChunkConsumer {
  feed(chunk: Uint8Array): boolean;
}

export interface LiveOptions {
  iface: string;
  netns?: string;
  /** A tcpdump (BPF) capture filter, applied in the kernel. */
  bpf?: string;
  count?: number;
  durationSec?: number;
  /** Also write the raw capture here (pcap). */
  writeFile?: string;
  /** Called once tcpdump listens, with its own line. */
  onListening?: (line: string) => void;
}

export function captureLive(run: ChunkConsumer, o: LiveOptions): Promise<{ stoppedBy: string }> {
  // The filter comes after "--": a word of it can never become a tcpdump option (-w /etc/...).
  const tcpdump = ["tcpdump", "-U", "-n", "-w", "-", "-i", o.iface, ...(o.count ? ["-c", String(o.count)] : []), "--", ...(o.bpf ? o.bpf.split(/\s+/).filter(Boolean) : [])];

  return new Promise((resolve, reject) => {
    const child = startPiped(tcpdump, o.netns ? { netns: netnsArg(o.netns) } : {});
    let file: WriteStream | undefined;
    if (o.writeFile) file = createWriteStream(o.writeFile);
    let stoppedBy = o.count ? "count" : "end";
    let stderr = "";
    let listening = false;
    const stop = (why: string) => {
      stoppedBy = why;
      child.kill("SIGINT"); // tcpdump flushes and exits cleanly on SIGINT
    };
    const onSigint = () => stop("interrupt");
    process.on("SIGINT", onSigint);
    const timer = o.durationSec ? setTimeout(() => stop("duration"), o.durationSec * 1000) : undefined;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!listening && /listening on/.test(stderr)) {
        listening = true;
        o.onListening?.(stderr.split("\n").find((l) => l.includes("listening on")) ?? "");
      }
    });
    let failure: unknown;
    child.stdout.on("data", (chunk: Buffer) => {
      file?.write(chunk);
      try {
        if (!run.feed(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))) stop("limit");
      } catch (e) {
        failure = e;
        stop("error");
      }
    });
    child.on("error", (e) => reject(new Error(`cannot run tcpdump: ${e.message} (apt-get install tcpdump)`)));
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      process.off("SIGINT", onSigint);
      file?.end();
      if (failure) return reject(failure);
      if (code !== 0 && !listening) {
        const why = stderr.trim().split("\n").filter(Boolean).join("; ") || `exit ${code}`;
        // A filter tcpdump cannot parse says "syntax error" and nothing else: say which language it is.
        const hint = /syntax error|can't parse filter|unknown host|illegal/i.test(why)
          ? `--filter is tcpdump's capture filter (pcap-filter(7)), e.g. "udp port 8472", "host 10.244.1.2 and tcp port 80", or Wireshark's tcp.port == 80, ip.addr == A`
          : `list the interfaces with: ip${o.netns ? ` -n ${o.netns}` : ""} link`;
        return reject(new Error(`tcpdump failed: ${why} (${hint})`));
      }
      resolve({ stoppedBy });
    });
  });
}
