// The lab's pods: a network namespace each, in any Kubernetes namespace, set up by the node's
// runtime stand-in with the real plugin, retried while the node is not ready as kubelet retries a
// sandbox, torn down with a CNI DEL, and mirrored into the lab's API as Pods (kube/mirror.ts); a
// Pod deleted through the API (kubectl delete) is torn down at the next refresh, as kubelet would.
// The lab's "images": nginx runs gauze's HTTP server on :80, agnhost serves every declared port on
// TCP and UDP (as the upstream NetworkPolicy suite's pods do), netshoot is a namespace to exec into.
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { gauzeExecutable, runSync } from "../kernel/spawn.ts";
import { addNetns, delNetns, netnsPath } from "../kernel/netns.ts";
import { isNamespaceName } from "../util/text.ts";
import { nodePaths } from "../node/paths.ts";
import { get } from "../observe/client.ts";
import { RuntimeError, addPod, delPod, loadNetwork, runtimeFor } from "./runtime.ts";
import { spawnInNetns, stopPodServer } from "./processes.ts";
import { mirrorPodCreate, mirrorPodDelete, mirrorPodStatus, podsInApi } from "./kube/mirror.ts";
import { type LabImage, type LabNode, type LabPod, type LabState, type PodPort, findNode, findPod, labDir, podLabel, podNamespace, podNetnsName, podServerName, withLab } from "./state.ts";

function podRef(p: LabPod) {
  return { name: p.name, namespace: podNamespace(p), uid: p.uid, containerId: p.containerId, netns: p.netns };
}

/** The ports upstream's agnhost pods serve (netpol e2e): 80 and 81, TCP and UDP. */
export const AGNHOST_PORTS: PodPort[] = [
  { name: "serve-80-tcp", containerPort: 80, protocol: "TCP" }, { name: "serve-80-udp", containerPort: 80, protocol: "UDP" },
  { name: "serve-81-tcp", containerPort: 81, protocol: "TCP" }, { name: "serve-81-udp", containerPort: 81, protocol: "UDP" },
];

const formatPorts = (ports: PodPort[]) => ports.map((x) => `${x.name ?? ""}:${x.containerPort}/${x.protocol}`).join(",");

/** `name:80/TCP,81/UDP,...` (name optional, protocol TCP when left out), checked as the API checks container ports. */
export function parsePorts(text: string): PodPort[] {
  return text.split(",").map((t) => t.trim()).filter(Boolean).map((t) => {
    const m = /^(?:([a-z0-9-]{1,15}):)?(\d{1,5})(?:\/(TCP|UDP|SCTP))?$/i.exec(t);
    const port = Number(m?.[2]);
    if (!m || !(port >= 1 && port <= 65535) || (m[1] && !/^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(m[1]))) throw new Error(`--ports ${JSON.stringify(t)}: write name:port/PROTOCOL, e.g. serve-80-tcp:80/TCP (a name of up to 15 lowercase letters, digits and '-', with a letter; a port 1-65535; TCP, UDP or SCTP)`);
    return { ...(m[1] ? { name: m[1] } : {}), containerPort: port, protocol: (m[3] ?? "TCP").toUpperCase() as PodPort["protocol"] };
  });
}

/** `k=v,k2=v2` as labels (checked as the API checks label keys and values). */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of text.split(",").map((x) => x.trim()).filter(Boolean)) {
    const i = t.indexOf("=");
    const [k, v] = i < 0 ? [t, undefined] : [t.slice(0, i), t.slice(i + 1)];
    const bad = v === undefined ? `${JSON.stringify(t)} has no value (k=v)` : labelKeyError(k) ?? labelValueError(v);
    if (bad) throw new Error(`label ${bad}`);
    out[k] = v!;
  }
  return out;
}

