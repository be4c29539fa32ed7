// Manifest mode: the lab plays the kubelet for the manifest's DaemonSet on every node. It runs
// the pod template as written, with podman: the init containers in order, then the containers,
// inside the node's network namespace (hostNetwork), with the template's command, args, env
// (the downward API's spec.nodeName and friends included), capabilities, and hostPath volumes
// mapped onto the node's own tree; ConfigMap volumes and the service-account token mounted as
// kubelet mounts them. Readiness comes from the template's own probes. Change the manifest, and
// the lab runs the change.
//
// What is not played: resource requests and limits (cgroups here are a v1 hybrid without the
// controllers), liveness restarts (no daemon watches the probes; `lab status` runs them),
// scheduling (one pod per node, as a DaemonSet with tolerations for everything places them).
import { existsSync, mkdirSync, readFileSync, writeFileSync, closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { gauzeExecutable, runSync } from "../../kernel/spawn.ts";
import { netnsPath } from "../../kernel/netns.ts";
import { ManifestError, parseManifest, type KubeObject } from "../../deploy/manifest.ts";
import { buildImage, podmanArgs, type PodmanStore } from "../../deploy/image.ts";
import { API_HOST, API_PORT, SA_MOUNT, kubeDir, serviceAccountDir } from "./cluster.ts";
import { labDir, type DaemonPod, type LabNode, type LabState } from "../state.ts";

interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }
interface Mount { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }
interface HttpProbe { httpGet?: { host?: string; path?: string; port?: number | string; scheme?: string }; periodSeconds?: number; initialDelaySeconds?: number; timeoutSeconds?: number }
interface Container {
  name: string; image: string; command?: string[]; args?: string[]; env?: EnvVar[]; volumeMounts?: Mount[];
  securityContext?: { privileged?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { add?: string[]; drop?: string[] }; seccompProfile?: { type: string } };
  readinessProbe?: HttpProbe; livenessProbe?: HttpProbe;
}
interface Volume { name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string } }
export interface PodTemplate {
  hostNetwork?: boolean; serviceAccountName?: string; automountServiceAccountToken?: boolean; terminationGracePeriodSeconds?: number;
  initContainers?: Container[]; containers: Container[]; volumes?: Volume[];
}

export interface Manifest {
  objects: KubeObject[];
  daemonSet: KubeObject & { spec: { template: { spec: PodTemplate } } };
  configMaps: Map<string, Record<string, string>>;
  /** The agent container's net-conf.json, from its ConfigMap. */
  netConf?: { Network?: string; Backend?: { Type?: string } };
}

/** Reads and checks a manifest for what the lab can run: one DaemonSet on the host network. */
export function loadManifest(file: string): Manifest {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ManifestError(`cannot read the manifest ${file}: ${(e as Error).message}`);
  }
  return manifestOf(parseManifest(text, file), file);
}

export function manifestOf(objects: KubeObject[], file: string): Manifest {
  const sets = objects.filter((o) => o.kind === "DaemonSet");
  if (sets.length !== 1) throw new ManifestError(`${file}: the lab runs a manifest with one DaemonSet; this one has ${sets.length}`);
  const ds = sets[0] as Manifest["daemonSet"];
  const t = ds.spec?.template?.spec;
  if (!t || !Array.isArray(t.containers) || t.containers.length === 0) throw new ManifestError(`${file}: DaemonSet ${ds.metadata.name} has no containers`);
  if (t.hostNetwork !== true) throw new ManifestError(`${file}: DaemonSet ${ds.metadata.name} is not hostNetwork: the lab runs node agents only`);
  const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, ((o as unknown as { data?: Record<string, string> }).data ?? {})]));
  const m: Manifest = { objects, daemonSet: ds, configMaps };
  for (const v of t.volumes ?? []) {
    const conf = v.configMap ? configMaps.get(v.configMap.name)?.["net-conf.json"] : undefined;
    if (conf) {
      try {
        m.netConf = JSON.parse(conf) as Manifest["netConf"];
      } catch (e) {
        throw new ManifestError(`${file}: ConfigMap ${v.configMap!.name}: net-conf.json is not JSON: ${(e as Error).message}`);
      }
    }
  }
  return m;
}

