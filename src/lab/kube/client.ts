// The lab CLI's way into its API server: HTTP over the admin socket (<labdir>/kube/admin.sock,
// root's alone: no network, no token, cluster-admin's rights), speaking the API's own REST paths,
// so that `lab apply`, `lab label` and the lab's kubelet work through the same code kubectl meets.
import { join } from "node:path";
import type { StatusObject } from "./rbac.ts";
import { type ResourceType, RESOURCES, groupVersion } from "./resources.ts";
import { kubeDir } from "./credentials.ts";

export const adminSocket = (lab: string) => join(kubeDir(lab), "admin.sock");

export class ApiError extends Error {
  constructor(readonly code: number, readonly status: StatusObject | undefined, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

/** One request; the answer's JSON, or an ApiError with the server's Status. */
export async function kubeCall(lab: string, method: string, path: string, body?: unknown, contentType = "application/json"): Promise<unknown> {
  let r: Response;
  try {
    r = await fetch(`http://lab${path}`, { method, unix: adminSocket(lab), ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": contentType } } : {}) } as RequestInit);
  } catch (e) {
    throw new ApiError(0, undefined, `the lab's API server does not answer on ${adminSocket(lab)} (${(e as Error).message}; log: ${join(kubeDir(lab), "apiserver.log")})`);
  }
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!r.ok) {
    const st = json && typeof json === "object" && (json as StatusObject).kind === "Status" ? json as StatusObject : undefined;
    throw new ApiError(r.status, st, st?.message ?? `${method} ${path}: HTTP ${r.status} ${text.trim()}`);
  }
  return json;
}

/** The resource of a kind, by its plural, singular or short name ("pod", "ns", "networkpolicy", "netpol"). */
export function resourceNamed(word: string): ResourceType | undefined {
  const w = word.toLowerCase();
  return RESOURCES.find((r) => r.resource === w || r.singular === w || r.shortNames.includes(w) || `${r.resource}.${r.group}` === w || `${r.singular}.${r.group}` === w);
}

/** The REST path of a collection or an object. */
export function objectPath(rt: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  const base = rt.group ? `/apis/${groupVersion(rt)}` : `/api/${rt.version}`;
  const ns = rt.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${base}${ns}/${rt.resource}${name ? `/${encodeURIComponent(name)}` : ""}${subresource ? `/${subresource}` : ""}`;
}

/** GET of one object; undefined when it does not exist. */
export async function getObject<T = Record<string, unknown>>(lab: string, rt: ResourceType, namespace: string | undefined, name: string): Promise<T | undefined> {
  try {
    return await kubeCall(lab, "GET", objectPath(rt, namespace, name)) as T;
  } catch (e) {
    if (e instanceof ApiError && e.code === 404) return undefined;
    throw e;
  }
}

export const rt = (resource: string): ResourceType => RESOURCES.find((r) => r.resource === resource)!;
