// Chooses addresses the way the reference host-local plugin does, so that both can share one
// directory: round robin starting after last_reserved_ip.<set>, skipping gateways, across the
// ranges of a set, wrapping once. Storage is behind IpamStore; the caller holds the lock.
import { type IP, formatIP, ipEqual, nextIP } from "../net/cidr.ts";
import { type RangeSet, rangeContains, rangeSetFind, rangeSetToString } from "./range.ts";
import type { IpamStore } from "./store.ts";

export interface Allocation {
  ip: IP;
  rangeIndex: number;
}

export class AllocationError extends Error {
  constructor(message: string, readonly reason: "exhausted" | "duplicate" | "unavailable" | "invalid") {
    super(message);
    this.name = "AllocationError";
  }
}

/** Iterates candidate addresses of a range set in host-local's order. */
export function* candidates(set: RangeSet, last: IP | undefined): Generator<{ ip: IP; rangeIndex: number }> {
  let rangeIdx = 0;
  let cur: IP | undefined;
  const startIdx = last ? set.findIndex((r) => rangeContains(r, last)) : -1;
  if (startIdx >= 0 && last) {
    rangeIdx = startIdx;
    cur = last; // the first candidate is last + 1
  }
  // The address at which a full lap ends: the first one we would hand out.
  let firstSeen: IP | undefined;
  for (;;) {
    let r = set[rangeIdx]!;
    if (cur === undefined) {
      cur = r.start;
    } else if (ipEqual(cur, r.end)) {
      rangeIdx = (rangeIdx + 1) % set.length;
      r = set[rangeIdx]!;
      cur = r.start;
    } else {
      cur = nextIP(cur);
    }
    if (firstSeen === undefined) firstSeen = cur;
    else if (ipEqual(cur, firstSeen)) return;
    if (ipEqual(cur, r.gateway)) continue;
    yield { ip: cur, rangeIndex: rangeIdx };
  }
}

export function allocate(
  store: IpamStore, set: RangeSet, rangeSetId: string,
  containerId: string, ifname: string, requested?: IP,
): Allocation {
  // The spec forbids two ADDs for one attachment without a DEL in between, with or without a
  // requested address: a second reservation would be the first one's leak, and a second ADD
  // taking over the attachment's veth would cut off the live pod.
  for (const held of store.getByAttachment(containerId, ifname)) {
    if (rangeSetFind(set, held)) {
      throw new AllocationError(`${formatIP(held)} is already allocated to ${containerId}/${ifname}; DEL it before a new ADD`, "duplicate");
    }
  }
  if (requested) {
    const r = rangeSetFind(set, requested);
    if (!r) throw new AllocationError(`requested IP ${formatIP(requested)} is not in range set ${rangeSetToString(set)}`, "invalid");
    if (ipEqual(requested, r.gateway)) throw new AllocationError(`requested IP ${formatIP(requested)} is the subnet's gateway`, "invalid");
    if (!store.reserve(requested, containerId, ifname, rangeSetId)) {
      throw new AllocationError(`requested IP ${formatIP(requested)} is already reserved by another container`, "unavailable");
    }
    return { ip: requested, rangeIndex: set.indexOf(r) };
  }
  for (const c of candidates(set, store.lastReserved(rangeSetId))) {
    if (store.reserve(c.ip, containerId, ifname, rangeSetId)) return c;
  }
  throw new AllocationError(`no free address in range set ${rangeSetToString(set)}`, "exhausted");
}

/** An IpamStore in memory, for unit tests of allocation logic. */
export class MemoryStore implements IpamStore {
  private readonly held = new Map<string, { ip: IP; containerId: string; ifname: string }>();
  private readonly last = new Map<string, IP>();
  reserve(ip: IP, containerId: string, ifname: string, rangeSetId: string): boolean {
    const k = formatIP(ip);
    if (this.held.has(k)) return false;
    this.held.set(k, { ip, containerId, ifname });
    this.last.set(rangeSetId, ip);
    return true;
  }
  lastReserved(rangeSetId: string): IP | undefined {
    return this.last.get(rangeSetId);
  }
  getByAttachment(containerId: string, ifname: string): IP[] {
    return [...this.held.values()].filter((h) => h.containerId === containerId && h.ifname === ifname).map((h) => h.ip);
  }
  releaseByAttachment(containerId: string, ifname: string): IP[] {
    const out = this.getByAttachment(containerId, ifname);
    for (const ip of out) this.held.delete(formatIP(ip));
    return out;
  }
  release(ip: IP): void {
    this.held.delete(formatIP(ip));
  }
  list() {
    return [...this.held.values()];
  }
}
