// What the allocator needs from storage. The disk store (host-local's on-disk format) is the
// real one; tests may use the in-memory one to exercise allocation logic without a disk.
import type { IP } from "../net/cidr.ts";

export interface Reservation {
  ip: IP;
  containerId: string;
  ifname: string;
}

export interface IpamStore {
  /** Reserves `ip` for the attachment; false when someone already holds it. */
  reserve(ip: IP, containerId: string, ifname: string, rangeSetId: string): boolean;
  lastReserved(rangeSetId: string): IP | undefined;
  /** Addresses held by this attachment. */
  getByAttachment(containerId: string, ifname: string): IP[];
  /** Releases every address of the attachment; returns what was released. */
  releaseByAttachment(containerId: string, ifname: string): IP[];
  release(ip: IP): void;
  list(): Reservation[];
}
