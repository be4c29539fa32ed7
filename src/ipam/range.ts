// Address ranges with the reference host-local plugin's semantics: a range is a subnet with an
// optional start, end and gateway; a range set is a list of ranges of one family that share a
// reservation cursor (last_reserved_ip.<index of the set>). Pure: no I/O.
import {
  type IP, type Prefix, compareIP, formatIP, formatPrefix, ipEqual, nextIP, parseCIDR, parseIP,
  prefixContains, prefixLast, prefixesOverlap, prevIP, familyBits,
} from "../net/cidr.ts";

/** A range as written in the config (host-local's `ranges` entries). */
export interface RangeSpec {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

export interface Range {
  subnet: Prefix;
  start: IP;
  end: IP;
  gateway: IP;
}

export type RangeSet = Range[];

/** Thrown for a range that cannot be used; `field` names the config path that is wrong. */
export class RangeError extends Error {
  constructor(message: string, readonly field: string) {
    super(message);
    this.name = "RangeError";
  }
}

export function canonicalizeRange(spec: RangeSpec, field: string): Range {
  if (!spec || typeof spec !== "object") throw new RangeError(`${field} must be an object with a "subnet"`, field);
  const parsed = parseCIDR(spec.subnet);
  if (!parsed) throw new RangeError(`${field}.subnet ${JSON.stringify(spec.subnet)} is not a CIDR like 10.244.1.0/24`, `${field}.subnet`);
  const subnet = parsed.prefix;
  const hostBits = familyBits(subnet.ip.family) - subnet.bits;
  if (hostBits < 2) {
    throw new RangeError(`${field}.subnet ${spec.subnet} is too small to allocate from (need at least a /${familyBits(subnet.ip.family) - 2})`, `${field}.subnet`);
  }
  const inSubnet = (name: "rangeStart" | "rangeEnd" | "gateway"): IP | undefined => {
    const text = spec[name];
    if (text === undefined || text === "") return undefined;
    const ip = parseIP(text);
    if (!ip) throw new RangeError(`${field}.${name} ${JSON.stringify(text)} is not an IP address`, `${field}.${name}`);
    if (!prefixContains(subnet, ip)) throw new RangeError(`${field}.${name} ${text} is outside subnet ${formatPrefix(subnet)}`, `${field}.${name}`);
    return ip;
  };
  const network = subnet.ip;
  let last = prefixLast(subnet);
  if (subnet.ip.family === 4) last = prevIP(last); // no broadcast address in IPv4
  const start = inSubnet("rangeStart") ?? nextIP(network);
  const end = inSubnet("rangeEnd") ?? last;
  const gateway = inSubnet("gateway") ?? nextIP(network);
  if (compareIP(start, end) > 0) throw new RangeError(`${field}.rangeStart ${formatIP(start)} is after rangeEnd ${formatIP(end)}`, `${field}.rangeStart`);
  return { subnet, start, end, gateway };
}

export function canonicalizeRangeSet(specs: RangeSpec[], field: string): RangeSet {
  if (!Array.isArray(specs) || specs.length === 0) throw new RangeError(`${field} must be a non-empty list of ranges`, field);
  const set = specs.map((s, i) => canonicalizeRange(s, `${field}[${i}]`));
  const family = set[0]!.subnet.ip.family;
  for (let i = 0; i < set.length; i++) {
    if (set[i]!.subnet.ip.family !== family) throw new RangeError(`${field}[${i}] mixes IPv4 and IPv6 in one range set`, `${field}[${i}]`);
    for (let j = 0; j < i; j++) {
      if (rangesOverlap(set[i]!, set[j]!)) throw new RangeError(`${field}[${i}] overlaps ${field}[${j}]`, `${field}[${i}]`);
    }
  }
  return set;
}

function rangesOverlap(a: Range, b: Range): boolean {
  if (!prefixesOverlap(a.subnet, b.subnet)) return false;
  return compareIP(a.start, b.end) <= 0 && compareIP(b.start, a.end) <= 0;
}

export function rangeContains(r: Range, ip: IP): boolean {
  return prefixContains(r.subnet, ip) && compareIP(ip, r.start) >= 0 && compareIP(ip, r.end) <= 0;
}

export function rangeSetFind(set: RangeSet, ip: IP): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

export function rangeSetToString(set: RangeSet): string {
  return set.map((r) => `${formatIP(r.start)}-${formatIP(r.end)}`).join(",");
}

/** Number of assignable addresses (excluding each range's gateway when inside it). */
export function rangeSetCapacity(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set) {
    n += r.end.value - r.start.value + 1n;
    if (rangeContains(r, r.gateway)) n -= 1n;
  }
  return n;
}

export function isGateway(set: RangeSet, ip: IP): boolean {
  return set.some((r) => ipEqual(r.gateway, ip));
}
