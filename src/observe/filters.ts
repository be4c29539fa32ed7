// Hubble's filters for `gauze observe`, beyond pods, protocol and verdict: --ip (either end),
// --port (either end), --namespace (either end's pod), --label (either end's pod labels),
// --since/--until (a duration back from now, or an RFC 3339 time). Parsed once into a Filters
// value; `filtersMatch` is the per-event test (the CLI's words, checked, never per event).
import type { FlowEvent } from "../agent/flow-types.ts";
import { formatIP, parseIP } from "../net/cidr.ts";

export interface Filters {
  /** Addresses, either end (any of them). */
  ips?: string[];
  /** Ports, either end (any of them). */
  ports?: number[];
  /** Namespaces, either end's pod (any of them). */
  namespaces?: string[];
  /** Label selectors (any of them); each a list of requirements (all of them). */
  labels?: LabelRequirement[][];
  /** Epoch milliseconds. */
  since?: number;
  until?: number;
}

export type LabelRequirement = { key: string; op: "=" | "!=" | "exists" | "!exists"; value?: string };

export class FilterWordsError extends Error {}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "5m", "1h30m", "90s" back from `now`, or an RFC 3339 time ("2026-12-02T18:00:00Z", nanoseconds allowed). */
export function parseTime(flag: string, text: string, now = Date.now()): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length && parts.map((m) => m[0]).join("") === text) return now - parts.reduce((ms, m) => ms + Number(m[1]) * UNITS[m[2]!]!, 0);
  const rfc = /^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.exec(text);
  if (rfc) {
    // Date keeps milliseconds; the digits past them are a fraction of a millisecond.
    const frac = rfc[2] ? Number(`0${rfc[2]}`) * 1000 : 0;
    const t = Date.parse(`${rfc[1]!.replace(" ", "T")}${rfc[3]}`);
    if (Number.isFinite(t)) return t + frac;
  }
  throw new FilterWordsError(`${flag} ${JSON.stringify(text)}: give a duration back from now (30s, 5m, 1h30m) or an RFC 3339 time (2026-12-02T18:00:00Z)`);
}

/** One --label value: Kubernetes' equality-based selector, "app=web,tier!=db,canary,!legacy". */
export function parseSelector(text: string): LabelRequirement[] {
  const reqs = text.split(",").map((t) => t.trim()).filter(Boolean).map((t): LabelRequirement => {
    let m = /^([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(t);
    if (m) return { key: m[1]!, op: m[2] === "!=" ? "!=" : "=", value: m[3]! };
    m = /^(!?)([A-Za-z0-9./_-]+)$/.exec(t);
    if (m) return { key: m[2]!, op: m[1] ? "!exists" : "exists" };
    throw new FilterWordsError(`--label ${JSON.stringify(text)}: ${JSON.stringify(t)} is not a requirement; give key=value, key!=value, key or !key, joined by commas (all of them), e.g. app=web,tier!=db`);
  });
  if (!reqs.length) throw new FilterWordsError("--label needs a selector, e.g. app=web");
  return reqs;
}

export function selects(reqs: LabelRequirement[], labels: Record<string, string>): boolean {
  return reqs.every((r) => {
    const v = labels[r.key];
    if (r.op === "exists") return v !== undefined;
    if (r.op === "!exists") return v === undefined;
    if (r.op === "=") return v === r.value;
    return v !== r.value;
  });
}

/** The flags as typed (each may be repeated or comma-separated), checked and parsed. */
export function parseFilters(o: { ip?: string[]; port?: string[]; namespace?: string[]; label?: string[]; since?: string; until?: string }, now = Date.now()): Filters {
  const list = (xs?: string[]) => (xs ?? []).flatMap((x) => x.split(",")).map((x) => x.trim()).filter(Boolean);
  const f: Filters = {};
  const ips = list(o.ip).map((t) => {
    const ip = parseIP(t);
    if (!ip) throw new FilterWordsError(`--ip ${JSON.stringify(t)}: not an IP address (e.g. 10.244.1.2 or fd47:10:244::2)`);
    return formatIP(ip);
  });
  if (ips.length) f.ips = ips;
  const ports = list(o.port).map((t) => {
    const n = Number(t);
    if (!/^\d+$/.test(t) || n < 1 || n > 65535) throw new FilterWordsError(`--port ${JSON.stringify(t)}: give a port from 1 to 65535`);
    return n;
  });
  if (ports.length) f.ports = ports;
  const ns = list(o.namespace);
  for (const n of ns) if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(n)) throw new FilterWordsError(`--namespace ${JSON.stringify(n)}: not a Kubernetes namespace name`);
  if (ns.length) f.namespaces = ns;
  // A comma inside one --label is AND (a selector); several --label flags are OR, as Hubble's.
  if (o.label?.length) f.labels = o.label.map(parseSelector);
  if (o.since) f.since = parseTime("--since", o.since, now);
  if (o.until) f.until = parseTime("--until", o.until, now);
  if (f.since !== undefined && f.until !== undefined && f.since > f.until) throw new FilterWordsError(`--since ${o.since} is after --until ${o.until}`);
  return f;
}

export function hasFilters(f: Filters): boolean {
  return !!(f.ips || f.ports || f.namespaces || f.labels || f.since !== undefined || f.until !== undefined);
}

/** Whether an event passes; `labelsOf` gives a pod's labels by namespace/name (undefined: unknown, so not selected). */
export function filtersMatch(e: FlowEvent, f: Filters, labelsOf: (pod: string) => Record<string, string> | undefined): boolean {
  if (f.since !== undefined && e.time < f.since) return false;
  if (f.until !== undefined && e.time > f.until) return false;
  const ends = [e.source, e.destination];
  if (f.ips && !ends.some((x) => f.ips!.includes(x.ip))) return false;
  if (f.ports && !ends.some((x) => x.port !== undefined && f.ports!.includes(x.port))) return false;
  if (f.namespaces && !ends.some((x) => x.pod !== undefined && f.namespaces!.includes(x.pod.split("/")[0]!))) return false;
  if (f.labels) {
    const ok = ends.some((x) => {
      const l = x.pod ? labelsOf(x.pod) : undefined;
      return l !== undefined && f.labels!.some((sel) => selects(sel, l));
    });
    if (!ok) return false;
  }
  return true;
}
