// A backend turns leases into kernel state on one node. flannel's seam: backends never know
// which registry the leases came from; they register by name.
import type { Lease } from "../store/registry.ts";

export interface NodeLink {
  /** The node's underlay interface (eth0) and its IPv4 address and MTU. */
  iface: string;
  ip: string;
  mtu: number;
}

export interface ReconcileStats {
  peers: number;
  added: number;
  removed: number;
  /** Processes spawned for this pass (reads and writes). */
  spawns: number;
  /** Time spent reading the kernel's current state. */
  readMs?: number;
}

export interface Backend {
  readonly type: string;
  /** Creates or adopts the device ("exists and compatible" is kept as is). */
  setup(): { backendData: Lease["backendData"]; podMtu: number };
  /** Once the lease is known: this node's own addressing on the device. */
  activate(lease: Lease): void;
  /** Level-triggered: makes the kernel match these peers, touching only what differs. */
  reconcile(peers: Lease[]): ReconcileStats;
  /** Removes everything the backend made (agent --uninstall). */
  uninstall(): void;
  /** Name of the device pods' traffic leaves through (for doctor and status). */
  readonly device: string;
}

export interface BackendOptions {
  link: NodeLink;
  network: string;
  vni: number;
  port: number;
}

export type BackendFactory = (o: BackendOptions) => Backend;

const factories = new Map<string, BackendFactory>();

export function registerBackend(type: string, f: BackendFactory): void {
  factories.set(type, f);
}

export function createBackend(type: string, o: BackendOptions): Backend {
  const f = factories.get(type);
  if (!f) throw new Error(`unknown backend ${JSON.stringify(type)}: gauze has ${[...factories.keys()].join(", ")}`);
  return f(o);
}
