// The patch types the API server takes, applied to plain JSON: JSON merge patch (RFC 7386: null
// deletes, objects merge, anything else replaces), JSON patch (RFC 6902: add, remove, replace,
// move, copy, test), and strategic merge patch as Kubernetes' built-in types define it: lists
// with a merge key (conditions by type, containers by name, ...) merge element by element, other
// lists are replaced, and the directives kubectl sends ($patch: replace|delete, $retainKeys,
// $setElementOrder/..., $deleteFromPrimitiveList/...) do what they say. Also the three-way merge
// patch a client-side apply computes from the last applied configuration, the new one and the
// live object.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export class PatchError extends Error {}

export const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => (v === undefined ? v : JSON.parse(JSON.stringify(v)) as T);

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---- JSON patch ----

function pointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw new PatchError(`invalid JSON pointer ${JSON.stringify(path)}`);
  return path.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parentOf(doc: Json, parts: string[]): { parent: Obj | Json[]; key: string } {
  let cur: Json = doc;
  for (const p of parts.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur) ? cur[Number(p)] : isObj(cur) ? cur[p] : undefined;
    if (next === undefined || next === null || typeof next !== "object") throw new PatchError(`path /${parts.join("/")}: ${p} does not exist`);
    cur = next;
  }
  if (cur === null || typeof cur !== "object") throw new PatchError(`path /${parts.join("/")} does not exist`);
  return { parent: cur, key: parts[parts.length - 1]! };
}

function getAt(doc: Json, parts: string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const p of parts) cur = Array.isArray(cur) ? cur[Number(p)] : isObj(cur) ? cur[p] : undefined;
  return cur;
}

export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw new PatchError("a JSON patch is a list of operations");
  let doc = clone(target);
  for (const o of ops) {
    if (!isObj(o) || typeof o.op !== "string" || typeof o.path !== "string") throw new PatchError("each JSON patch operation needs op and path");
    const parts = pointer(o.path);
    const put = (value: Json, insert: boolean) => {
      if (!parts.length) { doc = value; return; }
      const { parent, key } = parentOf(doc, parts);
      if (Array.isArray(parent)) {
        const i = key === "-" ? parent.length : Number(key);
        if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new PatchError(`index ${key} out of range at ${o.path}`);
        parent.splice(i, insert ? 0 : 1, value);
      } else parent[key] = value;
    };
    const remove = (): Json => {
      const { parent, key } = parentOf(doc, parts);
      const had = getAt(doc, parts);
      if (had === undefined) throw new PatchError(`unable to remove nonexistent key: ${o.path}`);
      if (Array.isArray(parent)) parent.splice(Number(key), 1); else delete parent[key];
      return had;
    };
    switch (o.op) {
      case "add": put(clone(o.value as Json), true); break;
      case "replace": if (getAt(doc, parts) === undefined) throw new PatchError(`replace operation does not apply: doc is missing key: ${o.path}`); put(clone(o.value as Json), false); break;
      case "remove": remove(); break;
      case "move": case "copy": {
        if (typeof o.from !== "string") throw new PatchError(`${o.op} needs from`);
        const from = pointer(o.from);
        const v = getAt(doc, from);
        if (v === undefined) throw new PatchError(`${o.op}: ${o.from} does not exist`);
        if (o.op === "move") { const { parent, key } = parentOf(doc, from); if (Array.isArray(parent)) parent.splice(Number(key), 1); else delete parent[key]; }
        put(clone(v), true);
        break;
      }
      case "test": if (!deepEqual(getAt(doc, parts), o.value)) throw new PatchError(`testing value ${o.path} failed`); break;
      default: throw new PatchError(`unknown JSON patch operation ${JSON.stringify(o.op)}`);
    }
  }
  return doc;
}

// ---- strategic merge patch ----

/** Lists that merge by a key, by their path in the object (an element of a list is `[]`). */
const MERGE_KEYS: Record<string, string> = {
  "metadata.ownerReferences": "uid",
  "spec.containers": "name", "spec.initContainers": "name", "spec.ephemeralContainers": "name", "spec.volumes": "name", "spec.imagePullSecrets": "name",
  "spec.containers[].ports": "containerPort", "spec.initContainers[].ports": "containerPort",
  "spec.containers[].env": "name", "spec.initContainers[].env": "name",
  "spec.containers[].volumeMounts": "mountPath", "spec.initContainers[].volumeMounts": "mountPath",
  "spec.tolerations": "key",
  "status.conditions": "type", "status.addresses": "type", "status.podIPs": "ip", "status.hostIPs": "ip",
  "secrets": "name",
};
/** Lists of scalars that merge as sets. */
const MERGE_SETS = new Set(["metadata.finalizers", "spec.podCIDRs", "spec.finalizers"]);

const SET_ORDER = "$setElementOrder/";
const DELETE_FROM = "$deleteFromPrimitiveList/";

export function strategicMergePatch(target: Json | undefined, patch: Json, path = ""): Json | undefined {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === "delete") return undefined;
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === "$patch" || k === "$retainKeys" || k.startsWith(SET_ORDER)) continue;
    if (k.startsWith(DELETE_FROM)) {
      const f = k.slice(DELETE_FROM.length);
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = (out[f] as Json[]).filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    const p = path ? `${path}.${k}` : k;
    if (v === null) { delete out[k]; continue; }
    if (Array.isArray(v)) { out[k] = mergeList(out[k], v, p); continue; }
    const merged = strategicMergePatch(out[k], v, p);
    if (merged === undefined) delete out[k]; else out[k] = merged;
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys.map(String));
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

function mergeList(target: Json | undefined, patch: Json[], path: string): Json[] {
  const cur = Array.isArray(target) ? clone(target) : [];
  if (patch.some((e) => isObj(e) && e.$patch === "replace")) return clone(patch.filter((e) => !(isObj(e) && e.$patch === "replace")));
  if (MERGE_SETS.has(path)) {
    for (const v of patch) if (!cur.some((x) => deepEqual(x, v))) cur.push(clone(v));
    return cur;
  }
  const key = MERGE_KEYS[path];
  if (!key) return clone(patch.filter((e) => !(isObj(e) && e.$patch !== undefined)));
  for (const e of patch) {
    if (!isObj(e) || !(key in e)) throw new PatchError(`${path}: an element without its merge key ${key}`);
    const i = cur.findIndex((x) => isObj(x) && deepEqual(x[key], e[key]));
    if (e.$patch === "delete") { if (i >= 0) cur.splice(i, 1); continue; }
    const merged = strategicMergePatch(i >= 0 ? cur[i] : undefined, e, `${path}[]`) as Json;
    if (i >= 0) cur[i] = merged; else cur.push(merged);
  }
  return cur;
}

// ---- client-side apply ----

/**
 * The merge patch from the live object to `modified`, with what `original` (the last applied
 * configuration) had and `modified` no longer has deleted; lists are replaced whole. Empty ({})
 * when the live object already is what was asked.
 */
export function threeWayMergePatch(original: Json | undefined, modified: Json, current: Json | undefined): Obj {
  const out: Obj = {};
  const m = isObj(modified) ? modified : {};
  const c = isObj(current) ? current : {};
  const o = isObj(original) ? original : {};
  for (const [k, v] of Object.entries(m)) {
    if (isObj(v) && isObj(c[k])) {
      const sub = threeWayMergePatch(o[k], v, c[k]);
      if (Object.keys(sub).length) out[k] = sub;
    } else if (!deepEqual(v, c[k])) out[k] = clone(v);
  }
  for (const k of Object.keys(o)) if (!(k in m) && k in c) out[k] = null;
  return out;
}
