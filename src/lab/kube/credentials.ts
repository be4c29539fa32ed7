// The lab control plane's credentials, per lab under <labdir>/kube (0700; keys, tokens, grants
// and kubeconfigs 0600): its own CA and the API server's certificate (EC P-256: two openssl runs,
// about 40 ms, so each lab has its own and no host state outlives it), a bearer token per subject
// (cluster-admin for the lab's kubeconfig, gauze-agent for the agents of labs that start them
// directly, or the manifest's service accounts, as the token controller would make them), the
// grants the API server authorizes with, and the kubeconfigs that name them.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { runAsync } from "../../kernel/spawn.ts";
import { writeAtomic } from "../../kernel/files.ts";
import { manifestObjects, type KubeObject as ManifestObject } from "../../deploy/manifest.ts";
import { ADMIN_RULES, type Grant, type PolicyRule } from "./rbac.ts";
import { labDir } from "../state.ts";

export const API_HOST = "172.18.0.1";
export const API_PORT = 6443;
export const kubeDir = (lab: string) => join(labDir(lab), "kube");
export const adminKubeconfig = (lab: string) => join(kubeDir(lab), "admin.kubeconfig");
export const agentKubeconfig = (lab: string) => join(kubeDir(lab), "agent.kubeconfig");
/** Users besides the admin, each with a kubeconfig of its own (`gauze lab kubeconfig --as`). */
export const LAB_USERS = ["observer", "viewer"] as const;
export type LabUser = (typeof LAB_USERS)[number];
export const userKubeconfig = (lab: string, user: LabUser) => join(kubeDir(lab), `${user}.kubeconfig`);
/**
 * observer: bound to the manifest's gauze-observer ClusterRole (what observe --kubeconfig needs);
 * viewer: reads nodes, pods and DaemonSets but may not exec (the user an RBAC error is shown to).
 */
function userRules(user: LabUser, manifest?: ManifestObject[]): PolicyRule[] {
  const read: PolicyRule[] = [{ apiGroups: [""], resources: ["nodes", "pods"], verbs: ["get", "list"] }, { apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["get", "list"] }];
  if (user === "viewer") return read;
  const role = (manifest ?? manifestObjects()).find((o) => o.kind === "ClusterRole" && o.metadata.name === "gauze-observer") as unknown as { rules?: PolicyRule[] } | undefined;
  return role?.rules ?? read;
}

export const ADMIN_USER = "kubernetes-admin";
/** The agents' subject when the lab starts them directly (no manifest to say otherwise). */
export const AGENT_ACCOUNT = { namespace: "kube-system", name: "gauze-agent" };

/** The manifest's agent ClusterRole, plus what NetworkPolicy enforcement reads (get as well, for kubectl-like clients). */
export function agentRules(): PolicyRule[] {
  const role = manifestObjects().find((o) => o.kind === "ClusterRole") as unknown as { rules?: PolicyRule[] } | undefined;
  return [
    ...(role?.rules ?? []),
    { apiGroups: [""], resources: ["pods", "namespaces"], verbs: ["get", "list", "watch"] },
    { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["get", "list", "watch"] },
  ];
}

