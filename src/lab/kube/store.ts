// The lab API's objects: one table per resource, one resourceVersion counter for the whole server
// (as etcd's revision), the last HISTORY changes kept so that a watch can resume from a
// resourceVersion (older: 410 Gone), and the open watches, each told the changes it selects. A
// watch with a selector sees an object leave it as DELETED and enter it as ADDED, as there.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  generation?: number;
  generateName?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  [k: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface Change { rv: number; resource: string; type: EventType; object: KubeObject; old?: KubeObject }

export interface Watch {
  resource: string;
  namespace?: string;
  selects(o: KubeObject): boolean;
  send(type: EventType, o: KubeObject): void;
}

/** Changes older than this many are forgotten: a watch resuming from before them gets 410 Gone. */
export const HISTORY = 10_000;

export const objectKey = (namespace: string | undefined, name: string) => (namespace ? `${namespace}/${name}` : name);

export class ObjectStore {
  private readonly tables = new Map<string, Map<string, KubeObject>>();
  private readonly history: Change[] = [];
  readonly watches = new Set<Watch>();
  /** Called after every change with the resource that changed (the lab persists it). */
  onChange?: (resource: string) => void;

  constructor(public rv: number) {}

  table(resource: string): Map<string, KubeObject> {
    let t = this.tables.get(resource);
    if (!t) this.tables.set(resource, (t = new Map()));
    return t;
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.table(resource).get(objectKey(namespace, name));
  }

  list(resource: string, namespace?: string): KubeObject[] {
    const all = [...this.table(resource).values()];
    return namespace ? all.filter((o) => o.metadata.namespace === namespace) : all;
  }

  /** Stores an object as it is, without an event (seeding a fresh server, or state read back). */
  seed(resource: string, o: KubeObject): void {
    this.table(resource).set(objectKey(o.metadata.namespace, o.metadata.name), o);
  }

  /** Creates or replaces an object: it gets the next resourceVersion, and watches hear of it. */
  put(resource: string, o: KubeObject): KubeObject {
    const k = objectKey(o.metadata.namespace, o.metadata.name);
    const old = this.table(resource).get(k);
    o.metadata.resourceVersion = String(++this.rv);
    this.table(resource).set(k, o);
    this.record({ rv: this.rv, resource, type: old ? "MODIFIED" : "ADDED", object: snapshot(o), ...(old ? { old: snapshot(old) } : {}) });
    return o;
  }

  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const k = objectKey(namespace, name);
    const o = this.table(resource).get(k);
    if (!o) return undefined;
    this.table(resource).delete(k);
    o.metadata.resourceVersion = String(++this.rv);
    this.record({ rv: this.rv, resource, type: "DELETED", object: snapshot(o) });
    return o;
  }

  private record(c: Change): void {
    this.history.push(c);
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    for (const w of this.watches) if (w.resource === c.resource) deliver(w, c);
    this.onChange?.(c.resource);
  }

  /** Replays to `w` what it missed since `from`; false when that is older than the kept history. */
  replay(w: Watch, from: number): boolean {
    if (this.history.length && from < this.history[0]!.rv - 1) return false;
    for (const c of this.history) if (c.rv > from && c.resource === w.resource) deliver(w, c);
    return true;
  }

  /** The oldest resourceVersion a watch may still resume from. */
  get oldest(): number {
    return this.history.length ? this.history[0]!.rv : this.rv;
  }
}

function snapshot(o: KubeObject): KubeObject {
  return JSON.parse(JSON.stringify(o)) as KubeObject;
}

/** An event as the watch sees it: entering its selection is ADDED, leaving it DELETED. */
function deliver(w: Watch, c: Change): void {
  const sel = (o: KubeObject | undefined) => !!o && (!w.namespace || o.metadata.namespace === w.namespace) && w.selects(o);
  const now = sel(c.object), before = sel(c.old);
  if (c.type === "DELETED") { if (now) w.send("DELETED", c.object); return; }
  if (now && before) w.send("MODIFIED", c.object);
  else if (now) w.send("ADDED", c.object);
  else if (before) w.send("DELETED", c.object);
}
