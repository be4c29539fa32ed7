// The lab's control plane for manifest mode: a certificate authority, service-account tokens
// (as the token controller makes them), the Nodes API (apiserver.ts) running as a process in the
// underlay namespace on https://172.18.0.1:6443 where every node reaches it, and the controller
// manager's one job here: each Node gets a podCIDR from the cluster CIDR.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { gauzeExecutable, runSync } from "../../kernel/spawn.ts";
import { NodesApi, type Grant, type NodeObject, type PolicyRule } from "./apiserver.ts";
import type { KubeObject } from "../../deploy/manifest.ts";
import { labDir, type LabState } from "../state.ts";
import { netnsPath } from "../../kernel/netns.ts";
import { writeAtomic } from "../../kernel/files.ts";
import { isOurProcess, spawnInNetns, stopProcess } from "../processes.ts";

export const API_HOST = "172.18.0.1";
export const API_PORT = 6443;
/** Where kubelet mounts a pod's service-account token. */
export const SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

export const kubeDir = (lab: string) => join(labDir(lab), "kube");
const adminSocket = (lab: string) => join(kubeDir(lab), "admin.sock");

function openssl(args: string[]): void {
  const r = runSync(["openssl", ...args]);
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}${r.status === 127 ? " (apt-get install openssl)" : ""}`);
}

/** A CA and the API server's certificate for 172.18.0.1 (and kubernetes.default). */
function makePki(dir: string): void {
  const f = (n: string) => join(dir, n);
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "30", "-subj", "/CN=gauze-lab-ca"]);
  writeFileSync(f("server.ext"), `subjectAltName=IP:${API_HOST},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n`);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=kube-apiserver"]);
  openssl(["x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f("server.crt"), "-days", "30", "-extfile", f("server.ext")]);
}

/**
 * What each service account of the manifest may do, from its ClusterRoleBindings and
 * ClusterRoles, and a token per account (the directory a pod of that account mounts).
 */
function grantsFor(lab: string, objects: KubeObject[]): Grant[] {
  const roles = new Map(objects.filter((o) => o.kind === "ClusterRole").map((o) => [o.metadata.name, (o as unknown as { rules?: PolicyRule[] }).rules ?? []]));
  const grants: Grant[] = [];
  for (const sa of objects.filter((o) => o.kind === "ServiceAccount")) {
    const ns = sa.metadata.namespace ?? "default";
    const user = `system:serviceaccount:${ns}:${sa.metadata.name}`;
    const rules = objects.filter((o) => o.kind === "ClusterRoleBinding").flatMap((b) => {
      const rb = b as unknown as { roleRef?: { kind?: string; name?: string }; subjects?: { kind?: string; name?: string; namespace?: string }[] };
      const bound = (rb.subjects ?? []).some((x) => x.kind === "ServiceAccount" && x.name === sa.metadata.name && (x.namespace ?? "default") === ns);
      return bound && rb.roleRef?.kind === "ClusterRole" ? roles.get(rb.roleRef.name ?? "") ?? [] : [];
    });
    const dir = join(kubeDir(lab), "serviceaccounts", ns, sa.metadata.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const token = randomBytes(24).toString("hex");
    // A token is a credential: root's alone, as kubelet's projected token files are.
    writeFileSync(join(dir, "token"), token, { mode: 0o600 });
    writeFileSync(join(dir, "namespace"), ns);
    writeFileSync(join(dir, "ca.crt"), readFileSync(join(kubeDir(lab), "ca.crt")));
    grants.push({ token, user, rules });
  }
  return grants;
}

/** The directory a pod of service account ns/name mounts at SA_MOUNT. */
export function serviceAccountDir(lab: string, ns: string, name: string): string {
  return join(kubeDir(lab), "serviceaccounts", ns, name);
}

/** Sets up the control plane and starts the API server process; resolves once it answers. */
export async function startControlPlane(s: LabState, objects: KubeObject[]): Promise<void> {
  const dir = kubeDir(s.name);
  // The lab's control plane: keys, tokens and who may do what. Root's alone.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (!existsSync(join(dir, "ca.crt"))) makePki(dir);
  for (const key of ["ca.key", "server.key"]) chmodSync(join(dir, key), 0o600);
  writeFileSync(join(dir, "grants.json"), JSON.stringify(grantsFor(s.name, objects)) + "\n", { mode: 0o600 });
  s.kube = { apiPid: spawnInNetns(netnsPath(s.underlayNs), [gauzeExecutable(), "lab", "apiserver", "--name", s.name], join(dir, "apiserver.log")) };
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      await admin(s.name, "GET", "/healthz");
      return;
    } catch (e) {
      if (Date.now() > until) throw new Error(`the lab's API server did not start: ${(e as Error).message} (log: ${join(dir, "apiserver.log")})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export async function stopControlPlane(s: LabState): Promise<void> {
  await stopProcess(s.kube?.apiPid, 1000);
}

