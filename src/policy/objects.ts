// Pods and namespaces from the API (core/v1 objects, untrusted) to the few facts policy needs.
// Choices where the API leaves room:
// - a pod's addresses are status.podIPs (or podIP), its node's are status.hostIPs (or hostIP);
//   a pod that has Succeeded or Failed keeps no address, since its IP may already be another pod's;
// - named ports come from spec.containers and from restartable init containers (sidecars), the
//   containers that serve while the pod runs;
// - a namespace always carries kubernetes.io/metadata.name=<name>: the API server sets it on every
//   namespace, and an object from a stand-in or a test that lacks it should still match.
import type { V1Namespace, V1Pod } from "@kubernetes/client-node";
import { formatIP, parseIP } from "../net/cidr.ts";
import { isNamespaceName, isPodName } from "../util/text.ts";
import { field, isObject, isPortName, labelKeyError, labelValueError, present } from "./syntax.ts";
import { PROTOCOLS, type ContainerPort, type Labels, type NsInfo, type PodInfo, type Protocol } from "./types.ts";

export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/** Undefined when the object has no usable namespace and name. */
export function podInfoFromV1(pod: V1Pod | unknown): PodInfo | undefined {
  if (!isObject(pod)) return undefined;
  const meta = obj(field(pod, "metadata"));
  const spec = obj(field(pod, "spec"));
  const status = obj(field(pod, "status"));
  const namespace = field(meta, "namespace");
  const name = field(meta, "name");
  if (!isNamespaceName(namespace) || !isPodName(name)) return undefined;
  const phase = field(status, "phase");
  const gone = phase === "Succeeded" || phase === "Failed";
  const node = field(spec, "nodeName");
  const info: PodInfo = {
    namespace,
    name,
    labels: readLabels(field(meta, "labels")),
    ips: gone ? [] : addresses(field(status, "podIPs"), field(status, "podIP")),
    ports: [...containerPorts(field(spec, "containers"), false), ...containerPorts(field(spec, "initContainers"), true)],
  };
  if (typeof node === "string" && node.length > 0) info.node = node;
  const nodeIps = addresses(field(status, "hostIPs"), field(status, "hostIP"));
  if (nodeIps.length > 0) info.nodeIps = nodeIps;
  if (field(spec, "hostNetwork") === true) info.hostNetwork = true;
  return info;
}

export function nsInfoFromV1(ns: V1Namespace | unknown): NsInfo | undefined {
  if (!isObject(ns)) return undefined;
  const name = field(obj(field(ns, "metadata")), "name");
  if (!isNamespaceName(name)) return undefined;
  return { name, labels: { ...readLabels(field(obj(field(ns, "metadata")), "labels")), [NAMESPACE_NAME_LABEL]: name } };
}

function obj(v: unknown): Record<string, unknown> {
  return isObject(v) ? v : {};
}

/** Only well-formed labels: one the API server would refuse cannot be on a real object. */
function readLabels(v: unknown): Labels {
  const out: Record<string, string> = {};
  if (!isObject(v)) return out;
  for (const k of Object.keys(v)) {
    const val = v[k];
    if (typeof val === "string" && !labelKeyError(k) && !labelValueError(val)) out[k] = val;
  }
  return out;
}

/** Normalised (RFC 5952 for IPv6) so a pod's address compares equal however it was written; one per family. */
function addresses(list: unknown, single: unknown): string[] {
  const texts: unknown[] = Array.isArray(list) ? list.map((e) => (isObject(e) ? field(e, "ip") : undefined)) : [];
  if (texts.length === 0 && present(single)) texts.push(single);
  const out: string[] = [];
  const families = new Set<number>();
  for (const t of texts) {
    const ip = typeof t === "string" ? parseIP(t) : undefined;
    if (!ip || families.has(ip.family)) continue;
    families.add(ip.family);
    out.push(formatIP(ip));
  }
  return out;
}

function containerPorts(list: unknown, sidecarsOnly: boolean): ContainerPort[] {
  if (!Array.isArray(list)) return [];
  const out: ContainerPort[] = [];
  for (const c of list) {
    if (!isObject(c)) continue;
    if (sidecarsOnly && field(c, "restartPolicy") !== "Always") continue;
    const ports = field(c, "ports");
    if (!Array.isArray(ports)) continue;
    for (const p of ports) {
      if (!isObject(p)) continue;
      const port = field(p, "containerPort");
      const protoV = field(p, "protocol");
      const protocol: Protocol | undefined = !present(protoV) ? "TCP" : (PROTOCOLS as readonly string[]).includes(protoV as string) ? (protoV as Protocol) : undefined;
      if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535 || !protocol) continue;
      const name = field(p, "name");
      out.push({ ...(typeof name === "string" && isPortName(name) ? { name } : {}), port, protocol });
    }
  }
  return out;
}
