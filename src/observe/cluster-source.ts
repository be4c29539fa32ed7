// A cluster reached through its Kubernetes API as the source observe, doctor, ui and trace read
// (source.ts), with the official client only. The agent opens no TCP port: each node's agent API
// is reached by the API server's pods/exec subresource, running `gauze agent-api GET <path>`
// inside that node's agent container (cli/agent-api.ts talks to /run/gauze/agent.sock there and
// streams the body back on the exec's stdout channel). Who may observe is the user's RBAC: list
// and get pods and nodes, get the DaemonSet, create pods/exec in gauze's namespace (the manifest's
// gauze-observer ClusterRole). Why exec and not port-forward: port-forward needs the agent to
// listen on a TCP port (loopback still opens one on every node, reachable by every hostNetwork
// pod); exec reuses the socket and its root-only mode, and costs one exec session per request
// (docs/benchmarks.md has the numbers).
//
// Nodes, pods (every namespace, hostNetwork ones too) and the DaemonSet's pods come from the API,
// read once and again every few seconds; each endpoint looks its node's agent pod up at every
// request, so a restarted agent pod (a new name on a real cluster) is found again. A node whose
// agent pod is missing, not ready or unreachable is named by the relay and the rest go on.
import { request as httpRequest } from "node:http";
import { request } from "node:https";
import { EventEmitter } from "node:events";
import { PassThrough, Writable } from "node:stream";
import type { V1DaemonSet, V1Node, V1Pod, V1Status } from "@kubernetes/client-node";
import { AGENT_CNI_BIN, DAEMONSET, NAMESPACE, TRACE_PROBE_CAP } from "../deploy/manifest.ts";
import type { PipedChild } from "../kernel/spawn.ts";
import type { ClusterSource, ClusterView, SourceNode, SourcePod } from "./source.ts";
import type { AgentTransport, RemoteAgentEndpoint } from "./transport.ts";

/** What `gauze agent-api-in-pod` says when the probe ran and got no answer (exit 1, not an error). */
export const PROBE_NO_ANSWER = "gauze probe: no answer";

/** Whether the DaemonSet's agent may enter its pods' namespaces (the manifest's --trace-probes). */
function probesAllowed(ds: V1DaemonSet): boolean {
  const c = ds.spec?.template.spec?.containers.find((x) => x.name === AGENT_CONTAINER);
  return !!c?.securityContext?.capabilities?.add?.includes(TRACE_PROBE_CAP) && !!c.volumeMounts?.some((m) => m.mountPath === "/run/netns");
}

/** Why trace sends no probe on a cluster: entering a pod's network namespace is more than the DaemonSet may do. */
const PROBE_NEEDS = "a probe sent from a pod's network namespace needs the agent to enter it (CAP_SYS_ADMIN for setns, and the host's /run/netns where the runtime pins it), which gauze's DaemonSet has only with gauze manifests --trace-probes";

export interface ClusterSourceOptions {
  /** A kubeconfig file; else $KUBECONFIG, the in-cluster config in a pod, ~/.kube/config. */
  kubeconfig?: string;
  context?: string;
  /** gauze's namespace and DaemonSet (the manifest's defaults). */
  namespace?: string;
  daemonSet?: string;
  /** Fetch each node's interface names now (trace names hops by them). */
  interfaces?: boolean;
}

/** How often nodes and pods are read again while a command runs (observe --follow, ui). */
const REFRESH_MS = 5000;
/** The shortest deadline of one request through pods/exec. */
const EXEC_DEADLINE_MS = 5000;
/** The agent's container in the DaemonSet's pods. */
const AGENT_CONTAINER = "gauze";

type K8s = typeof import("@kubernetes/client-node");
type KubeConfig = import("@kubernetes/client-node").KubeConfig;

/** A node the relay cannot ask, and why. */
export interface NodeProblem { node: string; why: string }