const NAME = /^[a-z0-9A-Z]([-a-z0-9A-Z_.]{0,61}[a-z0-9A-Z])?$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function labelKeyError(k: string): string | undefined {
  const i = k.lastIndexOf("/");
  const [prefix, name] = i < 0 ? [undefined, k] : [k.slice(0, i), k.slice(i + 1)];
  if (prefix !== undefined && (prefix.length > 253 || !PREFIX.test(prefix))) return `key ${JSON.stringify(k)}: the prefix must be a DNS subdomain`;
  if (!NAME.test(name)) return `key ${JSON.stringify(k)}: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  return undefined;
}

export function labelValueError(v: string): string | undefined {
  return v === "" || NAME.test(v) ? undefined : `value ${JSON.stringify(v)}: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (or empty)`;
}

const podLog = (s: LabState, p: LabPod) => join(labDir(s.name), "pods", `${podNamespace(p) === "default" ? p.name : `${podNamespace(p)}.${p.name}`}.log`);

/** One sandbox set-up attempt, as kubelet makes them: Running, or ContainerCreating with the reason. */
function trySetUp(s: LabState, p: LabPod): void {
  const n = findNode(s, p.node);
  const rt = runtimeFor(n);
  try {
    loadNetwork(rt);
  } catch (e) {
    p.phase = "Pending";
    p.reason = `node ${n.name} is NotReady: ${(e as Error).message}`;
    return;
  }
  try {
    const { result } = addPod(rt, podRef(p));
    const ips = (result.ips as { address: string }[] | undefined) ?? [];
    p.ip = ips.find((i) => !i.address.includes(":"))?.address.split("/")[0];
    const ip6 = ips.find((i) => i.address.includes(":"))?.address.split("/")[0];
    if (ip6) p.ip6 = ip6;
    p.phase = "Running";
    delete p.reason;
    if (p.image === "nginx" && !p.serverPid) {
      p.serverPid = spawnInNetns(netnsPath(p.netns), [gauzeExecutable(), "lab", "serve-http", "--port", "80", "--pod", podServerName(p)], podLog(s, p));
    }
    if (p.image === "agnhost" && !p.serverPid && p.ports?.length) {
      p.serverPid = spawnInNetns(netnsPath(p.netns), [gauzeExecutable(), "lab", "serve-ports", "--ports", formatPorts(p.ports), "--pod", podServerName(p)], podLog(s, p));
    }
  } catch (e) {
    if (!(e instanceof RuntimeError)) throw e;
    p.phase = "ContainerCreating";
    p.reason = `Failed to create pod sandbox: ${e.message}`;
  }
}

const POD_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export interface PodRunOptions {
  namespace?: string;
  labels?: Record<string, string>;
  /** The container's ports; agnhost serves each (default: AGNHOST_PORTS), nginx declares 80/TCP. */
  ports?: PodPort[];
}

export async function podRun(lab: string, name: string, node: string, image: LabImage, o: PodRunOptions = {}): Promise<LabPod> {
  if (!POD_NAME.test(name)) throw new Error(`pod name ${JSON.stringify(name)}: use lowercase letters, digits and '-' (up to 32)`);
  const namespace = o.namespace ?? "default";
  if (!isNamespaceName(namespace)) throw new Error(`namespace ${JSON.stringify(namespace)}: use up to 63 lowercase letters, digits and '-'`);
  return withLab(lab, async (s) => {
    const label = namespace === "default" ? name : `${namespace}/${name}`;
    if (s.pods.some((p) => p.name === name && podNamespace(p) === namespace)) throw new Error(`pod ${label} exists already in lab ${lab}: gauze lab pod rm ${label} first`);
    const n = findNode(s, node);
    const ports = o.ports ?? (image === "agnhost" ? AGNHOST_PORTS : image === "nginx" ? [{ name: "http", containerPort: 80, protocol: "TCP" as const }] : []);
    const p: LabPod = {
      name, ...(namespace !== "default" ? { namespace } : {}), node: n.name, image, ...(o.labels && Object.keys(o.labels).length ? { labels: o.labels } : {}), ...(ports.length ? { ports } : {}),
      netns: podNetnsName(lab, namespace, name), containerId: randomBytes(32).toString("hex"), uid: randomUUID(), phase: "Pending",
    };
    if (s.pods.some((x) => x.netns === p.netns)) throw new Error(`pod ${label}: its namespace name ${p.netns} is taken (a hash collision): pick another name`);
    addNetns(p.netns);
    trySetUp(s, p);
    if (p.phase === "Running") await agentSeesPod(n);
    try {
      await mirrorPodCreate(s, p);
    } catch (e) {
      // The API could not be told: the pod is not made at all.
      await removeSandbox(s, p);
      throw e;
    }
    s.pods.push(p);
    return p;
  });
}

/**
 * As a kubelet's pod is running once its sandbox is, the node's agent may not yet have heard of
 * the pod's veth (a link event it reads when it next gets the CPU), and the pod's first packets
 * would go unobserved. Asking the agent for its pods makes it read the pod records and attach
 * to the new links first (a ping right after `lab pod run` once showed no hop past the far
 * node's bridge). An agent that does not answer is not waited for.
 */
async function agentSeesPod(n: LabNode): Promise<void> {
  await get({ node: n.name, socket: nodePaths(n.root).apiSocket }, "/v1/pods", 1000).catch(() => undefined);
}

export async function waitServing(p: LabPod, timeoutMs = 3000): Promise<void> {
  // The server binds its ports within a few ms of starting; probe from inside the pod.
  const tcp = p.image === "agnhost" ? p.ports?.find((x) => x.protocol === "TCP")?.containerPort : 80;
  if (tcp === undefined) return;
  const argv = p.image === "agnhost" ? [gauzeExecutable(), "lab", "probe-once", "--to", "127.0.0.1", "--port", String(tcp), "--protocol", "tcp", "--timeout", "300"]
    : [gauzeExecutable(), "lab", "http-get", "http://127.0.0.1:80/", "--timeout", "300"];
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = runSync(argv, { netns: netnsPath(p.netns) });
    if (r.status === 0) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`pod ${podLabel(p)}: its server did not come up on :${tcp}`);
}

/** Deletes the Pod from the API first (nothing changes if the API cannot be told), then the sandbox. */
export async function tearDownPod(s: LabState, p: LabPod): Promise<void> {
  await mirrorPodDelete(s, p);
  await removeSandbox(s, p);
}

async function removeSandbox(s: LabState, p: LabPod): Promise<void> {
  await stopPodServer(p.serverPid, podServerName(p), 500);
  const n = s.nodes.find((x) => x.name === p.node);
  if (n) {
    try {
      delPod(runtimeFor(n), podRef(p));
    } catch {
      // the namespace goes next; GC would catch leftovers in a real cluster
    }
  }
  delNetns(p.netns);
}

export async function podRm(lab: string, name: string): Promise<void> {
  await withLab(lab, async (s) => {
    const p = findPod(s, name);
    await tearDownPod(s, p);
    s.pods = s.pods.filter((x) => x !== p);
  });
}

/**
 * kubelet's loop: pods whose Pod was deleted through the API are torn down, sandboxes that are
 * not Running are retried, and what changed goes to the API; returns the state for display.
 */
export async function refresh(lab: string): Promise<LabState> {
  return withLab(lab, async (s) => {
    const known = await podsInApi(s);
    for (const p of known ? s.pods.filter((x) => !known.has(x.uid)) : []) {
      await tearDownPod(s, p);
      s.pods = s.pods.filter((x) => x !== p);
    }
    for (const p of s.pods) {
      if (p.phase === "Running") continue;
      const before = JSON.stringify([p.phase, p.reason, p.ip]);
      trySetUp(s, p);
      if (JSON.stringify([p.phase, p.reason, p.ip]) !== before) await mirrorPodStatus(s, p);
    }
    return s;
  });
}
