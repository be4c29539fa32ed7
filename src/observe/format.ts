// Flow events as people read them: Hubble's compact line (time, node, source -> destination,
// what, where, verdict) with what Hubble leaves to JSON printed too: the tunnel, its outer
// addresses and the bytes it adds. Filters as `gauze observe` takes them.
import type { FlowEvent } from "../agent/flow-types.ts";
import { printable } from "../util/text.ts";
import { rfc3339FromMs } from "../util/time.ts";

export interface FlowFilter {
  /** Pod name (namespace/ prefix optional), either end; from-/to- one end. */
  pod?: string;
  fromPod?: string;
  toPod?: string;
  protocol?: "icmp" | "tcp" | "udp";
  verdict?: "forwarded" | "dropped" | "audit";
}

/** Whether a pod name (namespace/name) is the one a user typed (namespace "default" when not given). */
export function podMatches(name: string | undefined, wanted: string): boolean {
  if (!name) return false;
  return name === (wanted.includes("/") ? wanted : `default/${wanted}`);
}

export function matches(e: FlowEvent, f: FlowFilter): boolean {
  if (f.protocol && !(e.protocol === f.protocol || (f.protocol === "icmp" && e.protocol === "icmp6"))) return false;
  if (f.verdict && e.verdict !== f.verdict) return false;
  if (f.fromPod && !podMatches(e.source.pod, f.fromPod)) return false;
  if (f.toPod && !podMatches(e.destination.pod, f.toPod)) return false;
  if (f.pod && !podMatches(e.source.pod, f.pod) && !podMatches(e.destination.pod, f.pod)) return false;
  return true;
}

/**
 * A flow event as `observe -o json` writes it (docs/json.md): the agent's event with its time in
 * RFC 3339 with nanoseconds, as every command's JSON has it (the agent's API keeps epoch ms).
 */
export function flowJson(e: FlowEvent): Omit<FlowEvent, "time"> & { time: string } {
  return { ...e, time: rfc3339FromMs(e.time) };
}

/** Names for the addresses of pods this node does not have (the relay knows every node's). */
export function named(e: FlowEvent, pods: Map<string, { pod: string }>): FlowEvent {
  const fill = (ep: FlowEvent["source"]) => (ep.pod || !pods.has(ep.ip) ? ep : { ...ep, pod: pods.get(ep.ip)!.pod });
  return { ...e, source: fill(e.source), destination: fill(e.destination) };
}

function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.toLocaleString("en-US", { month: "short", timeZone: "UTC" })} ${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`;
}

function endpoint(ep: FlowEvent["source"]): string {
  return `${ep.pod ?? ep.ip}${ep.port ? `:${ep.port}` : ""}`;
}

function what(e: FlowEvent): string {
  if (e.icmp) {
    const names: Record<string, string> = { "icmp 8": "echo-request", "icmp 0": "echo-reply", "icmp 3": "unreachable", "icmp 11": "time-exceeded", "icmp6 128": "echo-request", "icmp6 129": "echo-reply", "icmp6 1": "unreachable", "icmp6 2": "packet-too-big" };
    return `${e.protocol} ${names[`${e.protocol} ${e.icmp.type}`] ?? `type ${e.icmp.type}`}${e.icmp.seq !== undefined ? ` seq ${e.icmp.seq}` : ""}`;
  }
  return `${e.protocol}${e.tcpFlags?.length ? ` ${e.tcpFlags.join(",")}` : ""}`;
}

/** One line: `Dec 01 16:57:02.123 [node] default/a -> default/b:80 tcp SYN  to-overlay gauze.1  FORWARDED  1 pkt 74 B  vxlan vni 1 172.18.0.2 -> 172.18.0.3, outer 124 B, +50 B`. */
export function compact(e: FlowEvent): string {
  const verdict = e.verdict === "dropped"
    ? (e.policy ? `DROPPED (${e.policy.reason})` : `DROPPED (${e.dropReason ?? "?"}${e.dropLocation ? ` in ${e.dropLocation.replace(/\+0x.*$/, "")}` : ""})`)
    : e.verdict === "audit" ? `AUDIT (${e.policy?.reason ?? "an audit-mode policy would drop it"})` : "FORWARDED";
  const tunnel = e.tunnel ? `  vxlan vni ${e.tunnel.vni} ${e.tunnel.outer.source} -> ${e.tunnel.outer.destination}, outer ${e.tunnel.outerIpLen} B, +${e.tunnel.overheadBytes} B` : "";
  // Every field came from an agent: printed with its control characters made visible.
  return printable(`${clock(e.time)} [${e.node}] ${endpoint(e.source)} -> ${endpoint(e.destination)} ${what(e)}  ${e.observationPoint} ${e.interface.name}  ${verdict}  ${e.packets} pkt ${e.bytes} B  IP ${e.ipLen} B${tunnel}`);
}