export interface KubeClusterSource extends ClusterSource {
  readonly namespace: string;
  readonly daemonSet: string;
  /** The DaemonSet as read (rollout counts), the nodes and pods: doctor's cluster checks read these. */
  readonly raw: { daemonSet: V1DaemonSet; nodes: V1Node[]; agentPods: V1Pod[] };
  /** Nodes without an agent pod, or whose pod is not ready (the relay names unreachable ones itself). */
  problems(): NodeProblem[];
  /** Runs `gauze <args>` in a node's agent container; stdout, or a rejection saying why not. */
  execGauze(node: string, args: string[], timeoutMs: number): Promise<string>;
  /** The network the agents use (net-conf.json's Network), read from one agent. */
  network(): Promise<string | undefined>;
  close(): void;
}

/** The kubeconfig as kubectl picks it; a context that does not exist lists those that do. */
export function loadKubeConfig(k8s: K8s, o: ClusterSourceOptions): { kc: KubeConfig; where: string } {
  const kc = new k8s.KubeConfig();
  let where: string;
  if (o.kubeconfig) {
    try {
      kc.loadFromFile(o.kubeconfig);
    } catch (e) {
      throw new Error(`cannot read the kubeconfig ${o.kubeconfig}: ${(e as Error).message.split("\n")[0]} (give the path of a kubeconfig file, as kubectl's --kubeconfig)`);
    }
    where = o.kubeconfig;
  } else if (!process.env.KUBECONFIG && process.env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
    where = "the in-cluster config (this pod's service account)";
  } else {
    kc.loadFromDefault();
    where = process.env.KUBECONFIG ? `$KUBECONFIG (${process.env.KUBECONFIG})` : "~/.kube/config";
  }
  if (o.context) {
    const names = kc.getContexts().map((c) => c.name);
    if (!names.includes(o.context)) throw new Error(`context ${JSON.stringify(o.context)} is not in ${where}: it has ${names.length ? names.join(", ") : "no contexts"} (kubectl config get-contexts)`);
    kc.setCurrentContext(o.context);
  }
  if (!kc.getCurrentCluster()) throw new Error(`${where} names no cluster to talk to: give --kubeconfig <file> (for a lab: gauze lab kubeconfig)`);
  return { kc, where };
}

/** What to do about an API error, in one line. */
export function apiProblem(e: unknown, server: string, what: string): Error {
  const err = e as { code?: number | string; body?: unknown; message?: string; cause?: { code?: string } };
  const code = typeof err.code === "number" ? err.code : undefined;
  let message = err.message ?? String(e);
  try {
    const b = typeof err.body === "string" ? JSON.parse(err.body) as { message?: string } : err.body as { message?: string } | undefined;
    if (b?.message) message = b.message;
  } catch {
    // not a Status: the client's own message
  }
  if (code === 401) return new Error(`the API server at ${server} refused the credentials (401 Unauthorized) while ${what}: the token is wrong or expired; get a fresh kubeconfig (for a lab: gauze lab kubeconfig)`);
  if (code === 403) return new Error(`${message}: bind the gauze-observer ClusterRole to this user (kubectl create clusterrolebinding <name> --clusterrole=gauze-observer --user=<user>; docs/observe.md)`);
  if (code === 404) return new Error(`${message} (while ${what})`);
  const net = err.cause?.code ?? (typeof err.code === "string" ? err.code : undefined) ?? /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|certificate/i.exec(message)?.[0];
  if (net || !code) return new Error(`the API server at ${server} does not answer (${net ?? message}) while ${what}: check the kubeconfig's server and that the cluster runs`);
  return new Error(`${message} (HTTP ${code}, while ${what})`);
}

const addrOf = (n: V1Node) => n.status?.addresses?.find((a) => a.type === "InternalIP")?.address ?? "";
const readyOf = (n: V1Node) => n.status?.conditions?.find((c) => c.type === "Ready");
export const podReady = (p: V1Pod) => p.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";

