// Who may do what in the lab's API. A bearer token names a subject (a Grant); the subject's
// ClusterRole rules (apiGroups, resources with "res/subresource", verbs, resourceNames, "*"
// anywhere) decide; a denial reads as the API server's own, word for word, since kubectl prints it
// as it comes. Everything here is decided from the request line and headers: no body is read
// before a request is allowed. The Status objects of every error live here too.

/** A rule as a ClusterRole writes it. */
export interface PolicyRule { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] }

/** Who a bearer token is, and what that subject may do. */
export interface Grant { token: string; user: string; rules: PolicyRule[] }

/** kubeadm's cluster-admin: every verb on everything. */
export const ADMIN_RULES: PolicyRule[] = [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }];

export interface StatusObject {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  code: number;
  details?: { name?: string; group?: string; kind?: string; causes?: { reason: string; message: string; field: string }[] };
}

/** A Kubernetes Status object, the body of every error. */
export function status(code: number, reason: string, message: string, details?: StatusObject["details"]): StatusObject {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code, ...(details ? { details } : {}) };
}

/** What a request asks, as the authorizer sees it. */
export interface Attributes { verb: string; group: string; resource: string; subresource?: string; namespace?: string; name?: string }

const has = (xs: string[] | undefined, x: string) => !!xs && (xs.includes("*") || xs.includes(x));

export function allows(rules: PolicyRule[], a: Attributes): boolean {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  return rules.some((r) => has(r.apiGroups, a.group) && (has(r.resources, resource) || (a.subresource !== undefined && !!r.resources?.includes(`*/${a.subresource}`))) && has(r.verbs, a.verb)
    && (!r.resourceNames?.length || (a.name !== undefined && r.resourceNames.includes(a.name))));
}

/** "networkpolicies.networking.k8s.io", "pods": how errors name a resource. */
export function qualifiedResource(group: string, resource: string): string {
  return group ? `${resource}.${group}` : resource;
}

/** The API server's 403: `pods "a" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "x"`. */
export function forbidden(user: string, a: Attributes): StatusObject {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const q = qualifiedResource(a.group, a.resource);
  const what = a.name ? `${q} ${JSON.stringify(a.name)}` : q;
  const scope = a.namespace ? `in the namespace ${JSON.stringify(a.namespace)}` : "at the cluster scope";
  return status(403, "Forbidden", `${what} is forbidden: User ${JSON.stringify(user)} cannot ${a.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(a.group)} ${scope}`,
    { ...(a.name ? { name: a.name } : {}), group: a.group, kind: a.resource });
}

export const unauthorized = (): StatusObject => status(401, "Unauthorized", "Unauthorized");

/** The grant a request's bearer token names, if any. */
export function grantOf(grants: Grant[], authorization: string | undefined): Grant | undefined {
  const auth = authorization ?? "";
  const token = auth.startsWith("Bearer ") ? auth.slice(7).trim() : "";
  return token ? grants.find((g) => g.token === token) : undefined;
}
