// `gauze lab apply -f`, `lab delete -f` and `lab label`: what kubectl apply, delete and label do,
// done through the lab's admin socket against the lab's API (so the agents see the change through
// their watches exactly as they would on a cluster). Objects from a file are input: each document
// must name an apiVersion and kind the API serves and carry a metadata.name; anything else is an
// error naming the document, and nothing of the file is applied until every document passed.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ApiError, getObject, kubeCall, objectPath, resourceNamed } from "./client.ts";
import { RESOURCES, groupVersion, resourceOfKind, type ResourceType } from "./resources.ts";
import { labelKeyError, labelValueError } from "../pods.ts";

export interface AppliedObject { kind: string; namespace?: string; name: string; action: "created" | "configured" | "unchanged" | "deleted" | "not found"; resourceVersion?: string }

interface Doc { rt: ResourceType; namespace?: string; name: string; body: Record<string, unknown> }

/** The documents of a YAML or JSON file (a List's items too), checked before anything is sent. */
export function readObjects(file: string, text = readFileSync(file, "utf8")): Doc[] {
  const out: Doc[] = [];
  const docs = parseAllDocuments(text);
  docs.forEach((d, i) => {
    if (d.errors.length) throw new Error(`${file}: document ${i + 1}: ${d.errors[0]!.message.split("\n")[0]}`);
    const o = d.toJS() as unknown;
    if (o === null || o === undefined) return;
    const items = (o as { kind?: unknown }).kind === "List" ? (o as { items?: unknown }).items : [o];
    if (!Array.isArray(items)) throw new Error(`${file}: document ${i + 1}: a List without items`);
    for (const it of items) {
      const x = it as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
      const where = `${file}: document ${i + 1}${typeof x?.kind === "string" ? ` (${x.kind})` : ""}`;
      if (typeof x !== "object" || x === null || typeof x.apiVersion !== "string" || typeof x.kind !== "string") throw new Error(`${where}: needs apiVersion and kind`);
      const rt = resourceOfKind(x.apiVersion, x.kind);
      if (!rt) throw new Error(`${where}: the lab's API serves ${RESOURCES.filter((r) => r.verbs.includes("create")).map((r) => `${r.kind} (${groupVersion(r)})`).join(", ")}, not ${x.kind} ${x.apiVersion}`);
      if (typeof x.metadata?.name !== "string" || !x.metadata.name) throw new Error(`${where}: needs metadata.name`);
      const namespace = rt.namespaced ? (typeof x.metadata.namespace === "string" && x.metadata.namespace ? x.metadata.namespace : "default") : undefined;
      out.push({ rt, ...(namespace ? { namespace } : {}), name: x.metadata.name, body: { ...(x as Record<string, unknown>), metadata: { ...x.metadata, ...(namespace ? { namespace } : {}) } } });
    }
  });
  if (!out.length) throw new Error(`${file}: no objects in it`);
  return out;
}

const label = (d: Doc) => ({ kind: d.rt.kind, ...(d.namespace ? { namespace: d.namespace } : {}), name: d.name });

/** Creates what does not exist, replaces what does (its spec and labels as the file has them). */
export async function applyObjects(lab: string, docs: Doc[]): Promise<AppliedObject[]> {
  const out: AppliedObject[] = [];
  for (const d of docs) {
    const live = await getObject<{ metadata: { resourceVersion?: string; uid?: string; creationTimestamp?: string }; status?: unknown }>(lab, d.rt, d.namespace, d.name);
    if (!live) {
      const r = await kubeCall(lab, "POST", objectPath(d.rt, d.namespace), d.body) as { metadata?: { resourceVersion?: string } };
      out.push({ ...label(d), action: "created", ...(r.metadata?.resourceVersion ? { resourceVersion: r.metadata.resourceVersion } : {}) });
      continue;
    }
    const { resourceVersion, uid, creationTimestamp } = live.metadata;
    const body = { ...d.body, metadata: { ...(d.body.metadata as object), resourceVersion, uid, creationTimestamp }, ...(live.status !== undefined ? { status: live.status } : {}) };
    const same = JSON.stringify(strip(live)) === JSON.stringify(strip(body));
    if (same) { out.push({ ...label(d), action: "unchanged", ...(resourceVersion ? { resourceVersion } : {}) }); continue; }
    const r = await kubeCall(lab, "PUT", objectPath(d.rt, d.namespace, d.name), body) as { metadata?: { resourceVersion?: string } };
    out.push({ ...label(d), action: "configured", ...(r.metadata?.resourceVersion ? { resourceVersion: r.metadata.resourceVersion } : {}) });
  }
  return out;
}

