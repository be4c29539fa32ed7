// The lab's control plane, for every lab: its credentials (credentials.ts), the API server
// (apiserver.ts) as a process of its own with its objects persisted under <labdir>/kube (one
// <resource>.json each), listening on https://172.18.0.1:6443 in the underlay namespace (where
// every node reaches it) and on https://127.0.0.1:<free port> in this host's namespace (where
// kubectl with the admin kubeconfig reaches it: loopback only, TLS and a token), with an admin
// socket for the lab CLI; and the controller manager's parts the lab plays: Nodes with a podCIDR,
// the namespaces every cluster starts with, each namespace's default service account; and in
// manifest mode the kubelets' reports of the DaemonSet's pods and their pods/exec (kubelet-api.ts).
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { gauzeExecutable } from "../../kernel/spawn.ts";
import { inNetns, netnsPath } from "../../kernel/netns.ts";
import { writeAtomic } from "../../kernel/files.ts";
import type { KubeObject as ManifestObject } from "../../deploy/manifest.ts";
import { KubeApi, type KubeObject, NAMESPACE_NAME_LABEL, type NodeCondition, type NodeObject, timestamp } from "./apiserver.ts";
import type { Grant } from "./rbac.ts";
import { RESOURCES, resourceOfKind } from "./resources.ts";
import { API_HOST, API_PORT, AGENT_ACCOUNT, ADMIN_USER, LAB_USERS, adminKubeconfig, agentKubeconfig, kubeDir, makeCredentials, userKubeconfig, writeKubeconfig } from "./credentials.ts";
import { adminSocket, kubeCall } from "./client.ts";
import { loadLab, type LabState } from "../state.ts";
import { apiServerRunning, processEnded, spawnInNetns, stopApiServer } from "../processes.ts";
import { labExecer, startKubelets } from "./kubelet-api.ts";

