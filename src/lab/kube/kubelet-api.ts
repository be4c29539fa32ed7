// The kubelet's side of the lab's API in manifest mode, run inside the API server process
// (cluster.ts): the manifest's DaemonSet and its pods as the API shows them (each node's pod
// with spec.nodeName, hostNetwork, the template's labels and containers; status Running and Ready
// while its containers run, the DaemonSet's rollout counts), kept each second from the lab's
// state and podman's list as a kubelet reports; and pods/exec into those pods' containers with
// `podman exec`, as kubelet hands exec to the container runtime.
//
// kubelet.ts runs the pods; this file must not import it (kubelet.ts imports cluster.ts, which
// starts this), so the podman store's paths are repeated here: the same as kubelet.ts:podmanStore.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runAsync, startInteractive } from "../../kernel/spawn.ts";
import { podmanArgs } from "../../deploy/image.ts";
import { parseManifest } from "../../deploy/manifest.ts";
import { labDir, loadLab, type LabState } from "../state.ts";
import type { KubeApi, KubeObject } from "./apiserver.ts";
import { timestamp } from "./apiserver.ts";
import { deepEqual } from "./patch.ts";
import type { Execer } from "./exec.ts";
import { status } from "./rbac.ts";

/** How often the pods' status is reported (kubelet's status updates come about this often). */
const SYNC_MS = 1000;

function podmanBase(lab: string): { argv: string[]; env: Record<string, string | undefined> } {
  const root = join(labDir(lab), "podman");
  return { argv: ["podman", ...podmanArgs({ root: join(root, "root"), runroot: join(root, "run") })], env: { ...process.env, CONTAINERS_CONF: join(root, "containers.conf") } };
}

const containerName = (lab: string, node: string, c: string) => `gz-${lab}-${node}-${c}`.slice(0, 120);

interface Template { metadata?: { labels?: Record<string, string> }; spec?: { serviceAccountName?: string; containers?: { name: string; image: string }[] } }

/** The DaemonSet as the manifest file has it now (undefined when it cannot be read). */
function daemonSetOf(s: LabState): KubeObject | undefined {
  try {
    return parseManifest(readFileSync(s.manifest!.file, "utf8"), s.manifest!.file).find((o) => o.kind === "DaemonSet" && o.metadata.name === s.manifest!.daemonSet) as KubeObject | undefined;
  } catch {
    return undefined;
  }
}

/** Writes `o` when it differs from what the store has (no new resourceVersion for nothing). */
function putIfChanged(api: KubeApi, resource: string, o: KubeObject): void {
  const cur = api.store.get(resource, o.metadata.namespace, o.metadata.name);
  const keep = cur ? { ...o, metadata: { ...o.metadata, uid: cur.metadata.uid, creationTimestamp: cur.metadata.creationTimestamp, resourceVersion: cur.metadata.resourceVersion } } : o;
  if (cur && deepEqual(keep.spec, cur.spec) && deepEqual(keep.status, cur.status) && deepEqual(keep.metadata.labels, cur.metadata.labels)) return;
  api.store.put(resource, keep);
}

