// What the lab's API serves, as data: each resource's group, version, kind, scope, verbs, short
// names and status subresource, and the discovery documents kubectl reads before anything else
// (/api, /api/v1, /apis, /apis/<group>[/<version>], /version). Nothing else is served: a path
// outside this table is a 404, and /openapi/v2 and /v3 are 404 too (kubectl then needs
// --validate=false for apply and create).

export interface ResourceType {
  group: string;
  version: string;
  /** The plural, as in the URL: "networkpolicies". */
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /** A status subresource (spec and status written apart, as the real strategies do). */
  status: boolean;
}

const WRITE = ["create", "delete", "get", "list", "patch", "update", "watch"];
const READ = ["get", "list", "watch"];

export const RESOURCES: readonly ResourceType[] = [
  { group: "", version: "v1", resource: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"], verbs: WRITE, status: true },
  { group: "", version: "v1", resource: "nodes", singular: "node", kind: "Node", namespaced: false, shortNames: ["no"], verbs: WRITE, status: true },
  { group: "", version: "v1", resource: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: ["po"], verbs: WRITE, status: true },
  // Read only: the lab makes the accounts it hands out tokens for (and each namespace's "default").
  { group: "", version: "v1", resource: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: true, shortNames: ["sa"], verbs: READ, status: false },
  // Read only: the lab's kubelet side (kubelet-api.ts) keeps the manifest's DaemonSet and its status.
  { group: "apps", version: "v1", resource: "daemonsets", singular: "daemonset", kind: "DaemonSet", namespaced: true, shortNames: ["ds"], verbs: READ, status: false },
  { group: "networking.k8s.io", version: "v1", resource: "networkpolicies", singular: "networkpolicy", kind: "NetworkPolicy", namespaced: true, shortNames: ["netpol"], verbs: WRITE, status: false },
];

export const groupVersion = (r: { group: string; version: string }): string => (r.group ? `${r.group}/${r.version}` : r.version);

export function resourceAt(group: string, version: string, resource: string): ResourceType | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.resource === resource);
}

export function resourceOfKind(apiVersion: string, kind: string): ResourceType | undefined {
  return RESOURCES.find((r) => groupVersion(r) === apiVersion && r.kind === kind);
}

export const GROUPS = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];

/** The version this server says it is: the API it copies, marked as the lab's. */
export function versionInfo(): Record<string, string> {
  return { major: "1", minor: "30", gitVersion: "v1.30.0-gauze-lab", gitCommit: "", gitTreeState: "", buildDate: "", goVersion: "none (gauze's lab API, TypeScript)", compiler: "gauze", platform: `linux/${process.arch === "arm64" ? "arm64" : "amd64"}` };
}

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }] };
}

function groupDoc(name: string): Record<string, unknown> {
  const versions = [...new Set(RESOURCES.filter((r) => r.group === name).map((r) => r.version))].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions, preferredVersion: versions[0] };
}

export function apiGroupList(): Record<string, unknown> {
  return { kind: "APIGroupList", apiVersion: "v1", groups: GROUPS.map(groupDoc) };
}

export function apiGroup(name: string): Record<string, unknown> | undefined {
  return GROUPS.includes(name) ? { kind: "APIGroup", apiVersion: "v1", ...groupDoc(name) } : undefined;
}

/** /api/v1 or /apis/<group>/<version>: undefined when nothing is served there. */
export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const rs = RESOURCES.filter((r) => r.group === group && r.version === version);
  if (!rs.length) return undefined;
  const resources = rs.flatMap((r) => [
    { name: r.resource, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: r.verbs, shortNames: r.shortNames },
    ...(r.status ? [{ name: `${r.resource}/status`, singularName: "", namespaced: r.namespaced, kind: r.kind, verbs: ["get", "patch", "update"] }] : []),
    ...(r.resource === "pods" ? [{ name: "pods/exec", singularName: "", namespaced: true, kind: "PodExecOptions", verbs: ["create", "get"] }] : []),
  ]);
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: groupVersion({ group, version }), resources };
}
