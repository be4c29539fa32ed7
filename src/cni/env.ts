// Reads and validates the CNI_* environment the runtime passes, per verb (SPEC 1.1.0,
// "Parameters"), and CNI_ARGS ("K=V;K=V", as kubelet/containerd send it).
import { netnsKind } from "../kernel/netns.ts";
import { CniCode, CniError } from "./errors.ts";

export const VERBS = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"] as const;
export type Verb = (typeof VERBS)[number];

export interface CniEnv {
  command: Verb;
  containerId: string;
  netns: string;
  ifname: string;
  args: CniArgs;
  path: string[];
}

export interface CniArgs {
  ignoreUnknown: boolean;
  podNamespace?: string;
  podName?: string;
  podInfraContainerId?: string;
  podUid?: string;
  /** host-local's IP=<addr>[,<addr>] request. */
  ips?: string[];
}

const KNOWN_ARGS = new Set(["IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IP"]);

export function parseCniArgs(text: string | undefined): CniArgs {
  const out: CniArgs = { ignoreUnknown: false };
  if (!text) return out;
  const pairs: [string, string][] = [];
  for (const item of text.split(";")) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq <= 0) throw new CniError(CniCode.InvalidEnv, `CNI_ARGS item ${JSON.stringify(item)} is not KEY=VALUE`, "CNI_ARGS must look like K1=V1;K2=V2");
    pairs.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  const ignore = pairs.find(([k]) => k === "IgnoreUnknown");
  out.ignoreUnknown = ignore !== undefined && /^(1|true)$/i.test(ignore[1]);
  for (const [k, v] of pairs) {
    switch (k) {
      case "IgnoreUnknown": break;
      case "K8S_POD_NAMESPACE": out.podNamespace = v; break;
      case "K8S_POD_NAME": out.podName = v; break;
      case "K8S_POD_INFRA_CONTAINER_ID": out.podInfraContainerId = v; break;
      case "K8S_POD_UID": out.podUid = v; break;
      case "IP": out.ips = v.split(",").filter(Boolean); break;
      default:
        if (!out.ignoreUnknown && !KNOWN_ARGS.has(k)) {
          throw new CniError(CniCode.InvalidEnv, `CNI_ARGS has unknown key ${k}=${v}`, "set IgnoreUnknown=1 in CNI_ARGS to let gauze skip keys it does not know");
        }
    }
  }
  return out;
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/;

export function validateIfname(name: string): string | undefined {
  if (name === "") return "is empty";
  if (name.length > 15) return `is ${name.length} characters long; Linux allows at most 15`;
  if (name === "." || name === "..") return "may not be . or ..";
  if (/[/:\s]/.test(name)) return "may not contain '/', ':' or white space";
  return undefined;
}

export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? "";
  if (!(VERBS as readonly string[]).includes(command)) {
    throw new CniError(CniCode.InvalidEnv, command === "" ? "CNI_COMMAND is empty" : `CNI_COMMAND ${JSON.stringify(command)} is not a CNI verb`,
      `set CNI_COMMAND to one of ${VERBS.join(", ")}`);
  }
  const verb = command as Verb;
  const perAttachment = verb === "ADD" || verb === "DEL" || verb === "CHECK";
  const containerId = env.CNI_CONTAINERID ?? "";
  const ifname = env.CNI_IFNAME ?? "";
  const netns = env.CNI_NETNS ?? "";
  if (perAttachment) {
    if (!CONTAINER_ID.test(containerId)) {
      throw new CniError(CniCode.InvalidEnv, containerId === "" ? "CNI_CONTAINERID is missing" : `CNI_CONTAINERID ${JSON.stringify(containerId)} is invalid`,
        "it must start with a letter or digit followed by letters, digits, '_', '.' or '-'");
    }
    const bad = validateIfname(ifname);
    if (bad) throw new CniError(CniCode.InvalidEnv, `CNI_IFNAME ${JSON.stringify(ifname)} ${bad}`, "pass a valid interface name such as eth0");
  }
  if (verb === "ADD" || verb === "CHECK") requireNetns(netns);
  return {
    command: verb,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS),
    path: (env.CNI_PATH ?? "").split(":").filter(Boolean),
  };
}

/** CNI_NETNS must name an existing network namespace (a file on nsfs). */
export function requireNetns(netns: string): void {
  if (netns === "") throw new CniError(CniCode.InvalidEnv, "CNI_NETNS is missing", "ADD and CHECK need the path of the container's network namespace");
  if (!netns.startsWith("/")) throw new CniError(CniCode.InvalidEnv, `CNI_NETNS ${JSON.stringify(netns)} is not an absolute path`, "pass a path such as /var/run/netns/<name> or /proc/<pid>/ns/net");
  const kind = netnsKind(netns);
  if (kind === "missing") {
    throw new CniError(CniCode.ContainerUnknown, `CNI_NETNS ${netns} does not exist`, "the container's network namespace is gone; nothing to set up");
  }
  if (kind !== "netns") {
    throw new CniError(CniCode.InvalidEnv, `CNI_NETNS ${netns} is not a network namespace`, "pass a namespace file (ip netns add creates /var/run/netns/<name>)");
  }
}
