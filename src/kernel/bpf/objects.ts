// The eBPF objects gauze ships, embedded in the executable: bpf/*.c compiled by clang in
// `npm run build` (scripts/build.mjs writes objects.gen.ts, base64, before bun compiles), so a
// node needs no compiler. Decoded on first use.
import { OBJECTS } from "./objects.gen.ts";

export type ObjectName = keyof typeof OBJECTS;

const decoded = new Map<ObjectName, Uint8Array>();

/** The object's bytes (a fresh copy: loading patches nothing in it, but callers may). */
export function embeddedObject(name: ObjectName): Uint8Array {
  let b = decoded.get(name);
  if (!b) {
    b = new Uint8Array(Buffer.from(OBJECTS[name], "base64"));
    decoded.set(name, b);
  }
  return b.slice();
}

export function embeddedObjectNames(): ObjectName[] {
  return Object.keys(OBJECTS) as ObjectName[];
}
