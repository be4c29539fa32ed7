// The embedded registry: a directory on the host, shared by every agent of a lab (or of a
// single machine). config.json holds the network config, leases/<subnet>.json one lease each,
// written by rename (atomic); allocation runs under flock(2) on `lock`, so many agents can
// lease at once without two getting one subnet. Watching is inotify on leases/ (fs.watch),
// with a slow poll as a safety net.
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { lockFile, writeAtomic } from "../kernel/files.ts";
import { type Lease, type LeaseRequest, type NetworkConfig, type SubnetRegistry, LeaseLostError, RegistryError, leaseKey, leaseRecord, mayRetake, parseRecord, pickFreeSubnet, resolveNetwork, ipv6LeaseFields } from "./registry.ts";
import { formatPrefix } from "../net/cidr.ts";

export class FileRegistry implements SubnetRegistry {
  readonly kind = "file";
  private readonly leasesDir: string;
  private watchers: FSWatcher[] = [];
  private timers: ReturnType<typeof setInterval>[] = [];

  constructor(readonly dir: string) {
    this.leasesDir = join(dir, "leases");
    mkdirSync(this.leasesDir, { recursive: true });
  }

  /** Writes the network config (the lab does this once, as flannel's kube-flannel-cfg does). */
  static init(dir: string, config: NetworkConfig): FileRegistry {
    resolveNetwork(config);
    const r = new FileRegistry(dir);
    writeAtomic(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
    return r;
  }

  async getNetworkConfig(): Promise<NetworkConfig> {
    let text: string;
    try {
      text = readFileSync(join(this.dir, "config.json"), "utf8");
    } catch {
      throw new RegistryError(`no network config in ${this.dir}/config.json`, "create it (gauze lab up writes it) with at least {\"Network\": \"10.244.0.0/16\"}");
    }
    try {
      return JSON.parse(text) as NetworkConfig;
    } catch (e) {
      throw new RegistryError(`network config ${this.dir}/config.json is not JSON: ${(e as Error).message}`, "fix the file");
    }
  }

  private readAll(): Lease[] {
    const out: Lease[] = [];
    for (const f of readdirSync(this.leasesDir)) {
      if (!f.endsWith(".json")) continue;
      const path = join(this.leasesDir, f);
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch {
        continue; // removed while we listed
      }
      const v = parseRecord(text);
      const subnet = f.slice(0, -".json".length).replace("-", "/");
      const data = typeof v === "object" ? v.backendData : undefined;
      out.push(typeof v === "string" ? leaseRecord(path, subnet, v) : {
        ...leaseRecord(path, subnet, { node: v.node, publicIp: v.publicIp, backendType: v.backendType, expiresAt: v.expiresAt, vtepMac: typeof data === "object" && data !== null ? (data as Record<string, unknown>).vtepMac : undefined, publicKey: typeof data === "object" && data !== null ? (data as Record<string, unknown>).publicKey : undefined, v6VtepMac: typeof data === "object" && data !== null ? (data as Record<string, unknown>).v6VtepMac : undefined, ipv6Subnet: v.ipv6Subnet, publicIpv6: v.publicIpv6 }),
        // The file's name is where the lease is; a subnet field that says otherwise is refused.
        ...(typeof v.subnet === "string" && v.subnet !== subnet ? { problem: `file ${f} holds a lease for ${v.subnet}` } : {}),
      });
    }
    return out;
  }

  async listLeases(): Promise<Lease[]> {
    const now = Date.now();
    return this.readAll().filter((l) => l.expiresAt > now);
  }

  async acquireLease(req: LeaseRequest, ttlMs: number, prefer?: string): Promise<Lease> {
    const net = resolveNetwork(await this.getNetworkConfig());
    const lock = lockFile(join(this.dir, "lock"));
    try {
      const now = Date.now();
      const all = this.readAll();
      for (const l of all) if (l.expiresAt <= now) rmSync(this.path(l.subnet), { force: true });
      const live = all.filter((l) => l.expiresAt > now);
      const mine = live.find((l) => l.node === req.node && !l.problem);
      const retake = !mine && mayRetake(net, prefer, all.find((l) => l.subnet === prefer), now) ? prefer : undefined;
      const subnet = mine?.subnet ?? retake ?? (() => {
        const free = pickFreeSubnet(net, live.map((l) => l.subnet));
        if (!free) throw new RegistryError(`no free /${net.subnetLen} left in ${formatPrefix(net.network)} (${live.length} leased)`, "remove nodes, or widen Network / SubnetMin-SubnetMax");
        return formatPrefix(free);
      })();
      const lease: Lease = { subnet, node: req.node, publicIp: req.publicIp, backendType: req.backendType, backendData: req.backendData, expiresAt: now + ttlMs, ...ipv6LeaseFields(net, subnet, req) };
      writeAtomic(this.path(subnet), JSON.stringify(lease) + "\n");
      return lease;
    } finally {
      lock.release();
    }
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<Lease> {
    const renewed = { ...lease, expiresAt: Date.now() + ttlMs };
    // Under the allocation lock, and only while the file still names this node.
    const lock = lockFile(join(this.dir, "lock"));
    try {
      let current: unknown;
      try {
        current = JSON.parse(readFileSync(this.path(lease.subnet), "utf8"));
      } catch {
        throw new LeaseLostError(lease.subnet, "its file is gone");
      }
      const holder = (current as { node?: unknown }).node;
      if (holder !== lease.node) throw new LeaseLostError(lease.subnet, `it now names node ${String(holder)}`);
      writeAtomic(this.path(lease.subnet), JSON.stringify(renewed) + "\n");
    } finally {
      lock.release();
    }
    return renewed;
  }

  async releaseLease(subnet: string): Promise<void> {
    rmSync(this.path(subnet), { force: true });
  }

  watch(onChange: () => void): () => void {
    const w = watch(this.leasesDir, () => onChange());
    // inotify can miss events on some file systems: every 5 s compare a listing (names and
    // mtimes) and report a change only if there is one (a full resync has its own timer).
    let last = this.signature();
    const t = setInterval(() => {
      const now = this.signature();
      if (now !== last) {
        last = now;
        onChange();
      }
    }, 5000);
    this.watchers.push(w);
    this.timers.push(t);
    return () => {
      w.close();
      clearInterval(t);
    };
  }

  private signature(): string {
    try {
      return readdirSync(this.leasesDir).filter((f) => f.endsWith(".json")).sort()
        .map((f) => `${f}@${statSync(join(this.leasesDir, f), { throwIfNoEntry: false })?.mtimeMs ?? 0}`).join(",");
    } catch {
      return "";
    }
  }

  close(): void {
    for (const w of this.watchers) w.close();
    for (const t of this.timers) clearInterval(t);
  }

  private path(subnet: string): string {
    return join(this.leasesDir, `${leaseKey(subnet)}.json`);
  }
}