/** A V1Status from the exec's error channel, as one line. */
function execFailure(st: V1Status, stderr: string): string {
  const exit = st.details?.causes?.find((c) => c.reason === "ExitCode")?.message;
  if (stderr.trim()) return stderr.trim().split("\n").slice(-3).join(" | ");
  if (exit === "127" || exit === "126") return "gauze is not in the agent's container (is this gauze's DaemonSet? its image has /usr/local/bin/gauze)";
  return st.message ?? `exit ${exit ?? "?"}`;
}

export async function clusterSource(o: ClusterSourceOptions = {}): Promise<KubeClusterSource> {
  const k8s = await import("@kubernetes/client-node");
  const { kc } = loadKubeConfig(k8s, o);
  const server = kc.getCurrentCluster()!.server;
  const namespace = o.namespace ?? NAMESPACE;
  const daemonSet = o.daemonSet ?? DAEMONSET;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);

  const read = async () => {
    let ds: V1DaemonSet;
    try {
      ds = await apps.readNamespacedDaemonSet({ name: daemonSet, namespace });
    } catch (e) {
      if ((e as { code?: number }).code === 404) throw new Error(`namespace ${namespace} has no DaemonSet ${daemonSet}: is gauze installed on this cluster (kubectl apply -f deploy/kube-gauze.yml)? Another namespace or name: --gauze-namespace, --daemonset`);
      throw apiProblem(e, server, `reading DaemonSet ${namespace}/${daemonSet}`);
    }
    const selector = Object.entries(ds.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
    const [nodes, agentPods, pods] = await Promise.all([
      core.listNode().catch((e: unknown) => { throw apiProblem(e, server, "listing nodes"); }),
      core.listNamespacedPod({ namespace, ...(selector ? { labelSelector: selector } : {}) }).catch((e: unknown) => { throw apiProblem(e, server, `listing the pods of ${namespace}`); }),
      core.listPodForAllNamespaces().catch((e: unknown) => { throw apiProblem(e, server, "listing pods in every namespace"); }),
    ]);
    return { ds, nodes: nodes.items, agentPods: agentPods.items, pods: pods.items };
  };
  let snap = await read();
  const timer = setInterval(() => { void read().then((s) => { snap = s; }, () => { /* the last view stands; the next request says why */ }); }, REFRESH_MS);
  timer.unref();

  const agentPod = (node: string) => snap.agentPods.find((p) => p.spec?.nodeName === node);
  const exec = (node: string, command: string[], onData: (d: string) => void, timeoutMs: number | undefined, stdinOpen: boolean) => {
    const pod = agentPod(node);
    let stopped = false;
    let ws: { close(): void } | undefined;
    let stdin: PassThrough | undefined;
    const done = new Promise<void>((resolve, reject) => {
      if (!pod) return reject(new Error(`no agent pod of DaemonSet ${namespace}/${daemonSet} on this node (kubectl -n ${namespace} get pods -o wide)`));
      const name = pod.metadata!.name!;
      let stderr = "";
      let settled = false;
      const settle = (e?: Error) => { if (settled) return; settled = true; clearTimeout(t); if (e) reject(e); else resolve(); };
      const t = timeoutMs ? setTimeout(() => { ws?.close(); settle(new Error(`no answer through pods/exec of ${namespace}/${name} within ${timeoutMs} ms`)); }, timeoutMs) : undefined;
      const out = new Writable({ write(c: Buffer, _e, cb) { if (!stopped) onData(c.toString()); cb(); } });
      const err = new Writable({ write(c: Buffer, _e, cb) { stderr += c.toString(); cb(); } });
      stdin = stdinOpen ? new PassThrough() : undefined;
      const notReady = podReady(pod) ? "" : `agent pod ${namespace}/${name} is not ready: `;
      new k8s.Exec(kc).exec(namespace, name, AGENT_CONTAINER, command, out, err, stdin ?? null, false, (st) => {
        settle(st.status === "Success" ? undefined : new Error(notReady + execFailure(st, stderr)));
      }).then((w) => {
        ws = w;
        w.addEventListener("close", () => settle(stopped ? undefined : new Error(`the exec session to ${namespace}/${name} was closed before the command ended (the agent's container stopped, or the API server cut it)`)));
        if (stopped) w.close();
      }, async (e: unknown) => settle(new Error(notReady + await execRefusal(kc, server, namespace, name, e))));
    });
    return { done, stop: () => { stopped = true; stdin?.end(); ws?.close(); } };
  };
  const transport = (node: string): AgentTransport => (path, onData, given) => {
    // The relay's deadlines are a socket's (2 s); an exec session alone takes about 150 ms and
    // more on a busy node, so a request gets at least EXEC_DEADLINE_MS (each node apart: a hung
    // one holds up only its own answer).
    const t = { timeoutMs: given.timeoutMs === undefined ? undefined : Math.max(given.timeoutMs, EXEC_DEADLINE_MS) };
    const follow = /[?&]follow=1(&|$)/.test(path);
    if (path !== "/v1/pods") return exec(node, ["gauze", "agent-api", "GET", path, ...(follow ? ["--until-stdin-ends"] : [])], onData, t.timeoutMs, follow);
    // Pod names come from the API, every pod of the cluster (host-network ones too: a node's
    // address, when one such pod alone runs on that node), with no exec session: at 30 nodes a
    // session per node and request was most of observe's time (the agents' own CNI records
    // would add only containers Kubernetes does not know).
    return {
      stop: () => undefined,
      done: Promise.resolve().then(() => {
        const names: Record<string, string> = {};
        // Every pod of the cluster, not only this node's: a pod whose own node cannot be asked is named all the same.
        const hostNet = new Map<string, number>();
        for (const p of snap.pods) if (p.spec?.hostNetwork) hostNet.set(p.spec.nodeName ?? "", (hostNet.get(p.spec.nodeName ?? "") ?? 0) + 1);
        for (const p of snap.pods) {
          if (p.spec?.hostNetwork && hostNet.get(p.spec.nodeName ?? "") !== 1) continue;
          for (const ip of p.status?.podIPs?.map((x) => x.ip) ?? []) if (ip && !names[ip]) names[ip] = `${p.metadata!.namespace}/${p.metadata!.name}`;
        }
        onData(JSON.stringify(names));
      }),
    };
  };
  /** stdout of `gauze <args>` in the node's agent container; `anyExit`: also when it exits non-zero with output (doctor: 1 when a check fails). */
  const collect = async (node: string, args: string[], timeoutMs: number, anyExit = false) => {
    let out = "";
    try {
      await exec(node, ["gauze", ...args], (d) => { out += d; }, timeoutMs, false).done;
    } catch (e) {
      if (!anyExit || !out.trim() || /within \d+ ms/.test((e as Error).message)) throw e;
    }
    return out;
  };
  const interfaces = new Map<string, Map<number, string>>();
  const fetchInterfaces = async (node: string) => {
    try {
      const m = JSON.parse(await collect(node, ["agent-api", "GET", "/local/links"], 5000)) as Record<string, string>;
      interfaces.set(node, new Map(Object.entries(m).map(([k, v]) => [Number(k), v])));
    } catch {
      // names stay indexes
    }
  };
  if (o.interfaces) await Promise.all(snap.nodes.map((n) => fetchInterfaces(n.metadata!.name!)));

  const sourcePod = (p: V1Pod): SourcePod => {
    const ips = p.status?.podIPs?.map((x) => x.ip) ?? (p.status?.podIP ? [p.status.podIP] : []);
    const ip = ips.find((x) => !x.includes(":")), ip6 = ips.find((x) => x.includes(":"));
    const why = p.status?.containerStatuses?.find((c) => c.state?.waiting)?.state?.waiting?.reason ?? p.status?.reason;
    return { name: p.metadata!.name!, namespace: p.metadata!.namespace ?? "default", node: p.spec?.nodeName ?? "", ...(ip ? { ip } : {}), ...(ip6 ? { ip6 } : {}), phase: p.status?.phase ?? "Pending", ...(why ? { reason: why } : {}), ...(p.metadata?.labels ? { labels: p.metadata.labels } : {}) };
  };
  // net-conf.json as the agents read it (the view's Network and backend), asked once, in the background.
  let netConf: { Network?: string; Backend?: { Type?: string } } | undefined;
  const netConfRead = (async () => {
    for (const n of snap.agentPods.filter(podReady)) {
      try {
        netConf = JSON.parse(await collect(n.spec!.nodeName!, ["agent-api", "GET", "/local/net-conf"], 5000)) as typeof netConf;
        if (netConf?.Network) return netConf;
      } catch {
        // the next node's agent
      }
    }
    return undefined;
  })();
  const self: KubeClusterSource = {
    label: `cluster ${kc.getCurrentContext()} (${server})`,
    namespace, daemonSet,
    get raw() { return { daemonSet: snap.ds, nodes: snap.nodes, agentPods: snap.agentPods }; },
    agents(node?: string): RemoteAgentEndpoint[] {
      const names = snap.nodes.map((n) => n.metadata!.name!);
      if (node && !names.includes(node)) throw new Error(`node ${node} is not in the cluster: it has ${names.join(", ")}`);
      return (node ? [node] : names).map((n) => ({ node: n, socket: "/run/gauze/agent.sock", transport: transport(n) }));
    },
    view(): ClusterView {
      const nodes: SourceNode[] = snap.nodes.map((n) => {
        const r = readyOf(n);
        const pod = agentPod(n.metadata!.name!);
        return { name: n.metadata!.name!, ip: addrOf(n), ready: r?.status === "True", reason: r?.status === "True" ? "" : `${r?.reason ?? "no Ready condition"}${r?.message ? `: ${r.message}` : ""}`, subnet: n.spec?.podCIDR ?? null, vtepMac: null, agentUp: !!pod && podReady(pod), podMtu: null, overhead: null };
      });
      const cidrs = snap.nodes.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []));
      return { name: kc.getCurrentContext(), backend: netConf?.Backend?.Type ?? "", podCidr: netConf?.Network ?? cidrs.find((c) => !c.includes(":")) ?? "", nodes, pods: snap.pods.map(sourcePod) };
    },
    findPod(ref: string): SourcePod {
      const [ns, name] = ref.includes("/") ? ref.split("/", 2) as [string, string] : ["default", ref];
      const p = snap.pods.find((x) => x.metadata?.namespace === ns && x.metadata?.name === name);
      if (!p) throw new Error(`pod ${ns}/${name} is not in the cluster (kubectl get pods -n ${ns}); give <namespace>/<pod>`);
      return sourcePod(p);
    },
    // Unless the DaemonSet opted in (gauze manifests --trace-probes), trace follows the pod's own next packet.
    get probeUnavailable() { return probesAllowed(snap.ds) ? undefined : PROBE_NEEDS; },
    spawnInPod(pod: SourcePod, argv: string[]): PipedChild {
      if (!probesAllowed(snap.ds)) throw new Error(`pod ${pod.namespace}/${pod.name}: ${PROBE_NEEDS}`);
      // The image has no ping: an ICMP probe is gauze's own (a raw socket, as ping's).
      const dst = argv[argv.length - 1]!;
      const probe = argv[0] === "ping"
        ? ["gauze", "probe", "--icmp", "--to", dst, "--size", argv[argv.indexOf("-s") + 1] ?? "56", "--timeout", "2000"]
        : ["gauze", ...argv.slice(1)];
      const child = new EventEmitter() as unknown as PipedChild;
      let stderr = "";
      // Exit 0: answered; 1: no answer (exec reports a non-zero exit as a failure); anything the
      // exec itself could not do (no agent pod, no namespace to enter) is an error.
      exec(pod.node, ["gauze", "agent-api-in-pod", "--ip", pod.ip ?? "", "--", ...probe], (d) => { stderr += d; }, 10_000, false).done.then(
        () => child.emit("close", 0),
        (e: Error) => (e.message.includes(PROBE_NO_ANSWER) ? child.emit("close", 1) : child.emit("error", new Error(`probe from ${pod.namespace}/${pod.name}: ${e.message}${stderr ? ` (${stderr.trim()})` : ""}`))));
      return child;
    },
    interfaceNames: (node) => interfaces.get(node) ?? new Map(),
    async doctorJson(node: string, timeoutMs = 30_000) {
      try {
        return await collect(node, ["doctor", "--host", "--bin-dir", AGENT_CNI_BIN, "--json"], timeoutMs, true);
      } catch (e) {
        return JSON.stringify({ error: (e as Error).message });
      }
    },
    doctorCommand: (node) => `kubectl -n ${namespace} exec ${agentPod(node)?.metadata?.name ?? `<${daemonSet} pod on ${node}>`} -c ${AGENT_CONTAINER} -- gauze doctor --host --bin-dir ${AGENT_CNI_BIN}`,
    problems() {
      return snap.nodes.flatMap((n) => {
        const pod = agentPod(n.metadata!.name!);
        if (!pod) return [{ node: n.metadata!.name!, why: `no pod of DaemonSet ${namespace}/${daemonSet} on it` }];
        if (!podReady(pod)) return [{ node: n.metadata!.name!, why: `agent pod ${namespace}/${pod.metadata!.name} is not ready (${pod.status?.conditions?.find((c) => c.type === "Ready")?.message ?? pod.status?.phase ?? "?"})` }];
        return [];
      });
    },
    execGauze: (node, args, timeoutMs) => collect(node, args, timeoutMs),
    network: async () => (await netConfRead)?.Network,
    close: () => clearInterval(timer),
  };
  return self;
}