export { API_HOST, API_PORT, kubeDir, serviceAccountDir, adminKubeconfig, agentKubeconfig } from "./credentials.ts";
/** Where kubelet mounts a pod's service-account token. */
export const SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * Starts the API server process (the PKI made already: credentials.ts:makePki); resolves once it
 * answers, with the admin kubeconfig written (and the agents' one, when the lab starts agents).
 */
export async function startControlPlane(s: LabState, manifest?: ManifestObject[]): Promise<void> {
  const dir = kubeDir(s.name);
  const creds = makeCredentials(s.name, manifest);
  // What the cluster holds from the start besides the namespaces every cluster has: the manifest's namespaces and accounts, or the agents' account.
  const seed = manifest ? manifest.filter((o) => o.kind === "Namespace" || o.kind === "ServiceAccount")
    : [{ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: AGENT_ACCOUNT.name, namespace: AGENT_ACCOUNT.namespace } }];
  writeAtomic(join(dir, "seed.json"), JSON.stringify(seed) + "\n", 0o600);
  if (creds.agentToken) writeKubeconfig(agentKubeconfig(s.name), s.name, { server: `https://${API_HOST}:${API_PORT}`, user: `${AGENT_ACCOUNT.name}`, token: creds.agentToken });
  // Started in this namespace: it opens its underlay listener from inside the underlay namespace.
  s.kube = { apiPid: spawnInNetns(undefined, [gauzeExecutable(), "lab", "apiserver", "--name", s.name], join(dir, "apiserver.log")) };
  // A loaded host (several labs starting at once) can take seconds to start a bun process.
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      const h = await kubeCall(s.name, "GET", "/admin/healthz") as { local: string };
      s.kube.local = h.local;
      writeKubeconfig(adminKubeconfig(s.name), s.name, { server: h.local, user: ADMIN_USER, token: creds.adminToken });
      for (const u of LAB_USERS) writeKubeconfig(userKubeconfig(s.name, u), s.name, { server: h.local, user: u, token: creds.userTokens[u] });
      return;
    } catch (e) {
      // Ended, not "not ours": until it has exec'd, the new process runs this CLI's command line.
      if (Date.now() > until || processEnded(s.kube.apiPid)) {
        // Its last words, since the lab (and the log with it) may be gone by the time anyone looks.
        let tail = "";
        try { tail = readFileSync(join(dir, "apiserver.log"), "utf8").trim().split("\n").slice(-4).join(" | "); } catch { /* no log */ }
        const died = processEnded(s.kube.apiPid) ? ", and its process has exited" : "";
        throw new Error(`the lab's API server did not start: ${(e as Error).message}${died} (log: ${join(dir, "apiserver.log")}${tail ? `: ${tail}` : ""})`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export async function stopControlPlane(s: LabState): Promise<void> {
  await stopApiServer(s.name, s.kube?.apiPid);
}

export function controlPlaneRunning(s: LabState): boolean {
  return apiServerRunning(s.name, s.kube?.apiPid);
}

/** A kubelet registering its Node (or updating it), and the controller manager giving it a podCIDR. */
export async function registerNode(lab: string, name: string, internalIP: string, podCIDR: string, more: { podCIDR6?: string; labels?: Record<string, string>; conditions?: NodeCondition[]; nodeInfo?: Record<string, string> } = {}): Promise<void> {
  await kubeCall(lab, "PUT", `/admin/nodes/${encodeURIComponent(name)}`, { podCIDR, internalIP, ...more });
}

export async function deleteNode(lab: string, name: string): Promise<void> {
  await kubeCall(lab, "DELETE", `/admin/nodes/${encodeURIComponent(name)}`);
}

export async function listNodes(lab: string): Promise<NodeObject[]> {
  return (await kubeCall(lab, "GET", "/admin/nodes")) as NodeObject[];
}

const stateFile = (lab: string, resource: string) => join(kubeDir(lab), `${resource}.json`);

/** The namespaces a fresh cluster has, each with its default account, and what the lab seeds. */
function freshCluster(api: KubeApi, seed: ManifestObject[]): void {
  const now = timestamp();
  const put = (o: KubeObject) => { const r = resourceOfKind(o.apiVersion, o.kind); if (r) api.store.seed(r.resource, { ...o, metadata: { ...o.metadata, uid: randomUUID(), creationTimestamp: now, resourceVersion: String(api.resourceVersion) } }); };
  const names = new Set(["default", "kube-system", "kube-public", ...seed.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name)]);
  for (const ns of names) {
    const given = seed.find((o) => o.kind === "Namespace" && o.metadata.name === ns);
    put({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: { ...(given?.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: ns } }, spec: { finalizers: ["kubernetes"] }, status: { phase: "Active" } });
    put({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: ns } });
  }
  for (const o of seed.filter((x) => x.kind === "ServiceAccount")) put(o as KubeObject);
}

/** `gauze lab apiserver`: the process itself. */
export async function runApiServer(lab: string): Promise<void> {
  const dir = kubeDir(lab);
  const s = loadLab(lab);
  let rv = 1001;
  const saved = RESOURCES.map((r) => {
    try {
      const j = JSON.parse(readFileSync(stateFile(lab, r.resource), "utf8")) as Record<string, unknown> & { resourceVersion: number };
      rv = Math.max(rv, j.resourceVersion);
      return j[r.resource] as KubeObject[];
    } catch {
      return [];
    }
  });
  const fresh = !RESOURCES.some((r) => existsSync(stateFile(lab, r.resource)));
  const api = new KubeApi(saved.flat(), rv);
  if (fresh) freshCluster(api, JSON.parse(readFileSync(join(dir, "seed.json"), "utf8")) as ManifestObject[]);
  api.grants = JSON.parse(readFileSync(join(dir, "grants.json"), "utf8")) as Grant[];
  api.serverAddress = `${API_HOST}:${API_PORT}`;
  const persist = (resource: string) => writeAtomic(stateFile(lab, resource), JSON.stringify({ resourceVersion: api.resourceVersion, [resource]: api.store.list(resource) }));
  if (fresh) for (const r of RESOURCES) persist(r.resource);
  api.onChange = persist;
  // Manifest mode: the DaemonSet's pods reported and exec'd into as kubelets would.
  api.exec = labExecer(api, lab);
  const stopKubelets = startKubelets(api, lab);
  const tls = { cert: readFileSync(join(dir, "server.crt")), key: readFileSync(join(dir, "server.key")) };
  // listen() opens its socket before it returns: opened while this thread is in the underlay namespace, it belongs there.
  const url = await inNetns(netnsPath(s.underlayNs), () => api.listen({ host: API_HOST, port: API_PORT, tls }));
  const local = await api.listen({ host: "127.0.0.1", port: 0, tls });
  rmSync(adminSocket(lab), { force: true });
  const adminServer = createServer((req, res) => {
    const send = (code: number, body: unknown) => { res.writeHead(code, { "content-type": "application/json" }); res.end(JSON.stringify(body)); };
    const path = req.url ?? "";
    if (!path.startsWith("/admin/")) return api.handleTrusted(req, res);
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const m = /^\/admin\/nodes\/([^/]+)$/.exec(path);
      try {
        if (path === "/admin/healthz") return send(200, { ok: true, url, local });
        if (path === "/admin/nodes" && req.method === "GET") return send(200, [...api.nodes.values()]);
        if (path === "/admin/requests" && req.method === "GET") return send(200, Object.fromEntries(api.requestCounts));
        if (m && req.method === "PUT") {
          const b = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Parameters<KubeApi["putNode"]>[1];
          return send(200, api.putNode(decodeURIComponent(m[1]!), { ...b, ...(b.podCIDR ? {} : { podCIDR: undefined }) }));
        }
        if (m && req.method === "DELETE") { api.deleteNode(decodeURIComponent(m[1]!)); return send(200, {}); }
        send(404, { error: "not found" });
      } catch (e) {
        send(400, { error: (e as Error).message });
      }
    });
  });
  await new Promise<void>((r) => adminServer.listen(adminSocket(lab), () => r()));
  process.stderr.write(`lab API server for ${lab} on ${url} (nodes) and ${local} (this host, for kubectl)\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  stopKubelets();
  api.close();
  adminServer.close();
}