export function controlPlaneRunning(s: LabState): boolean {
  return isOurProcess(s.kube?.apiPid);
}

/** The lab CLI's way in: HTTP over the API server's admin socket (no network, no token). */
async function admin(lab: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`http://lab${path}`, { method, unix: adminSocket(lab), ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}) } as RequestInit);
  if (!r.ok) throw new Error(`lab API server: ${method} ${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

/** A kubelet registering its Node, and the controller manager giving it the n-th /24 of the cluster CIDR. */
export async function registerNode(lab: string, name: string, internalIP: string, podCIDR: string): Promise<void> {
  await admin(lab, "PUT", `/admin/nodes/${encodeURIComponent(name)}`, { podCIDR, internalIP });
}

export async function deleteNode(lab: string, name: string): Promise<void> {
  await admin(lab, "DELETE", `/admin/nodes/${encodeURIComponent(name)}`);
}

export async function listNodes(lab: string): Promise<NodeObject[]> {
  return (await admin(lab, "GET", "/admin/nodes")) as NodeObject[];
}

/** `gauze lab apiserver`: the process itself (in the underlay namespace). */
export async function runApiServer(lab: string): Promise<void> {
  const dir = kubeDir(lab);
  const stateFile = join(dir, "nodes.json");
  let seed: NodeObject[] = [];
  let rv = 1001;
  try {
    const saved = JSON.parse(readFileSync(stateFile, "utf8")) as { resourceVersion: number; nodes: NodeObject[] };
    seed = saved.nodes;
    rv = saved.resourceVersion;
  } catch {
    // a fresh cluster
  }
  const api = new NodesApi(seed, rv);
  api.grants = JSON.parse(readFileSync(join(dir, "grants.json"), "utf8")) as Grant[];
  api.onChange = () => {
    writeAtomic(stateFile, JSON.stringify({ resourceVersion: api.resourceVersion, nodes: [...api.nodes.values()] }));
  };
  const url = await api.listen({ host: API_HOST, port: API_PORT, tls: { cert: readFileSync(join(dir, "server.crt")), key: readFileSync(join(dir, "server.key")) } });
  rmSync(adminSocket(lab), { force: true });
  const adminServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const send = (code: number, body: unknown) => { res.writeHead(code, { "content-type": "application/json" }); res.end(JSON.stringify(body)); };
      const m = /^\/admin\/nodes\/([^/]+)$/.exec(req.url ?? "");
      try {
        if (req.url === "/healthz") return send(200, { ok: true, url });
        if (req.url === "/admin/nodes" && req.method === "GET") return send(200, [...api.nodes.values()]);
        if (m && req.method === "PUT") {
          const b = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { podCIDR?: string; internalIP?: string };
          return send(200, api.putNode(decodeURIComponent(m[1]!), { ...(b.podCIDR ? { podCIDR: b.podCIDR } : {}), ...(b.internalIP ? { internalIP: b.internalIP } : {}) }));
        }
        if (m && req.method === "DELETE") { api.deleteNode(decodeURIComponent(m[1]!)); return send(200, {}); }
        send(404, { error: "not found" });
      } catch (e) {
        send(400, { error: (e as Error).message });
      }
    });
  });
  await new Promise<void>((r) => adminServer.listen(adminSocket(lab), () => r()));
  process.stderr.write(`lab API server for ${lab} on ${url}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  api.close();
  adminServer.close();
}
