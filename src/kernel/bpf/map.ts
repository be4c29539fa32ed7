// A kernel map by fd: created from a spec, adopted from a pin or an id, and read and written
// through codecs (one small codec per key or value struct, encoding into the bytes the program
// sees with a DataView). Per-CPU maps hold one value per possible CPU (the count the kernel
// uses, from /sys/devices/system/cpu/possible), each padded to 8 bytes as the kernel lays them out.
import { readFileSync } from "node:fs";
import { type MapCreate, closeFd, fdById, infoName, mapCreate, mapDelete, mapLookup, mapNextKey, mapUpdate, objGet, objInfo, objPin } from "./sys.ts";
import { INFO, MAP_TYPE, UPDATE, mapTypeName } from "./uapi.ts";

export interface Codec<T> {
  size: number;
  encode(value: T, v: DataView, off: number): void;
  decode(v: DataView, off: number): T;
}

export const u8: Codec<number> = { size: 1, encode: (x, v, o) => v.setUint8(o, x), decode: (v, o) => v.getUint8(o) };
export const u16: Codec<number> = { size: 2, encode: (x, v, o) => v.setUint16(o, x, true), decode: (v, o) => v.getUint16(o, true) };
export const u32: Codec<number> = { size: 4, encode: (x, v, o) => v.setUint32(o, x >>> 0, true), decode: (v, o) => v.getUint32(o, true) };
/** A u64 as a number: exact up to 2^53 (counters of packets and bytes stay well below). */
export const u64: Codec<number> = { size: 8, encode: (x, v, o) => v.setBigUint64(o, BigInt(x), true), decode: (v, o) => Number(v.getBigUint64(o, true)) };
export const u64n: Codec<bigint> = { size: 8, encode: (x, v, o) => v.setBigUint64(o, x, true), decode: (v, o) => v.getBigUint64(o, true) };

/** Raw bytes of a fixed size (a copy on decode). */
export function bytes(size: number): Codec<Uint8Array> {
  return {
    size,
    encode: (x, v, o) => new Uint8Array(v.buffer, v.byteOffset + o, size).set(x.subarray(0, size)),
    decode: (v, o) => new Uint8Array(v.buffer.slice(v.byteOffset + o, v.byteOffset + o + size)),
  };
}

/** A value encoded into a fresh buffer. */
export function encode<T>(c: Codec<T>, x: T): Uint8Array {
  const b = new Uint8Array(c.size);
  c.encode(x, new DataView(b.buffer), 0);
  return b;
}

export function decode<T>(c: Codec<T>, b: Uint8Array, off = 0): T {
  return c.decode(new DataView(b.buffer, b.byteOffset, b.byteLength), off);
}

/** Parses "0-3,5,7-8" (the kernel's CPU list format): how many CPUs it names. */
export function parseCpuList(text: string): number {
  let n = 0;
  for (const part of text.trim().split(",")) {
    if (!part) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`CPU list ${JSON.stringify(text)}: cannot read ${JSON.stringify(part)}`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new Error(`CPU list ${JSON.stringify(text)}: ${part} runs backwards`);
    n += b - a + 1;
  }
  return n;
}

let cpus: number | undefined;
/** The possible CPUs: per-CPU maps have one value for each. */
export function possibleCpus(): number {
  return (cpus ??= parseCpuList(readFileSync("/sys/devices/system/cpu/possible", "utf8")));
}

export interface MapInfo {
  id: number;
  type: number;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
}

export interface MapShape {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

const PER_CPU = new Set<number>([MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.PERCPU_HASH, MAP_TYPE.LRU_PERCPU_HASH]);

/** A map's fd and shape; raw byte operations. Typed views come from typed() and perCpu(). */
export class BpfMap {
  private closed = false;

  constructor(readonly fd: number, readonly shape: MapShape) {}

  static create(o: MapCreate): BpfMap {
    const fd = mapCreate(o);
    return new BpfMap(fd, { name: o.name, type: o.type, keySize: o.keySize, valueSize: o.valueSize, maxEntries: o.maxEntries, flags: o.flags ?? 0 });
  }

  /** Adopts an fd (closed with this map), its shape read from the kernel. */
  static fromFd(fd: number, name?: string): BpfMap {
    const i = mapInfo(fd, name ?? `fd ${fd}`);
    return new BpfMap(fd, { name: name ?? i.name, type: i.type, keySize: i.keySize, valueSize: i.valueSize, maxEntries: i.maxEntries, flags: i.flags });
  }