// ---- podman, with the lab's own storage ----

export function podmanStore(lab: string): PodmanStore {
  return { root: join(labDir(lab), "podman", "root"), runroot: join(labDir(lab), "podman", "run") };
}

/** containers.conf for this machine: lowered ulimits (no CAP_SYS_RESOURCE), cgroupfs, runc, file events. */
function containersConf(lab: string): string {
  const p = join(labDir(lab), "podman", "containers.conf");
  if (!existsSync(p)) {
    mkdirSync(join(labDir(lab), "podman"), { recursive: true });
    writeFileSync(p, ['[containers]', 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]', '[engine]', 'cgroup_manager = "cgroupfs"', 'runtime = "runc"', 'events_logger = "file"', ""].join("\n"));
  }
  return p;
}

/** The podman command line and environment that reach this lab's containers (`gauze lab podman`, `lab logs`). */
export function podmanInvocation(lab: string, args: string[]): { argv: string[]; env: Record<string, string> } {
  return { argv: ["podman", ...podmanArgs(podmanStore(lab)), ...args], env: { CONTAINERS_CONF: containersConf(lab) } };
}

export function podman(lab: string, args: string[], input?: string) {
  return runSync(["podman", ...podmanArgs(podmanStore(lab)), ...args], { env: { ...process.env, CONTAINERS_CONF: containersConf(lab) }, ...(input !== undefined ? { input } : {}) });
}

/**
 * Puts `ref` into the lab's storage: from podman's own storage when it is there (`npm run
 * image` built it), else, for a localhost/gauze image, built from this executable.
 */
export function ensureImage(lab: string, ref: string, progress: (l: string) => void): void {
  if (podman(lab, ["image", "exists", ref]).status === 0) return;
  if (runSync(["podman", "image", "exists", ref]).status === 0) {
    const tar = join(labDir(lab), "podman", "image.tar");
    const save = runSync(["podman", "save", "--quiet", "-o", tar, ref]);
    if (save.status !== 0) throw new Error(`podman save ${ref}: ${save.stderr.trim()}`);
    const load = podman(lab, ["load", "--quiet", "-i", tar]);
    runSync(["rm", "-f", tar]);
    if (load.status !== 0) throw new Error(`podman load ${ref}: ${load.stderr.trim()}`);
    progress(`image ${ref} copied from podman's storage into the lab's`);
    return;
  }
  if (!ref.startsWith("localhost/gauze:")) throw new Error(`image ${ref} is not in podman's storage and nothing can be pulled here: build or load it first`);
  const r = buildImage({ executable: gauzeExecutable(), tag: ref, store: podmanStore(lab) });
  progress(`image ${ref} built from ${gauzeExecutable()} (${(r.size / 1e6).toFixed(1)} MB)`);
}

// ---- one pod ----

/** The container-side value of the downward API fields a DaemonSet pod uses. */
function fieldValue(path: string | undefined, s: LabState, n: LabNode, pod: string): string {
  switch (path) {
    case "spec.nodeName": return n.name;
    case "metadata.name": return pod;
    case "metadata.namespace": return s.manifest!.namespace;
    case "status.hostIP": case "status.podIP": return n.ip; // hostNetwork: the pod's IP is the node's
    default: throw new ManifestError(`env fieldRef ${String(path)} is not one the lab fills in`);
  }
}

/**
 * A hostPath on the node is a path under the node's tree; made as its type says. The kernel's
 * own interfaces under /sys (tracefs) are the host's: the lab's nodes share one kernel.
 */
function hostDir(n: LabNode, v: Volume): string {
  // The host's pseudo filesystems, and the pod namespaces the lab pins in the host's /run/netns.
  if (v.hostPath!.path.startsWith("/sys/") || v.hostPath!.path === "/run/netns") {
    if (!existsSync(v.hostPath!.path)) throw new Error(`hostPath ${v.hostPath!.path} does not exist on this host`);
    return v.hostPath!.path;
  }
  const p = join(n.root, v.hostPath!.path);
  const type = v.hostPath!.type ?? "";
  if (type === "DirectoryOrCreate") mkdirSync(p, { recursive: true });
  else if (type === "FileOrCreate" && !existsSync(p)) { mkdirSync(join(p, ".."), { recursive: true }); closeSync(openSync(p, "a")); }
  else if ((type === "Directory" || type === "File") && !existsSync(p)) throw new Error(`hostPath ${v.hostPath!.path} (${type}) does not exist on ${n.name}`);
  return p;
}

function containerArgs(s: LabState, n: LabNode, t: PodTemplate, c: Container, pod: string, image: string, init: boolean): string[] {
  const cname = `gz-${s.name}-${n.name}-${c.name}`.slice(0, 120);
  const a = [init ? "--rm" : "-d", "--name", cname, "--network", `ns:${netnsPath(n.netns)}`, "--label", `gauze.lab=${s.name}`, "--label", `gauze.pod=${pod}`];
  if (!init) a.push("--restart", "always");
  const sc = c.securityContext ?? {};
  if (sc.privileged) a.push("--privileged");
  for (const cap of sc.capabilities?.drop ?? []) a.push("--cap-drop", cap);
  for (const cap of sc.capabilities?.add ?? []) a.push("--cap-add", cap);
  if (sc.allowPrivilegeEscalation === false) a.push("--security-opt", "no-new-privileges");
  // Kubelet runs a container that names no seccomp profile Unconfined (its default without
  // --seccomp-default); podman's own default would be RuntimeDefault, which on this podman lets
  // bpf() through only with CAP_SYS_ADMIN.
  if ((sc.seccompProfile?.type ?? "Unconfined") === "Unconfined") a.push("--security-opt", "seccomp=unconfined");
  // What kubelet puts in every pod's environment, then the container's own.
  a.push("-e", `KUBERNETES_SERVICE_HOST=${API_HOST}`, "-e", `KUBERNETES_SERVICE_PORT=${API_PORT}`);
  for (const e of c.env ?? []) a.push("-e", `${e.name}=${e.valueFrom ? fieldValue(e.valueFrom.fieldRef?.fieldPath, s, n, pod) : e.value ?? ""}`);
  const volumes = new Map((t.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (!v) throw new ManifestError(`container ${c.name} mounts ${m.name}, which no volume of the pod defines`);
    const src = v.hostPath ? hostDir(n, v) : v.configMap ? join(kubeDir(s.name), "configmaps", v.configMap.name) : undefined;
    if (!src) throw new ManifestError(`volume ${v.name}: the lab mounts hostPath and configMap volumes only`);
    // HostToContainer: mounts made on the host later (a new pod's namespace) show up inside.
    const opts = [...(m.readOnly || v.configMap ? ["ro"] : []), ...(m.mountPropagation === "HostToContainer" ? ["rslave"] : m.mountPropagation === "Bidirectional" ? ["rshared"] : [])];
    a.push("-v", `${src}:${m.mountPath}${opts.length ? `:${opts.join(",")}` : ""}`);
  }
  if (t.serviceAccountName && t.automountServiceAccountToken !== false) a.push("-v", `${serviceAccountDir(s.name, s.manifest!.namespace, t.serviceAccountName)}:${SA_MOUNT}:ro`);
  if (c.command) a.push("--entrypoint", JSON.stringify(c.command));
  a.push(image, ...(c.args ?? []));
  return a;
}

/** Writes the manifest's ConfigMaps where pods mount them. */
export function writeConfigMaps(s: LabState, m: Manifest): void {
  for (const [name, data] of m.configMaps) {
    const dir = join(kubeDir(s.name), "configmaps", name);
    mkdirSync(dir, { recursive: true });
    for (const [k, v] of Object.entries(data)) writeFileSync(join(dir, k), v);
  }
}

/** Runs the DaemonSet's pod on `n`: init containers to completion, then the containers. */
export function runDaemonPod(s: LabState, n: LabNode, image: string): DaemonPod {
  return runPod(s, n, loadManifest(s.manifest!.file), image);
}

/** Runs `m`'s DaemonSet pod on `n` (the manifest the lab runs, or another one such as the uninstall DaemonSet). */
export function runPod(s: LabState, n: LabNode, m: Manifest, image: string): DaemonPod {
  const t = m.daemonSet.spec.template.spec;
  const pod = `${m.daemonSet.metadata.name}-${n.name}`;
  const imageOf = (c: Container) => (c.image === s.manifest!.image || c.image === image ? image : c.image);
  for (const c of t.initContainers ?? []) {
    const r = podman(s.name, ["run", ...containerArgs(s, n, t, c, pod, imageOf(c), true)]);
    if (r.status !== 0) throw new Error(`pod ${pod}: init container ${c.name} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim()}`);
  }
  const containers: string[] = [];
  for (const c of t.containers) {
    const r = podman(s.name, ["run", ...containerArgs(s, n, t, c, pod, imageOf(c), false)]);
    if (r.status !== 0) throw new Error(`pod ${pod}: container ${c.name} did not start: ${(r.stderr || r.stdout).trim()}`);
    containers.push(`gz-${s.name}-${n.name}-${c.name}`.slice(0, 120));
  }
  return { name: pod, image, containers, startedAt: new Date().toISOString() };
}

/** Deletes the pod: SIGTERM, then SIGKILL after the grace period, as kubelet does. */
export function stopDaemonPod(s: LabState, n: LabNode): void {
  if (!n.pod) return;
  const grace = String(loadManifestSafe(s)?.daemonSet.spec.template.spec.terminationGracePeriodSeconds ?? 30);
  for (const c of n.pod.containers) podman(s.name, ["rm", "-f", "-t", grace, c]);
  n.pod = undefined;
}

function loadManifestSafe(s: LabState): Manifest | undefined {
  try {
    return loadManifest(s.manifest!.file);
  } catch {
    return undefined;
  }
}

/** The pod's readiness: every container's readinessProbe (httpGet) answers 2xx from inside the node. */
export function podReady(s: LabState, n: LabNode): { ready: boolean; reason: string } {
  if (!n.pod) return { ready: false, reason: "no pod" };
  const t = loadManifest(s.manifest!.file).daemonSet.spec.template.spec;
  for (const c of t.containers) {
    const g = c.readinessProbe?.httpGet;
    if (!g) continue;
    const url = `${(g.scheme ?? "HTTP").toLowerCase()}://${g.host ?? n.ip}:${g.port}${g.path ?? "/"}`;
    const r = runSync([gauzeExecutable(), "lab", "http-get", url, "--timeout", String((c.readinessProbe?.timeoutSeconds ?? 1) * 1000)], { netns: netnsPath(n.netns) });
    if (r.status !== 0) return { ready: false, reason: `readiness probe ${url}: ${(r.stdout || r.stderr).trim().split("\n")[0] || `exit ${r.status}`}` };
  }
  return { ready: true, reason: "" };
}

export async function waitPodReady(s: LabState, nodes: LabNode[], timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const waiting = nodes.map((n) => ({ n, r: podReady(s, n) })).filter((x) => !x.r.ready);
    if (!waiting.length) return;
    if (Date.now() > until) throw new Error(`pods not ready after ${timeoutMs / 1000} s: ${waiting.map((w) => `${w.n.pod?.name ?? w.n.name}: ${w.r.reason}`).join("; ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A container's output so far (stdout and stderr). */
export function containerLogs(lab: string, name: string): string {
  const r = podman(lab, ["logs", name]);
  return r.stdout + r.stderr;
}

/** Which of the lab's containers podman runs now (one call for the whole lab). */
export function runningContainers(lab: string): Set<string> {
  const r = podman(lab, ["ps", "--format", "{{.Names}}"]);
  return new Set(r.status === 0 ? r.stdout.split("\n").map((x) => x.trim()).filter(Boolean) : []);
}

/** Everything podman holds for the lab: containers, images, storage (called by lab down). */
export function removePodmanState(lab: string): void {
  if (!existsSync(join(labDir(lab), "podman"))) return;
  podman(lab, ["rm", "-a", "-f", "-t", "0"]);
  podman(lab, ["rmi", "-a", "-f"]);
}