/** What an apply compares: the object without what the server keeps for itself. */
function strip(o: unknown): unknown {
  const x = structuredClone(o) as { metadata?: Record<string, unknown> };
  for (const k of ["resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"]) delete x.metadata?.[k];
  return sortKeys(x);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

export async function deleteObjects(lab: string, docs: Doc[]): Promise<AppliedObject[]> {
  const out: AppliedObject[] = [];
  for (const d of [...docs].reverse()) {
    try {
      await kubeCall(lab, "DELETE", objectPath(d.rt, d.namespace, d.name));
      out.push({ ...label(d), action: "deleted" });
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404)) throw e;
      out.push({ ...label(d), action: "not found" });
    }
  }
  return out.reverse();
}

/** `k=v` sets, `k-` removes (kubectl label's words), checked as the API checks labels. */
export function parseLabelChanges(words: string[]): Record<string, string | null> {
  if (!words.length) throw new Error("give labels to change: key=value sets one, key- removes one");
  const out: Record<string, string | null> = {};
  for (const w of words) {
    if (w.endsWith("-") && !w.includes("=")) {
      const k = w.slice(0, -1);
      const bad = labelKeyError(k);
      if (bad) throw new Error(`label ${bad}`);
      out[k] = null;
      continue;
    }
    const i = w.indexOf("=");
    if (i < 0) throw new Error(`label ${JSON.stringify(w)}: write key=value to set, key- to remove`);
    const k = w.slice(0, i), v = w.slice(i + 1);
    const bad = labelKeyError(k) ?? labelValueError(v);
    if (bad) throw new Error(`label ${bad}`);
    out[k] = v;
  }
  return out;
}

/** Changes the labels of a pod (`[ns/]name`) or a namespace, live, as `kubectl label` does. */
export async function labelObject(lab: string, kind: string, ref: string, changes: Record<string, string | null>): Promise<{ kind: string; namespace?: string; name: string; labels: Record<string, string>; resourceVersion?: string }> {
  const rt = resourceNamed(kind);
  if (!rt || (rt.resource !== "pods" && rt.resource !== "namespaces")) throw new Error(`lab label ${kind}: label a pod or a namespace (pod, ns)`);
  const i = ref.indexOf("/");
  const [namespace, name] = rt.namespaced ? (i < 0 ? ["default", ref] : [ref.slice(0, i), ref.slice(i + 1)]) : [undefined, ref];
  try {
    const r = await kubeCall(lab, "PATCH", objectPath(rt, namespace, name), { metadata: { labels: changes } }, "application/merge-patch+json") as { metadata: { labels?: Record<string, string>; resourceVersion?: string } };
    return { kind: rt.kind, ...(namespace ? { namespace } : {}), name, labels: r.metadata.labels ?? {}, ...(r.metadata.resourceVersion ? { resourceVersion: r.metadata.resourceVersion } : {}) };
  } catch (e) {
    if (e instanceof ApiError && e.code === 404) throw new Error(`lab ${lab} has no ${rt.singular} ${namespace ? `${namespace}/` : ""}${name} (gauze lab status lists them)`);
    throw e;
  }
}
