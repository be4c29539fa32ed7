// What a packet looks like on the wire, from a real capture: tcpdump in a lab namespace while
// something is sent, each packet decoded by gauze's own dissector into its layers and, for a
// tunnel, the outer and inner sizes. The demo and the bench read their byte counts from here,
// never from a constant.
import { captureLive } from "../capture/live.ts";
import { DissectRun } from "../capture/run.ts";
import { decodeOptions } from "../packet/dissect.ts";

/** One packet as `gauze dissect --json` prints it (the fields the lab reads; docs/json.md). */
export interface WirePacket {
  wireLen: number;
  layers: { layer: string; depth: number; source?: string; destination?: string; destinationPort?: number; vni?: number; totalLen?: number; payloadLen?: number; type?: number }[];
  tunnel?: { protocol?: string; vni?: number; outerIpLen: number; innerIpLen: number; overheadBytes: number };
  /** An encrypted tunnel (WireGuard): the inner packet's length only as sealed (padded to 16). */
  sealed?: { protocol: string; outerIpLen: number; innerPaddedLen: number; overheadBytes: number };
}

/** Captures up to `count` packets matching `bpf` on `iface` in `netns` while `send` runs; also the text view. */
export async function captureDuring(o: { netns: string; iface: string; bpf: string; count: number; durationSec?: number }, send: () => void | Promise<void>): Promise<{ packets: WirePacket[]; text: string[] }> {
  const json: string[] = [];
  const text: string[] = [];
  const run = new DissectRun({ mode: "json", decode: decodeOptions() }, (b) => json.push(...Buffer.from(b).toString().split("\n").filter(Boolean)));
  const textRun = new DissectRun({ mode: "text", decode: decodeOptions() }, (b) => text.push(Buffer.from(b).toString()));
  let listening!: () => void;
  const isListening = new Promise<void>((r) => { listening = r; });
  // One stream, two outputs: JSON to measure, text to show (each reader keeps its own copy).
  const cap = captureLive({ feed: (c) => { textRun.feed(c.slice()); return run.feed(c); } }, {
    iface: o.iface, netns: o.netns, bpf: o.bpf, count: o.count, durationSec: o.durationSec ?? 5, onListening: () => listening(),
  });
  await isListening;
  await send();
  await cap;
  run.finish();
  textRun.finish();
  return { packets: json.map((l) => JSON.parse(l) as WirePacket), text: text.join("").split("\n") };
}

/** A packet's outer IP length, its inner (the pod's) IP length, and the difference: what the path adds. */
export function sizes(p: WirePacket): { outerIp: number; innerIp: number; overhead: number; frame: number } {
  const outer = p.layers.find((l) => (l.layer === "ipv4" || l.layer === "ipv6") && l.depth === 0);
  const outerIp = outer?.layer === "ipv6" ? (outer.payloadLen ?? 0) + 40 : outer?.totalLen ?? 0;
  if (p.sealed) return { outerIp, innerIp: p.sealed.innerPaddedLen, overhead: p.sealed.overheadBytes, frame: p.wireLen };
  const innerIp = p.tunnel ? p.tunnel.innerIpLen : outerIp;
  return { outerIp, innerIp, overhead: outerIp - innerIp, frame: p.wireLen };
}