/** One report: the DaemonSet and each node's pod, from the lab's state and the running containers. */
export function syncDaemonPods(api: KubeApi, s: LabState, running: Set<string>): void {
  if (!s.manifest) return;
  const ns = s.manifest.namespace;
  const ds = daemonSetOf(s);
  const t = ((ds?.spec as { template?: Template } | undefined)?.template ?? {}) as Template;
  const dsUid = `lab-ds-${s.name}-${s.manifest.daemonSet}`;
  const want = new Set<string>();
  let ready = 0, updated = 0, current = 0;
  for (const n of s.nodes) {
    if (!n.pod) continue;
    current++;
    want.add(n.pod.name);
    const containers = (t.spec?.containers ?? []).map((c) => ({ name: c.name, up: running.has(containerName(s.name, n.name, c.name)), image: c.image === s.manifest!.image ? n.pod!.image : c.image }));
    const isReady = containers.length > 0 && containers.every((c) => c.up);
    if (isReady) ready++;
    if (n.pod.image === s.manifest.image) updated++;
    putIfChanged(api, "pods", {
      apiVersion: "v1", kind: "Pod",
      metadata: { name: n.pod.name, namespace: ns, uid: `lab-pod-${s.name}-${n.pod.name}`, creationTimestamp: n.pod.startedAt.replace(/\.\d{3}Z$/, "Z"), labels: t.metadata?.labels ?? {},
        ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: s.manifest.daemonSet, uid: dsUid, controller: true }] },
      spec: { nodeName: n.name, hostNetwork: true, ...(t.spec?.serviceAccountName ? { serviceAccountName: t.spec.serviceAccountName } : {}), containers: containers.map((c) => ({ name: c.name, image: c.image })) },
      status: {
        phase: isReady ? "Running" : "Pending", hostIP: n.ip, hostIPs: [{ ip: n.ip }], podIP: n.ip, podIPs: [{ ip: n.ip }], startTime: n.pod.startedAt.replace(/\.\d{3}Z$/, "Z"),
        conditions: [{ type: "PodScheduled", status: "True" }, { type: "Ready", status: isReady ? "True" : "False", ...(isReady ? {} : { reason: "ContainersNotReady", message: `containers with unready status: [${containers.filter((c) => !c.up).map((c) => c.name).join(" ")}]` }) }],
        containerStatuses: containers.map((c) => ({ name: c.name, image: c.image, ready: c.up, started: c.up, restartCount: 0, state: c.up ? { running: { startedAt: n.pod!.startedAt.replace(/\.\d{3}Z$/, "Z") } } : { terminated: { reason: "Error", exitCode: 137 } } })),
      },
    });
  }
  // A node removed, or its pod deleted: its Pod goes, as the DaemonSet controller deletes it.
  for (const p of api.store.list("pods", ns)) {
    const owner = (p.metadata as { ownerReferences?: { uid?: string }[] }).ownerReferences?.[0]?.uid;
    if (owner === dsUid && !want.has(p.metadata.name)) api.store.remove("pods", ns, p.metadata.name);
  }
  if (!ds) return;
  putIfChanged(api, "daemonsets", {
    ...ds, metadata: { ...ds.metadata, namespace: ns, uid: dsUid, creationTimestamp: timestamp(), generation: 1 },
    status: { desiredNumberScheduled: s.nodes.length, currentNumberScheduled: current, numberReady: ready, updatedNumberScheduled: updated, numberAvailable: ready, numberUnavailable: s.nodes.length - ready, numberMisscheduled: 0, observedGeneration: 1 },
  });
}

/** Reports every SYNC_MS until stopped; labs without a manifest have nothing to report. */
export function startKubelets(api: KubeApi, lab: string): () => void {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const s = loadLab(lab);
      if (!s.manifest) return;
      const b = podmanBase(lab);
      const r = await runAsync([...b.argv, "ps", "--format", "{{.Names}}"], { env: b.env, timeoutMs: 10_000 });
      if (r.status !== 0) return; // podman busy or gone: the last report stands
      syncDaemonPods(api, s, new Set(r.stdout.split("\n").map((x) => x.trim()).filter(Boolean)));
    } catch {
      // the lab is being removed: nothing to report
    } finally {
      busy = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), SYNC_MS);
  return () => clearInterval(timer);
}

/** pods/exec for the DaemonSet's pods: `podman exec` in the container; other pods have no runtime here. */
export function labExecer(api: KubeApi, lab: string): Execer {
  return async (r) => {
    const s = loadLab(lab);
    const n = s.manifest && r.namespace === s.manifest.namespace ? s.nodes.find((x) => x.pod?.name === r.pod) : undefined;
    if (!n?.pod) return status(400, "BadRequest", `pod ${r.pod} in namespace ${r.namespace} is not one of the DaemonSet's: the lab execs only into the manifest's pods (gauze lab exec runs commands in lab pods)`);
    const pod = api.store.get("pods", r.namespace, r.pod) as (KubeObject & { spec?: { containers?: { name: string }[] }; status?: { containerStatuses?: { name: string; ready?: boolean }[] } }) | undefined;
    const names = pod?.spec?.containers?.map((c) => c.name) ?? [];
    const c = r.container ?? names[0];
    if (!c || !names.includes(c)) return status(400, "BadRequest", `container ${c ?? ""} is not valid for pod ${r.pod}`);
    const cname = containerName(lab, n.name, c);
    if (!n.pod.containers.includes(cname)) return status(500, "InternalError", `unable to upgrade connection: container not found (${JSON.stringify(c)})`);
    if (pod?.status?.containerStatuses?.find((x) => x.name === c)?.ready === false) return status(500, "InternalError", `unable to upgrade connection: container not found (${JSON.stringify(c)}): it is not running`);
    const b = podmanBase(lab);
    return () => {
      const child = startInteractive([...b.argv, "exec", ...(r.stdin ? ["-i"] : []), cname, ...r.command], { env: b.env });
      const exited = new Promise<number | { error: string }>((res) => {
        child.on("error", (e) => res({ error: `podman exec: ${e.message}` }));
        child.on("close", (code) => res(code ?? 137));
      });
      if (!r.stdin) child.stdin.end();
      return { stdout: child.stdout, stderr: child.stderr, stdin: child.stdin, exited, kill: () => { if (child.exitCode === null) child.kill("SIGTERM"); } };
    };
  };
}