/**
 * Why the API refused an exec (the WebSocket client says only "Unexpected server response: 403"):
 * the same request once more as a plain GET, whose answer is the API's Status with its message.
 */
async function execRefusal(kc: KubeConfig, server: string, ns: string, pod: string, e: unknown): Promise<string> {
  const said = String((e as { message?: string }).message ?? e);
  const code = /Unexpected server response: (\d+)/.exec(said)?.[1];
  if (!code) return `pods/exec of ${ns}/${pod} failed: ${said} (the API server at ${server} does not answer?)`;
  const url = new URL(`${server}/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(pod)}/exec?command=true&stdout=true&container=${AGENT_CONTAINER}`);
  const opts: import("node:https").RequestOptions = { method: "GET", hostname: url.hostname, port: url.port, path: url.pathname + url.search, timeout: 5000 };
  await kc.applyToHTTPSOptions(opts);
  const body = await new Promise<string>((resolve) => {
    const req = (url.protocol === "https:" ? request : httpRequest)(opts, (res) => {
      let b = "";
      res.on("data", (d: Buffer) => { b += d.toString(); });
      res.on("end", () => resolve(b));
    });
    req.on("error", () => resolve(""));
    req.on("timeout", () => req.destroy());
    req.end();
  });
  let message = "";
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? "";
  } catch {
    // no Status: the code alone
  }
  const err = apiProblem({ code: Number(code), message: message || `HTTP ${code}` }, server, `running gauze in ${ns}/${pod} through pods/exec`);
  return code === "403" ? err.message.replace(/bind the gauze-observer/, "pods/exec (create) is the permission missing; bind the gauze-observer") : err.message;
}
