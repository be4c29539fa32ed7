// networking.k8s.io/v1 NetworkPolicy objects, read as untrusted input. Every problem is reported
// with its path (`spec.ingress[0].from[1].ipBlock.cidr`) and makes the policy fail closed: the pods
// it selects are isolated in the direction the problem is in, and that direction of the policy
// allows nothing. A problem outside the rules (podSelector, policyTypes, metadata) fails every
// direction the policy covers, both when its policyTypes cannot be read, and an unreadable
// podSelector selects every pod of the namespace. A broken policy so never opens traffic, and never
// stops other policies from working (allows add up; it only adds isolation).
//
// Absent and null read the same (Go's JSON decoding); defaults are the API server's: protocol TCP,
// policyTypes Ingress plus Egress when egress rules exist. An unknown field is a problem too: the
// API server prunes them, so one here means the object was never validated, and ignoring it can
// widen a rule (`form:` for `from:` would allow every source). A problem in a direction the explicit
// policyTypes leave out still fails that direction closed: the API server would have refused the
// object, so what its author meant is unknown.
import { parseCIDR, prefixContains, type Prefix } from "../net/cidr.ts";
import { isNamespaceName } from "../util/text.ts";
import { parseSelector } from "./selector.ts";
import { at, child, field, isObject, isPortName, present, Problems, quote } from "./syntax.ts";
import { PROTOCOLS, type Direction, type IpBlock, type ParsedPolicy, type PeerSpec, type PortSpec, type Problem, type Protocol, type Rule, type Selector } from "./types.ts";

export const MODE_ANNOTATION = "gauze.dev/policy-mode";

