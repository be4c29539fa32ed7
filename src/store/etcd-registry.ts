// The etcd v3 registry (flannel's layout under our prefix):
//   <prefix>/config                  the network config, flannel's net-conf.json fields
//   <prefix>/subnets/<ip>-<len>      one lease: {"PublicIP", "BackendType", "BackendData": {"VtepMAC"}, "Node", "Expires"}
// Each subnet key is attached to an etcd lease with the TTL, so a node that disappears frees its
// subnet by itself. Allocation is a transaction "create only if absent"; a lost race retries with
// a fresh listing. Watching resumes from the last revision after a disconnect (the etcd3 client
// does that); a compacted revision falls back to a full resync.
import { readFileSync } from "node:fs";
import { Etcd3, type IOptions, type Lease as EtcdLease, type Watcher } from "etcd3";
import { ExponentialBackoff } from "cockatiel";
import { formatPrefix } from "../net/cidr.ts";
import { describeEtcdFailure } from "./etcd-errors.ts";
import { type Lease, type LeaseRequest, type NetworkConfig, type SubnetRegistry, LeaseLostError, RegistryError, leaseKey, leaseRecord, mayRetake, parseRecord, pickFreeSubnet, resolveNetwork, ipv6LeaseFields } from "./registry.ts";

export const DEFAULT_ETCD_PREFIX = "/gauze.dev/network";

export interface EtcdOptions {
  endpoints: string[];
  prefix: string;
  /** A CA to trust instead of the system's (a self-signed etcd). */
  cafile?: string;
  /** Client certificate and key (mutual TLS); they work with the system's CAs too. */
  certfile?: string;
  keyfile?: string;
  /** etcd user and a file holding its password (not a flag: flags show in `ps`). */
  username?: string;
  passwordFile?: string;
  /** Per-call deadline: a registry that does not answer must not stall the agent. */
  callTimeoutMs?: number;
}

interface StoredLease {
  PublicIP: string;
  BackendType: string;
  BackendData: { VtepMAC?: string; PublicKey?: string };
  Node: string;
  Expires: number;
  /** Dual-stack (flannel's names where flannel has them). */
  IPv6Subnet?: string;
  PublicIPv6?: string;
  BackendV6Data?: { VtepMAC?: string };
}

/** An etcd key and value as a lease (flannel's field names); a bad value becomes a lease with a problem. */
function toLease(key: string, subnet: string, text: string): Lease {
  const v = parseRecord(text);
  if (typeof v === "string") return leaseRecord(key, subnet, v);
  const data = v.BackendData;
  return leaseRecord(key, subnet, {
    node: v.Node, publicIp: v.PublicIP, backendType: v.BackendType, expiresAt: v.Expires,
    vtepMac: typeof data === "object" && data !== null ? (data as Record<string, unknown>).VtepMAC : undefined,
    publicKey: typeof data === "object" && data !== null ? (data as Record<string, unknown>).PublicKey : undefined,
    ipv6Subnet: v.IPv6Subnet, publicIpv6: v.PublicIPv6,
    v6VtepMac: typeof v.BackendV6Data === "object" && v.BackendV6Data !== null ? (v.BackendV6Data as Record<string, unknown>).VtepMAC : undefined,
  });
}

const toStored = (l: Lease): StoredLease => ({
  PublicIP: l.publicIp, BackendType: l.backendType, BackendData: { ...(l.backendData.vtepMac ? { VtepMAC: l.backendData.vtepMac } : {}), ...(l.backendData.publicKey ? { PublicKey: l.backendData.publicKey } : {}) }, Node: l.node, Expires: l.expiresAt,
  ...(l.ipv6Subnet ? { IPv6Subnet: l.ipv6Subnet } : {}), ...(l.publicIpv6 ? { PublicIPv6: l.publicIpv6 } : {}), ...(l.backendData.v6VtepMac ? { BackendV6Data: { VtepMAC: l.backendData.v6VtepMac } } : {}),
});