  /** The map pinned at `path`, or undefined when nothing is pinned there. */
  static fromPin(path: string, name?: string): BpfMap | undefined {
    const fd = objGet(path);
    if (fd === undefined) return undefined;
    try {
      return BpfMap.fromFd(fd, name);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  static fromId(id: number): BpfMap | undefined {
    const fd = fdById("MAP", id);
    return fd === undefined ? undefined : BpfMap.fromFd(fd);
  }

  get name(): string {
    return this.shape.name;
  }

  get perCpuValues(): boolean {
    return PER_CPU.has(this.shape.type);
  }

  private get what(): string {
    return `map ${this.shape.name} (${mapTypeName(this.shape.type)})`;
  }

  /** The kernel's value size for this map: per-CPU maps take one padded value per possible CPU. */
  get valueBytes(): number {
    return this.perCpuValues ? ((this.shape.valueSize + 7) & ~7) * possibleCpus() : this.shape.valueSize;
  }

  lookupRaw(key: Uint8Array): Uint8Array | undefined {
    const value = new Uint8Array(this.valueBytes);
    return mapLookup(this.fd, key, value, this.what) ? value : undefined;
  }

  updateRaw(key: Uint8Array, value: Uint8Array, flags: number = UPDATE.ANY): void {
    if (value.length !== this.valueBytes) throw new RangeError(`${this.what}: a value of ${value.length} bytes, the map takes ${this.valueBytes}`);
    mapUpdate(this.fd, key, value, flags, this.what);
  }

  deleteRaw(key: Uint8Array): boolean {
    return mapDelete(this.fd, key, this.what);
  }

  /** Every key, in the kernel's order (a map changing meanwhile may show a key twice or miss one). */
  *keysRaw(): Generator<Uint8Array> {
    let prev: Uint8Array | undefined;
    // Bounded: a hash map rehashing under us must not loop forever.
    for (let i = 0; i <= this.shape.maxEntries * 2; i++) {
      const next = new Uint8Array(this.shape.keySize);
      if (!mapNextKey(this.fd, prev, next, this.what)) return;
      yield next;
      prev = next;
    }
  }

  typed<K, V>(key: Codec<K>, value: Codec<V>): TypedMap<K, V> {
    this.checkSizes(key, value);
    return new TypedMap(this, key, value);
  }

  perCpu<K, V>(key: Codec<K>, value: Codec<V>): PerCpuMap<K, V> {
    if (!this.perCpuValues) throw new TypeError(`${this.what} is not a per-CPU map`);
    this.checkSizes(key, value);
    return new PerCpuMap(this, key, value);
  }

  private checkSizes(key: Codec<unknown>, value: Codec<unknown>): void {
    if (key.size !== this.shape.keySize) throw new TypeError(`${this.what}: key codec of ${key.size} bytes, the map's keys are ${this.shape.keySize}`);
    if (value.size !== this.shape.valueSize) throw new TypeError(`${this.what}: value codec of ${value.size} bytes, the map's values are ${this.shape.valueSize}`);
  }

  info(): MapInfo {
    return mapInfo(this.fd, this.what);
  }

  pin(path: string): void {
    objPin(this.fd, path);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

export function mapInfo(fd: number, what: string): MapInfo {
  const F = INFO.bpf_map_info;
  const v = objInfo(fd, "bpf_map_info", what);
  const g = (f: readonly [number, number]) => v.getUint32(f[0], true);
  return { id: g(F.id), type: g(F.type), name: infoName(v, F.name), keySize: g(F.key_size), valueSize: g(F.value_size), maxEntries: g(F.max_entries), flags: g(F.map_flags), btfId: g(F.btf_id) };
}

export class TypedMap<K, V> {
  constructor(readonly map: BpfMap, readonly key: Codec<K>, readonly value: Codec<V>) {}

  lookup(k: K): V | undefined {
    const b = this.map.lookupRaw(encode(this.key, k));
    return b && decode(this.value, b);
  }

  update(k: K, v: V, flags: number = UPDATE.ANY): void {
    this.map.updateRaw(encode(this.key, k), encode(this.value, v), flags);
  }

  delete(k: K): boolean {
    return this.map.deleteRaw(encode(this.key, k));
  }

  *keys(): Generator<K> {
    for (const k of this.map.keysRaw()) yield decode(this.key, k);
  }

  *entries(): Generator<[K, V]> {
    for (const k of this.map.keysRaw()) {
      const b = this.map.lookupRaw(k);
      if (b) yield [decode(this.key, k), decode(this.value, b)];
    }
  }
}

/** A per-CPU map: a lookup gives one value per possible CPU; an update sets each. */
export class PerCpuMap<K, V> {
  private readonly stride: number;

  constructor(readonly map: BpfMap, readonly key: Codec<K>, readonly value: Codec<V>) {
    this.stride = (value.size + 7) & ~7;
  }

  lookup(k: K): V[] | undefined {
    const b = this.map.lookupRaw(encode(this.key, k));
    if (!b) return undefined;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return Array.from({ length: possibleCpus() }, (_, i) => this.value.decode(v, i * this.stride));
  }

  /** One value for every CPU, or one per CPU. */
  update(k: K, values: V | V[], flags: number = UPDATE.ANY): void {
    const n = possibleCpus();
    const list = Array.isArray(values) ? values : Array.from({ length: n }, () => values);
    if (list.length !== n) throw new RangeError(`map ${this.map.name}: ${list.length} values for ${n} possible CPUs`);
    const b = new Uint8Array(this.stride * n);
    const v = new DataView(b.buffer);
    list.forEach((x, i) => this.value.encode(x, v, i * this.stride));
    this.map.updateRaw(encode(this.key, k), b, flags);
  }

  *entries(): Generator<[K, V[]]> {
    for (const k of this.map.keysRaw()) {
      const key = decode(this.key, k);
      const vals = this.lookup(key);
      if (vals) yield [key, vals];
    }
  }
}