export interface ParseResult {
  /** Absent only when the object cannot be placed in a namespace (or is not a NetworkPolicy). */
  policy?: ParsedPolicy;
  /** Each one made the policy fail closed somewhere. */
  problems: Problem[];
  /** Noted, not acted on: a CIDR with host bits set, an unknown policy mode. */
  warnings: Problem[];
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KNOWN: Record<string, readonly string[]> = {
  spec: ["podSelector", "policyTypes", "ingress", "egress"],
  ingress: ["from", "ports"],
  egress: ["to", "ports"],
  peer: ["podSelector", "namespaceSelector", "ipBlock"],
  port: ["protocol", "port", "endPort"],
  ipBlock: ["cidr", "except"],
};

export function parsePolicy(obj: unknown): ParseResult {
  const problems = new Problems();
  const warnings = new Problems();
  const done = (policy?: ParsedPolicy): ParseResult => ({ ...(policy ? { policy } : {}), problems: problems.list, warnings: warnings.list });
  if (!isObject(obj)) {
    problems.add("", "must be a NetworkPolicy object");
    return done();
  }
  const kind = field(obj, "kind");
  const apiVersion = field(obj, "apiVersion");
  if ((present(kind) && kind !== "NetworkPolicy") || (present(apiVersion) && apiVersion !== "networking.k8s.io/v1")) {
    problems.add(present(kind) && kind !== "NetworkPolicy" ? "kind" : "apiVersion", "not a networking.k8s.io/v1 NetworkPolicy");
    return done();
  }
  const meta = field(obj, "metadata");
  const metaObj = isObject(meta) ? meta : {};
  if (!isObject(meta)) problems.add("metadata", "must be an object with name and namespace");
  const namespace = field(metaObj, "namespace");
  if (!isNamespaceName(namespace)) {
    // Without a namespace there are no pods to isolate: nothing to fail closed on.
    problems.add("metadata.namespace", typeof namespace === "string" ? `${quote(namespace)} is not a namespace name` : "is required");
    return done();
  }
  const rawName = field(metaObj, "name");
  const name = typeof rawName === "string" && rawName.length > 0 ? rawName : "?";
  if (typeof rawName !== "string" || rawName.length > 253 || !DNS1123_SUBDOMAIN.test(rawName)) {
    problems.add("metadata.name", typeof rawName === "string" ? `${quote(rawName)} is not a valid name` : "is required");
  }
  const mode = readMode(metaObj, warnings);

  const shared = new Problems();
  const specV = field(obj, "spec");
  const spec = isObject(specV) ? specV : {};
  if (present(specV) && !isObject(specV)) shared.add("spec", "must be an object");
  rejectUnknown(spec, "spec", KNOWN.spec!, shared);
  const psV = field(spec, "podSelector");
  const podSelector: Selector | undefined = present(psV) ? parseSelector(psV, "spec.podSelector", shared) : { requirements: [] };
  const declared = readPolicyTypes(field(spec, "policyTypes"), shared);
  const typesUnreadable = declared === "unreadable";

  const dir = {
    ingress: readRules(field(spec, "ingress"), "spec.ingress", "from", warnings),
    egress: readRules(field(spec, "egress"), "spec.egress", "to", warnings),
  };
  const types: Record<Direction, boolean> = declared !== undefined && declared !== "unreadable" ? declared : { ingress: true, egress: dir.egress.count > 0 };
  const sharedBroken = shared.count > 0 || problems.count > 0;
  const failed: Record<Direction, boolean> = { ingress: false, egress: false };
  for (const d of ["ingress", "egress"] as const) {
    failed[d] = dir[d].problems.count > 0 || (sharedBroken && (typesUnreadable || types[d]));
  }
  problems.list.push(...shared.list, ...dir.ingress.problems.list, ...dir.egress.problems.list);
  const policy: ParsedPolicy = {
    namespace,
    name,
    key: `${namespace}/${name}`,
    mode,
    ...(podSelector ? { podSelector } : {}),
    types: { ingress: types.ingress || failed.ingress, egress: types.egress || failed.egress },
    ingress: failed.ingress ? [] : dir.ingress.rules,
    egress: failed.egress ? [] : dir.egress.rules,
    failed,
    problems: problems.list,
  };
  return done(policy);
}

function readMode(meta: Record<string, unknown>, warnings: Problems): "enforce" | "audit" {
  const ann = field(meta, "annotations");
  if (!isObject(ann)) return "enforce";
  const v = field(ann, MODE_ANNOTATION);
  if (!present(v) || v === "enforce") return "enforce";
  if (v === "audit") return "audit";
  // An unknown mode is enforced: the stricter reading, and what the policy means without it.
  warnings.add(child("metadata.annotations", MODE_ANNOTATION), `unknown mode ${quote(String(v))} (audit or enforce); enforced`);
  return "enforce";
}

/** Undefined when absent or empty (then implied by the rules); "unreadable" after adding a problem. */
function readPolicyTypes(v: unknown, problems: Problems): Record<Direction, boolean> | "unreadable" | undefined {
  if (!present(v)) return undefined;
  if (!Array.isArray(v)) {
    problems.add("spec.policyTypes", "must be a list of Ingress and Egress");
    return "unreadable";
  }
  if (v.length === 0) return undefined;
  const out = { ingress: false, egress: false };
  const before = problems.count;
  v.forEach((t, i) => {
    if (t === "Ingress") out.ingress = true;
    else if (t === "Egress") out.egress = true;
    else problems.add(at("spec.policyTypes", i), `unknown policy type ${typeof t === "string" ? quote(t) : String(t)} (Ingress or Egress)`);
  });
  return problems.count === before ? out : "unreadable";
}

function readRules(v: unknown, path: string, peerKey: "from" | "to", warnings: Problems): { rules: Rule[]; count: number; problems: Problems } {
  const problems = new Problems();
  if (!present(v)) return { rules: [], count: 0, problems };
  if (!Array.isArray(v)) {
    problems.add(path, "must be a list of rules");
    return { rules: [], count: 1, problems };
  }
  const rules: Rule[] = [];
  v.forEach((r, i) => {
    const rp = at(path, i);
    if (!isObject(r)) {
      problems.add(rp, "must be a rule object");
      return;
    }
    rejectUnknown(r, rp, peerKey === "from" ? KNOWN.ingress! : KNOWN.egress!, problems);
    const peersV = field(r, peerKey);
    const portsV = field(r, "ports");
    let peers: PeerSpec[] | "any" = "any";
    if (present(peersV)) {
      if (!Array.isArray(peersV)) problems.add(child(rp, peerKey), "must be a list of peers");
      else if (peersV.length > 0) peers = peersV.flatMap((p, j) => readPeer(p, at(child(rp, peerKey), j), problems, warnings));
    }
    let ports: PortSpec[] | "any" = "any";
    if (present(portsV)) {
      if (!Array.isArray(portsV)) problems.add(child(rp, "ports"), "must be a list of ports");
      else if (portsV.length > 0) ports = portsV.flatMap((p, j) => readPort(p, at(child(rp, "ports"), j), problems, warnings));
    }
    rules.push({ index: i, peers, ports });
  });
  return { rules, count: v.length, problems };
}

function readPeer(v: unknown, path: string, problems: Problems, warnings: Problems): PeerSpec[] {
  if (!isObject(v)) {
    problems.add(path, "must be a peer object");
    return [];
  }
  rejectUnknown(v, path, KNOWN.peer!, problems);
  const ps = field(v, "podSelector");
  const ns = field(v, "namespaceSelector");
  const ib = field(v, "ipBlock");
  if (present(ib)) {
    if (present(ps) || present(ns)) {
      problems.add(path, "ipBlock may not be combined with podSelector or namespaceSelector");
      return [];
    }
    const block = readIpBlock(ib, child(path, "ipBlock"), problems, warnings);
    return block ? [{ kind: "ipBlock", block }] : [];
  }
  if (!present(ps) && !present(ns)) {
    problems.add(path, "must set podSelector, namespaceSelector or ipBlock");
    return [];
  }
  const podSelector = present(ps) ? parseSelector(ps, child(path, "podSelector"), problems) : undefined;
  const namespaceSelector = present(ns) ? parseSelector(ns, child(path, "namespaceSelector"), problems) : undefined;
  if ((present(ps) && !podSelector) || (present(ns) && !namespaceSelector)) return [];
  return [{ kind: "selector", ...(podSelector ? { podSelector } : {}), ...(namespaceSelector ? { namespaceSelector } : {}) }];
}

function readCidr(v: unknown, path: string, problems: Problems, warnings: Problems): { cidr: string; prefix: Prefix } | undefined {
  if (typeof v !== "string") {
    problems.add(path, "must be a CIDR string such as 10.0.0.0/8 or fd00::/8");
    return undefined;
  }
  // Go refuses leading zeros ("010.0.0.0/8"): read as octal by some tools, decimal by others.
  const c = /(^|[.])0\d/.test(v.split("/")[0] ?? "") ? undefined : parseCIDR(v);
  if (!c) {
    problems.add(path, `${quote(v)} is not a CIDR (address/prefix length)`);
    return undefined;
  }
  if (c.host.value !== c.prefix.ip.value) warnings.add(path, `${quote(v)} has host bits set; read as its network`);
  return { cidr: v, prefix: c.prefix };
}

function readIpBlock(v: unknown, path: string, problems: Problems, warnings: Problems): IpBlock | undefined {
  if (!isObject(v)) {
    problems.add(path, "must be an object with cidr and except");
    return undefined;
  }
  rejectUnknown(v, path, KNOWN.ipBlock!, problems);
  const base = readCidr(field(v, "cidr"), child(path, "cidr"), problems, warnings);
  const exceptV = field(v, "except");
  const except: IpBlock["except"] = [];
  const before = problems.count;
  if (present(exceptV)) {
    if (!Array.isArray(exceptV)) problems.add(child(path, "except"), "must be a list of CIDRs");
    else exceptV.forEach((e, i) => {
      const ep = at(child(path, "except"), i);
      const c = readCidr(e, ep, problems, warnings);
      if (!c || !base) return;
      // The API server's rule: each except must be a strict subset of cidr.
      if (!prefixContains(base.prefix, c.prefix.ip) || c.prefix.bits <= base.prefix.bits) {
        problems.add(ep, `${quote(c.cidr)} is not a strict subset of ${quote(base.cidr)}`);
        return;
      }
      except.push(c);
    });
  }
  return base && problems.count === before ? { ...base, except } : undefined;
}

function readPort(v: unknown, path: string, problems: Problems, warnings: Problems): PortSpec[] {
  if (!isObject(v)) {
    problems.add(path, "must be a port object");
    return [];
  }
  const before = problems.count;
  rejectUnknown(v, path, KNOWN.port!, problems);
  const protoV = field(v, "protocol");
  let protocol: Protocol = "TCP";
  if (present(protoV)) {
    if (typeof protoV === "string" && (PROTOCOLS as readonly string[]).includes(protoV)) protocol = protoV as Protocol;
    else problems.add(child(path, "protocol"), `unknown protocol ${typeof protoV === "string" ? quote(protoV) : String(protoV)} (TCP, UDP or SCTP)`);
  }
  const portV = field(v, "port");
  const endV = field(v, "endPort");
  let spec: PortSpec | undefined;
  if (!present(portV)) {
    if (present(endV)) problems.add(child(path, "endPort"), "requires port");
    spec = { protocol, kind: "number" };
  } else if (typeof portV === "number") {
    if (!Number.isInteger(portV) || portV < 1 || portV > 65535) problems.add(child(path, "port"), `${portV} is not a port number (1-65535)`);
    let to = portV;
    if (present(endV)) {
      if (typeof endV !== "number" || !Number.isInteger(endV) || endV < 1 || endV > 65535) problems.add(child(path, "endPort"), `${String(endV)} is not a port number (1-65535)`);
      else if (endV < portV) problems.add(child(path, "endPort"), `${endV} is less than port ${portV}`);
      else to = endV;
    }
    spec = { protocol, kind: "number", from: portV, to };
  } else if (typeof portV === "string") {
    if (!isPortName(portV)) problems.add(child(path, "port"), `${quote(portV)} is neither a port number nor a port name (IANA_SVC_NAME)`);
    if (present(endV)) problems.add(child(path, "endPort"), "cannot be used with a named port");
    spec = { protocol, kind: "name", name: portV };
  } else {
    problems.add(child(path, "port"), "must be a port number or a port name");
  }
  return spec && problems.count === before ? [spec] : [];
}

function rejectUnknown(o: Record<string, unknown>, path: string, known: readonly string[], problems: Problems): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) problems.add(child(path, k), `unknown field (${known.join(", ")} are known)`);
}