export class EtcdRegistry implements SubnetRegistry {
  readonly kind = "etcd";
  readonly client: Etcd3;
  private readonly leases = new Map<string, EtcdLease>();
  private watchers: Watcher[] = [];
  /** Requests sent, for the scale benchmark's "etcd request count". */
  requests = 0;

  constructor(readonly o: EtcdOptions) {
    const opts: IOptions = {
      hosts: o.endpoints,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + (o.callTimeoutMs ?? 3000) }),
      // Reconnect watches within 2 s of etcd coming back (the default waits up to 30 s).
      // (etcd3's typings name an older cockatiel's backoff type; at runtime it calls .next() as this one has.)
      faultHandling: { watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as NonNullable<IOptions["faultHandling"]>["watchBackoff"] },
    };
    if (!!o.certfile !== !!o.keyfile) throw new RegistryError("etcd: a client certificate needs its key and a key its certificate", "give both --etcd-certfile and --etcd-keyfile");
    const read = (file: string, what: string) => {
      try {
        return readFileSync(file);
      } catch (e) {
        throw new RegistryError(`etcd: cannot read the ${what} ${file}: ${(e as Error).message}`, "check the path and its permissions");
      }
    };
    if (o.cafile || o.certfile) {
      // Without a CA file, grpc checks etcd's certificate against the system's CAs.
      opts.credentials = {
        rootCertificate: (o.cafile ? read(o.cafile, "CA file") : undefined) as Buffer,
        ...(o.certfile ? { certChain: read(o.certfile, "client certificate") } : {}),
        ...(o.keyfile ? { privateKey: read(o.keyfile, "client key") } : {}),
      };
    }
    if (o.username) {
      if (!o.passwordFile) throw new RegistryError("etcd: a user needs a password", "give --etcd-password-file (a file holding the password)");
      opts.auth = { username: o.username, password: read(o.passwordFile, "password file").toString("utf8").replace(/\r?\n$/, "") };
    }
    const plain = o.endpoints.filter((e) => !/^https:/i.test(e));
    if (plain.length && !opts.credentials) {
      this.warnings.push(`etcd ${plain.join(",")} without TLS: leases travel in the clear${o.username ? ", and so does the password" : ""}; use https:// endpoints`);
    }
    this.client = new Etcd3(opts);
  }

  /** Things the agent should log once (plain-text etcd). */
  readonly warnings: string[] = [];

  private key(subnet: string): string {
    return `${this.o.prefix}/subnets/${leaseKey(subnet)}`;
  }

  /** A client failure in gauze's words (etcd-errors.ts): what is unreachable and what goes on meanwhile. */
  private fail(e: unknown, what: string): never {
    if (e instanceof RegistryError) throw e;
    const f = describeEtcdFailure(e, what, this.o.endpoints);
    throw new RegistryError(f.message, f.fix);
  }

  async setNetworkConfig(c: NetworkConfig): Promise<void> {
    resolveNetwork(c);
    this.requests++;
    await this.client.put(`${this.o.prefix}/config`).value(JSON.stringify(c)).catch((e) => this.fail(e, "writing the network config"));
  }

  async getNetworkConfig(): Promise<NetworkConfig> {
    this.requests++;
    const text = await this.client.get(`${this.o.prefix}/config`).string().catch((e) => this.fail(e, "reading the network config"));
    if (text === null) {
      throw new RegistryError(`no network config at ${this.o.prefix}/config`, `put one there, e.g. {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}`);
    }
    try {
      return JSON.parse(text) as NetworkConfig;
    } catch (e) {
      throw new RegistryError(`network config at ${this.o.prefix}/config is not JSON: ${(e as Error).message}`, "fix the value");
    }
  }

  private async listAll(): Promise<Lease[]> {
    return (await this.listAtRevision()).leases;
  }

  /** The last full listing and when it was made: the watch starts from it rather than listing again. */
  private lastListing?: { leases: Lease[]; revision: string; at: number };

  private async listAtRevision(): Promise<{ leases: Lease[]; revision: string }> {
    this.requests++;
    const res = await this.client.getAll().prefix(`${this.o.prefix}/subnets/`).exec().catch((e) => this.fail(e, "listing leases"));
    const leases: Lease[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      leases.push(toLease(key, this.subnetOf(key), kv.value.toString()));
    }
    this.lastListing = { leases, revision: res.header.revision, at: Date.now() };
    return { leases, revision: res.header.revision };
  }

  async listLeases(): Promise<Lease[]> {
    // While the watch is connected, its events keep a cache exact (an informer): no re-list of a
    // thousand keys per change. Otherwise ask etcd (and fail, and say so, when it is down).
    if (this.cache) return [...this.cache.values()];
    return this.listAll();
  }

  private cache: Map<string, Lease> | undefined;

  private subnetOf(key: string): string {
    return key.slice(key.lastIndexOf("/") + 1).replace("-", "/");
  }

  private async grant(ttlMs: number): Promise<EtcdLease> {
    const l = this.client.lease(Math.max(1, Math.ceil(ttlMs / 1000)), { autoKeepAlive: false });
    this.requests++;
    await l.grant().catch((e) => this.fail(e, "granting a lease"));
    return l;
  }

  async acquireLease(req: LeaseRequest, ttlMs: number, prefer?: string): Promise<Lease> {
    const net = resolveNetwork(await this.getNetworkConfig());
    for (let attempt = 0; attempt < 30; attempt++) {
      const live = await this.listAll();
      const mine = live.find((l) => l.node === req.node && !l.problem);
      const held = prefer !== undefined ? live.find((l) => l.subnet === prefer) : undefined;
      const retake = !mine && mayRetake(net, prefer, held) ? prefer : undefined;
      const subnet = mine?.subnet ?? retake ?? (() => {
        const free = pickFreeSubnet(net, live.map((l) => l.subnet), attempt === 0 ? 1 : 16);
        if (!free) throw new RegistryError(`no free /${net.subnetLen} left in ${formatPrefix(net.network)} (${live.length} leased)`, "remove nodes, or widen Network / SubnetMin-SubnetMax");
        return formatPrefix(free);
      })();
      const lease: Lease = { subnet, node: req.node, publicIp: req.publicIp, backendType: req.backendType, backendData: req.backendData, expiresAt: Date.now() + ttlMs, ...ipv6LeaseFields(net, subnet, req) };
      const etcdLease = await this.grant(ttlMs);
      const key = this.key(subnet);
      this.requests++;
      // Ours already (a restart): overwrite it. Taking back a subnet whose record is garbled:
      // only while the record is still that garbage. Free: create it only if nobody did meanwhile.
      const value = JSON.stringify(toStored(lease));
      const garbled = !mine && retake && held ? await this.client.get(key).string().catch((e) => this.fail(e, "reading a lease")) : null;
      const txn = mine
        ? this.client.if(key, "Value", "==", JSON.stringify(toStored(mine))).then(etcdLease.put(key).value(value))
        : garbled !== null
          ? this.client.if(key, "Value", "==", garbled).then(etcdLease.put(key).value(value))
          : this.client.if(key, "Create", "==", 0).then(etcdLease.put(key).value(value));
      const r = await txn.commit().catch((e) => this.fail(e, "leasing a subnet"));
      if (r.succeeded) {
        this.leases.set(subnet, etcdLease);
        // The listing a watch may start from predates this put: include it (the watch replays
        // the put anyway), so nobody reading the cache meanwhile thinks this lease is gone.
        if (this.lastListing) this.lastListing.leases = [...this.lastListing.leases.filter((l) => l.subnet !== subnet), lease];
        this.cache?.set(subnet, lease);
        return lease;
      }
      await etcdLease.revoke().catch(() => undefined);
    }
    throw new RegistryError("could not lease a subnet after 30 attempts: other nodes keep taking the same ones", "try again");
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<Lease> {
    const renewed = { ...lease, expiresAt: Date.now() + ttlMs };
    let l = this.leases.get(lease.subnet);
    try {
      if (!l) throw new Error("no etcd lease held");
      this.requests++;
      await l.keepaliveOnce();
    } catch {
      // Expired or lost (e.g. after a long etcd outage): the key goes on a new lease, if it is still ours.
      l = await this.grant(ttlMs);
      this.leases.set(lease.subnet, l);
    }
    // Only while the key still holds what this node last wrote: after an expiry another node
    // may have taken the subnet, and a plain put would give one subnet two owners.
    const key = this.key(lease.subnet);
    this.requests++;
    const r = await this.client.if(key, "Value", "==", JSON.stringify(toStored(lease))).then(l.put(key).value(JSON.stringify(toStored(renewed))))
      .commit().catch((e) => this.fail(e, "renewing the lease"));
    if (!r.succeeded) {
      await l.revoke().catch(() => undefined);
      this.leases.delete(lease.subnet);
      const now = await this.client.get(key).string().catch(() => null);
      let owner = "nobody";
      if (now !== null) {
        const v = parseRecord(now);
        owner = typeof v === "object" && typeof v.Node === "string" ? `node ${v.Node}` : "a record that is not a lease";
      }
      throw new LeaseLostError(lease.subnet, `${key} now holds ${owner}`);
    }
    return renewed;
  }

  async releaseLease(subnet: string): Promise<void> {
    this.requests++;
    await this.client.delete().key(this.key(subnet)).catch((e) => this.fail(e, "releasing the lease"));
    await this.leases.get(subnet)?.revoke().catch(() => undefined);
    this.leases.delete(subnet);
  }

  watch(onChange: () => void): () => void {
    return this.watchFrom(undefined, onChange);
  }

  /** watch() from a given revision (tests use it to start from a compacted one). */
  watchFrom(fromRev: string | undefined, onChange: () => void): () => void {
    let stopped = false;
    let current: Watcher | undefined;
    const start = async (rev?: string) => {
      let from = rev;
      let seed: Map<string, Lease> | undefined;
      if (!from) {
        // List (or take the listing acquireLease just made), then watch from the next revision:
        // the cache misses nothing in between, and a joining node lists a thousand leases once.
        try {
          const recent = this.lastListing && Date.now() - this.lastListing.at < 2000 ? this.lastListing : undefined;
          const l = recent ?? await this.listAtRevision();
          seed = new Map(l.leases.map((x) => [x.subnet, x]));
          from = String(BigInt(l.revision) + 1n);
          // Trusted from now: whatever changed since that revision arrives as watch events.
          this.cache = seed;
        } catch {
          if (!stopped) setTimeout(() => void start(), 1000);
          return;
        }
      }
      this.requests++;
      this.client.watch().prefix(`${this.o.prefix}/subnets/`).startRevision(from).create().then((w) => {
        if (stopped) { void w.cancel(); return; }
        current = w;
        this.watchers.push(w);
        if (seed) this.cache = seed;
        w.on("put", (kv) => {
          const key = kv.key.toString();
          this.cache?.set(this.subnetOf(key), toLease(key, this.subnetOf(key), kv.value.toString()));
          onChange();
        });
        w.on("delete", (kv) => { this.cache?.delete(this.subnetOf(kv.key.toString())); onChange(); });
        // Gone: stop trusting the cache (listings go to etcd, and fail while it is down).
        w.on("disconnected", () => { this.cache = undefined; onChange(); });
        // Back (resumed from the last revision): rebuild the cache from a fresh listing.
        w.on("connected", () => {
          if (this.cache) return;
          this.listAtRevision().then((l) => { this.cache = new Map(l.leases.map((x) => [x.subnet, x])); onChange(); }, () => onChange());
        });
        w.on("error", () => {
          // e.g. the revision to resume from was compacted: resync in full and watch from now.
          this.cache = undefined;
          onChange();
          void w.cancel().catch(() => undefined);
          if (!stopped) setTimeout(() => void start(), 200);
        });
      }, () => { this.cache = undefined; if (!stopped) setTimeout(() => void start(rev), 1000); });
    };
    void start(fromRev);
    return () => {
      stopped = true;
      this.cache = undefined;
      void current?.cancel().catch(() => undefined);
    };
  }

  close(): void {
    for (const w of this.watchers) void w.cancel().catch(() => undefined);
    this.client.close();
  }
}
