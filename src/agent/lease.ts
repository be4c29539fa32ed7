// This node's subnet lease, kept: leased at bring-up (asking for the subnet the last subnet file
// named, as flannel does), renewed once half of its life is gone, and when it is found lost
// (expired and taken by another node, or removed) leased again: the same subnet when it is
// still free, another otherwise. Never two owners: a lost subnet is not renewed. What follows a
// new lease (the device's address, the subnet file, the conflist) or the lack of one (no
// conflist: no pod may get an address that could be another node's) is the agent's, by callback.
import type { Logger } from "pino";
import { type Lease, type LeaseRequest, type SubnetRegistry, LeaseLostError } from "../store/registry.ts";
import type { AgentMetrics } from "./metrics.ts";

export interface LeaseKeeperOptions {
  registry: SubnetRegistry;
  node: string;
  ttlMs: number;
  metrics: AgentMetrics;
  log: Logger;
  /** A lease taken again after a loss (`old` was this node's before): program it. */
  onRegained(lease: Lease, old: Lease): void;
  /** No subnet could be leased again: the node must stop giving out addresses. */
  onLost(reason: string): void;
}

export class LeaseKeeper {
  private current?: Lease;

  constructor(private readonly o: LeaseKeeperOptions) {}

  get lease(): Lease | undefined {
    return this.current;
  }

  /** The first lease, at bring-up. */
  async acquire(req: LeaseRequest, previousSubnet?: string): Promise<Lease> {
    this.current = await this.o.registry.acquireLease(req, this.o.ttlMs, previousSubnet);
    this.o.metrics.leaseExpiry.set(this.current.expiresAt / 1000);
    return this.current;
  }

  /** Renews once half of the lease's life is gone; false when it was lost and could not be leased again. */
  async renewIfDue(): Promise<boolean> {
    const l = this.current!;
    if (l.expiresAt - Date.now() >= this.o.ttlMs / 2) return true;
    try {
      this.current = await this.o.registry.renewLease(l, this.o.ttlMs);
      this.o.metrics.leaseExpiry.set(this.current.expiresAt / 1000);
      return true;
    } catch (e) {
      if (!(e instanceof LeaseLostError)) throw e;
      return this.regain(e.message);
    }
  }

  /** Whether the registry still lists this node's lease. */
  listedIn(leases: Lease[]): boolean {
    return leases.some((l) => l.node === this.o.node && l.subnet === this.current!.subnet);
  }

  /**
   * The lease is lost: lease a subnet again (the same one when it is still free) and hand it to
   * onRegained; or, when that fails, onLost with the reason. Returns whether there is a lease.
   */
  async regain(why: string): Promise<boolean> {
    const old = this.current!;
    this.o.metrics.leaseLosses.inc();
    this.o.log.warn({ subnet: old.subnet, why }, "lease lost; leasing a subnet again");
    try {
      const got = await this.o.registry.acquireLease({ node: this.o.node, publicIp: old.publicIp, ...(old.publicIpv6 ? { publicIpv6: old.publicIpv6 } : {}), backendType: old.backendType, backendData: old.backendData }, this.o.ttlMs, old.subnet);
      this.current = got;
      this.o.metrics.leaseExpiry.set(got.expiresAt / 1000);
      this.o.onRegained(got, old);
      if (got.subnet === old.subnet) this.o.log.warn({ subnet: got.subnet }, "lease taken again: same subnet");
      else this.o.log.error({ was: old.subnet, now: got.subnet }, "this node's subnet changed: new pods get the new one; pods started before keep addresses of the old one until they are re-created");
      return true;
    } catch (e) {
      this.o.onLost(`lease ${old.subnet} lost (${why}) and no subnet leased again: ${(e as Error).message}`);
      this.o.log.error({ subnet: old.subnet, err: (e as Error).message }, "no subnet: conflist removed until one is leased");
      return false;
    }
  }
}