async function openssl(args: string[]): Promise<void> {
  const r = await runAsync(["openssl", ...args], { timeoutMs: 20_000 });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}${r.status === 127 ? " (apt-get install openssl)" : ""}`);
}

/**
 * A CA and the API server's certificate for 172.18.0.1 (where nodes reach it), 127.0.0.1
 * (where this host's kubectl reaches it) and kubernetes.default. Started without waiting, so
 * that the lab's namespaces are made meanwhile.
 */
export async function makePki(lab: string): Promise<void> {
  const dir = kubeDir(lab);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const f = (n: string) => join(dir, n);
  if (!existsSync(f("server.crt"))) {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"];
    await openssl(["req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.crt"), "-subj", "/CN=gauze-lab-ca"]);
    await openssl(["req", "-x509", "-CA", f("ca.crt"), "-CAkey", f("ca.key"), ...ec, "-keyout", f("server.key"), "-out", f("server.crt"), "-subj", "/CN=kube-apiserver",
      "-addext", "basicConstraints=critical,CA:FALSE", "-addext", `subjectAltName=IP:${API_HOST},IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc`, "-addext", "extendedKeyUsage=serverAuth"]);
  }
  for (const key of ["ca.key", "server.key"]) chmodSync(f(key), 0o600);
}

const token = () => randomBytes(24).toString("hex");

/** A token directory as a pod of service account ns/name mounts it (token, namespace, ca.crt). */
export function serviceAccountDir(lab: string, ns: string, name: string): string {
  return join(kubeDir(lab), "serviceaccounts", ns, name);
}

function writeServiceAccount(lab: string, ns: string, name: string, t: string): void {
  const dir = serviceAccountDir(lab, ns, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A token is a credential: root's alone, as kubelet's projected token files are.
  writeFileSync(join(dir, "token"), t, { mode: 0o600 });
  writeFileSync(join(dir, "namespace"), ns);
  writeFileSync(join(dir, "ca.crt"), readFileSync(join(kubeDir(lab), "ca.crt")));
}

/**
 * What each service account of the manifest may do, from its ClusterRoleBindings and
 * ClusterRoles, and a token per account (the directory a pod of that account mounts).
 */
function manifestGrants(lab: string, objects: ManifestObject[]): Grant[] {
  const roles = new Map(objects.filter((o) => o.kind === "ClusterRole").map((o) => [o.metadata.name, (o as unknown as { rules?: PolicyRule[] }).rules ?? []]));
  return objects.filter((o) => o.kind === "ServiceAccount").map((sa) => {
    const ns = sa.metadata.namespace ?? "default";
    const rules = objects.filter((o) => o.kind === "ClusterRoleBinding").flatMap((b) => {
      const rb = b as unknown as { roleRef?: { kind?: string; name?: string }; subjects?: { kind?: string; name?: string; namespace?: string }[] };
      const bound = (rb.subjects ?? []).some((x) => x.kind === "ServiceAccount" && x.name === sa.metadata.name && (x.namespace ?? "default") === ns);
      return bound && rb.roleRef?.kind === "ClusterRole" ? roles.get(rb.roleRef.name ?? "") ?? [] : [];
    });
    const t = token();
    writeServiceAccount(lab, ns, sa.metadata.name, t);
    return { token: t, user: `system:serviceaccount:${ns}:${sa.metadata.name}`, rules };
  });
}

export interface Credentials { grants: Grant[]; adminToken: string; agentToken?: string; userTokens: Record<LabUser, string> }

/** Tokens and grants: cluster-admin always; the manifest's accounts in manifest mode, gauze-agent otherwise. */
export function makeCredentials(lab: string, manifest?: ManifestObject[]): Credentials {
  const adminToken = token();
  const grants: Grant[] = [{ token: adminToken, user: ADMIN_USER, rules: ADMIN_RULES }];
  let agentToken: string | undefined;
  const userTokens = Object.fromEntries(LAB_USERS.map((u) => [u, token()])) as Record<LabUser, string>;
  for (const u of LAB_USERS) grants.push({ token: userTokens[u], user: u, rules: userRules(u, manifest) });
  if (manifest) grants.push(...manifestGrants(lab, manifest));
  else {
    agentToken = token();
    writeServiceAccount(lab, AGENT_ACCOUNT.namespace, AGENT_ACCOUNT.name, agentToken);
    grants.push({ token: agentToken, user: `system:serviceaccount:${AGENT_ACCOUNT.namespace}:${AGENT_ACCOUNT.name}`, rules: agentRules() });
  }
  writeAtomic(join(kubeDir(lab), "grants.json"), JSON.stringify(grants) + "\n", 0o600);
  return { grants, adminToken, userTokens, ...(agentToken ? { agentToken } : {}) };
}

/** A kubeconfig for one server and one token (0600: it holds the token). */
export function writeKubeconfig(path: string, lab: string, o: { server: string; user: string; token: string }): void {
  const ca = readFileSync(join(kubeDir(lab), "ca.crt")).toString("base64");
  writeAtomic(path, [
    "apiVersion: v1", "kind: Config",
    "clusters:", `- name: ${lab}`, "  cluster:", `    server: ${o.server}`, `    certificate-authority-data: ${ca}`,
    "users:", `- name: ${o.user}`, "  user:", `    token: ${o.token}`,
    "contexts:", `- name: ${lab}`, "  context:", `    cluster: ${lab}`, `    user: ${o.user}`, "    namespace: default",
    `current-context: ${lab}`, "",
  ].join("\n"), 0o600);
}
