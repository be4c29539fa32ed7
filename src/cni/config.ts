// Loads the network configuration from stdin in one place: JSON decoding, defaults,
// precedence (config fields, then the agent's subnet file, then CNI_ARGS / args / runtimeConfig
// for requested addresses) and a semantic check that names the bad field.
import { CniCode, CniError } from "./errors.ts";
import { requireSupportedVersion } from "./version.ts";
import { type CniDNS, type CniResult, type CniRoute, parseResult } from "./result.ts";
import { DEFAULT_SUBNET_FILE, SubnetFileError, readSubnetFile } from "../node/subnet-file.ts";
import type { CniEnv } from "./env.ts";
import { validateIfname } from "./env.ts";
import { type IP, addToIP, formatIP, formatPrefix, parseCIDR, parseIP } from "../net/cidr.ts";
import { type RangeSet, type RangeSpec, RangeError, canonicalizeRangeSet } from "../ipam/range.ts";
import { DEFAULT_DATA_DIR } from "../ipam/disk-store.ts";

export interface BuiltinIpam {
  kind: "builtin";
  rangeSets: RangeSet[];
  routes: CniRoute[];
  dataDir: string;
  requested: IP[];
}

export interface DelegatedIpam {
  kind: "delegate";
  type: string;
}

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface NetConf {
  cniVersion: string;
  name: string;
  /** bridge (a veth to the node's bridge, routed) or macvlan (on the node's uplink: pods on the underlay L2, no tunnel, no bridge). */
  mode: "bridge" | "macvlan";
  /** macvlan: the parent interface; absent: the one the node's IPv4 default route uses. */
  master?: string;
  bridge: string;
  /** Undefined: take the existing bridge's MTU, else 1500. */
  mtu?: number;
  isGateway: boolean;
  isDefaultGateway: boolean;
  hairpinMode: boolean;
  ipMasq: boolean;
  subnetFile: string;
  /** Addresses come from the agent's subnet file (no ipam block): the agent runs on this node, and the plugin leaves it pod records. */
  agentManaged?: boolean;
  /** The eBPF datapath (the agent's conflist has it while the datapath runs): from_pod on each pod's host veth, its endpoint entries. */
  datapath?: { type: "ebpf"; pinDir: string };
  /** When the subnet file is unusable this is an empty built-in IPAM (DEL and GC still find
   *  reservations in the default data dir) and `ipamProblem` says why ADD/STATUS cannot work. */
  ipam: BuiltinIpam | DelegatedIpam;
  ipamProblem?: CniError;
  dns?: CniDNS;
  prevResult?: CniResult;
  validAttachments?: Attachment[];
  /** The config exactly as received: passed on to delegated IPAM plugins. */
  rawText: string;
}

type Json = Record<string, unknown>;

const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/;
const BUILTIN_IPAM_TYPES = new Set(["", "gauze", "host-local"]);

function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function invalid(field: string, message: string, fix?: string): CniError {
  return new CniError(CniCode.InvalidConfig, `network config field "${field}" ${message}`, fix);
}

function optBool(raw: Json, field: string, dflt: boolean): boolean {
  const v = raw[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw invalid(field, `must be true or false, not ${JSON.stringify(v)}`);
  return v;
}

function optString(raw: Json, field: string, dflt: string, prefix = ""): string {
  const v = raw[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "string" || v === "") throw invalid(prefix + field, `must be a non-empty string, not ${JSON.stringify(v)}`);
  return v;
}

export function parseJsonConfig(text: string): Json {
  if (text.trim() === "") throw new CniError(CniCode.DecodeFailure, "no network configuration on stdin", "the runtime must pass the network config as JSON on stdin");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CniError(CniCode.DecodeFailure, `network config is not valid JSON: ${(e as Error).message}`, "fix the JSON syntax of the config file in the CNI config directory");
  }
  if (!isRecord(v)) throw new CniError(CniCode.DecodeFailure, "network config must be a JSON object");
  return v;
}

export function loadConfig(text: string, env: CniEnv): NetConf {
  const raw = parseJsonConfig(text);
  const cniVersion = requireSupportedVersion(raw.cniVersion);
  const name = raw.name;
  if (typeof name !== "string" || !NETWORK_NAME.test(name)) {
    throw invalid("name", name === undefined ? "is missing" : `${JSON.stringify(name)} is not a valid network name`,
      "use letters, digits, '_', '.' and '-', starting with a letter or digit");
  }
  rejectUnsupported(raw);
  const bridge = optString(raw, "bridge", "cni0");
  const badBridge = validateIfname(bridge);
  if (badBridge) throw invalid("bridge", `${JSON.stringify(bridge)} ${badBridge}`);
  const mode = optString(raw, "mode", "bridge");
  if (mode !== "bridge" && mode !== "macvlan") throw invalid("mode", `${JSON.stringify(mode)} is not a mode`, "use \"bridge\" (the default) or \"macvlan\"");
  const master = raw.master === undefined ? undefined : optString(raw, "master", "");
  if (master !== undefined) {
    const bad = validateIfname(master);
    if (bad) throw invalid("master", `${JSON.stringify(master)} ${bad}`);
  }
  const conf: NetConf = {
    cniVersion,
    name,
    mode,
    ...(master !== undefined ? { master } : {}),
    bridge,
    isGateway: optBool(raw, "isGateway", true),
    isDefaultGateway: optBool(raw, "isDefaultGateway", true),
    hairpinMode: optBool(raw, "hairpinMode", true),
    ipMasq: optBool(raw, "ipMasq", false),
    subnetFile: optString(raw, "subnetFile", DEFAULT_SUBNET_FILE),
    rawText: text,
    ipam: { kind: "builtin", rangeSets: [], routes: [], dataDir: DEFAULT_DATA_DIR, requested: [] },
  };
  if (mode === "macvlan") {
    // No bridge to be a gateway: the pods' default route goes to the underlay's router.
    conf.isGateway = false;
    conf.hairpinMode = false;
  } else if (conf.isDefaultGateway && !conf.isGateway) {
    // As in the reference bridge plugin: a default gateway needs the bridge to be one.
    conf.isGateway = true;
  }
  if (raw.datapath !== undefined && raw.datapath !== null) {
    const d = raw.datapath;
    if (!isRecord(d) || d.type !== "ebpf" || typeof d.pinDir !== "string" || !d.pinDir.startsWith("/")) {
      throw invalid("datapath", `must be {"type": "ebpf", "pinDir": "<absolute path on bpffs>"}, not ${JSON.stringify(d)}`, "the agent writes it; leave it out for the classic datapath");
    }
    if (mode === "bridge") conf.datapath = { type: "ebpf", pinDir: d.pinDir };
  }
  const mtu = raw.mtu;
  if (mtu !== undefined && mtu !== null && mtu !== 0) {
    if (typeof mtu !== "number" || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
      throw invalid("mtu", `must be an integer from 68 to 65535, not ${JSON.stringify(mtu)}`);
    }
    conf.mtu = mtu;
  }
  if (raw.dns !== undefined) {
    if (!isRecord(raw.dns)) throw invalid("dns", "must be an object");
    conf.dns = raw.dns as CniDNS;
  }
  if (raw.prevResult !== undefined && raw.prevResult !== null) conf.prevResult = parseResult(raw.prevResult, "prevResult");
  const valid = raw["cni.dev/valid-attachments"];
  if (valid !== undefined) {
    if (!Array.isArray(valid)) throw invalid("cni.dev/valid-attachments", "must be a list");
    conf.validAttachments = valid.map((a, i) => {
      if (!isRecord(a) || typeof a.containerID !== "string" || typeof a.ifname !== "string") {
        throw invalid(`cni.dev/valid-attachments[${i}]`, "must be {\"containerID\": ..., \"ifname\": ...}");
      }
      return { containerId: a.containerID, ifname: a.ifname };
    });
  }
  resolveIpam(raw, env, conf);
  return conf;
}

/** Reference bridge options gauze does not implement: refuse them rather than ignore them. */
function rejectUnsupported(raw: Json): void {
  const checks: [string, (v: unknown) => boolean][] = [
    ["vlan", (v) => v !== 0],
    ["vlanTrunk", (v) => !(Array.isArray(v) && v.length === 0)],
    ["macspoofchk", (v) => v !== false],
    ["promiscMode", (v) => v !== false],
    ["enabledad", (v) => v !== false],
  ];
  for (const [field, isSet] of checks) {
    const v = raw[field];
    if (v !== undefined && v !== null && isSet(v)) {
      throw new CniError(CniCode.UnsupportedField, `unsupported field ${field}=${JSON.stringify(v)}`,
        `gauze does not implement "${field}"; remove it from the config`);
    }
  }
}

function resolveIpam(raw: Json, env: CniEnv, conf: NetConf): void {
  if (raw.ipam !== undefined && raw.ipam !== null) {
    if (!isRecord(raw.ipam)) throw invalid("ipam", "must be an object");
    const ipam = raw.ipam;
    const type = ipam.type === undefined ? "" : ipam.type;
    if (typeof type !== "string") throw invalid("ipam.type", "must be a string");
    if (!BUILTIN_IPAM_TYPES.has(type)) {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.\-]*$/.test(type)) throw invalid("ipam.type", `${JSON.stringify(type)} is not a plugin name`);
      conf.ipam = { kind: "delegate", type };
      return;
    }
    conf.ipam = builtinFromBlock(ipam, raw, env);
    return;
  }
  // No ipam block: this node's subnet comes from the agent's subnet file.
  conf.agentManaged = true;
  let subnetEnv;
  try {
    subnetEnv = readSubnetFile(conf.subnetFile);
  } catch (e) {
    const se = e as SubnetFileError;
    conf.ipam = { kind: "builtin", rangeSets: [], routes: [], dataDir: optString(raw, "dataDir", DEFAULT_DATA_DIR), requested: [] };
    conf.ipamProblem = new CniError(se.missing ? CniCode.TryAgainLater : CniCode.InvalidConfig, se.message,
      se.missing
        ? "the gauze agent writes it once it has leased a subnet for this node: check that the agent runs (gauze doctor), or give the config an \"ipam\" block"
        : "the subnet file is written by the gauze agent; restart the agent to rewrite it");
    return;
  }
  const sub = parseCIDR(subnetEnv.subnet);
  const net = parseCIDR(subnetEnv.network);
  if (!sub || !net) {
    conf.ipamProblem = new CniError(CniCode.InvalidConfig, `subnet file ${conf.subnetFile} holds a bad CIDR (${!sub ? subnetEnv.subnet : subnetEnv.network})`, "restart the gauze agent to rewrite it");
    return;
  }
  if (conf.mtu === undefined && subnetEnv.mtu !== undefined) conf.mtu = subnetEnv.mtu;
  const dataDir = optString(raw, "dataDir", DEFAULT_DATA_DIR);
  if (conf.mode === "macvlan") {
    // Pods join the node's L2 subnet: addresses from this node's lease, with the underlay's prefix
    // (every other node's pods are on-link) and its router as the default gateway.
    const under = subnetEnv.underlay ? parseCIDR(subnetEnv.underlay) : undefined;
    if (!under || !subnetEnv.underlayGateway || !parseIP(subnetEnv.underlayGateway)) {
      conf.ipamProblem = new CniError(CniCode.InvalidConfig, `subnet file ${conf.subnetFile} has no GAUZE_UNDERLAY and GAUZE_UNDERLAY_GATEWAY: the agent does not run the macvlan backend`, "set the network config's Backend.Type to macvlan, or give this config an \"ipam\" block with the underlay's subnet, a range and its gateway");
      return;
    }
    const first = addToIP(sub.prefix.ip, 1n);
    const last = addToIP(sub.prefix.ip, (1n << BigInt(32 - sub.prefix.bits)) - 2n);
    conf.ipam = builtinFromBlock({ ranges: [[{ subnet: formatPrefix(under.prefix), rangeStart: formatIP(first), rangeEnd: formatIP(last), gateway: subnetEnv.underlayGateway }]], dataDir }, raw, env);
    return;
  }
  // As flannel does: when the agent does not masquerade, the plugin does (unless told otherwise).
  if (raw.ipMasq === undefined && subnetEnv.ipMasq === false) conf.ipMasq = true;
  // Dual-stack: a second range set (its own reservation cursor, as host-local keeps one per set)
  // and a route to the IPv6 pod network: every pod gets one address of each family.
  const sub6 = subnetEnv.ipv6Subnet ? parseCIDR(subnetEnv.ipv6Subnet) : undefined;
  const net6 = subnetEnv.ipv6Network ? parseCIDR(subnetEnv.ipv6Network) : undefined;
  if (subnetEnv.ipv6Subnet && (!sub6 || !net6 || sub6.prefix.ip.family !== 6 || net6.prefix.ip.family !== 6)) {
    conf.ipamProblem = new CniError(CniCode.InvalidConfig, `subnet file ${conf.subnetFile} holds a bad IPv6 CIDR (${subnetEnv.ipv6Subnet}, ${subnetEnv.ipv6Network})`, "restart the gauze agent to rewrite it");
    return;
  }
  conf.ipam = builtinFromBlock({
    ranges: [[{ subnet: formatPrefix(sub.prefix) }], ...(sub6 ? [[{ subnet: formatPrefix(sub6.prefix) }]] : [])],
    routes: [{ dst: formatPrefix(net.prefix) }, ...(net6 ? [{ dst: formatPrefix(net6.prefix) }] : [])], dataDir,
  }, raw, env);
}

function builtinFromBlock(ipam: Json, raw: Json, env: CniEnv): BuiltinIpam {
  let specs: RangeSpec[][];
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges) || ipam.ranges.some((s) => !Array.isArray(s))) {
      throw invalid("ipam.ranges", "must be a list of lists of ranges, e.g. [[{\"subnet\": \"10.244.1.0/24\"}]]");
    }
    specs = ipam.ranges as RangeSpec[][];
  } else if (ipam.subnet !== undefined) {
    specs = [[{ subnet: ipam.subnet as string, rangeStart: ipam.rangeStart as string, rangeEnd: ipam.rangeEnd as string, gateway: ipam.gateway as string }]];
  } else {
    throw invalid("ipam", "has neither \"ranges\" nor \"subnet\"", "add \"ranges\": [[{\"subnet\": \"10.244.1.0/24\"}]]");
  }
  let rangeSets: RangeSet[];
  try {
    rangeSets = specs.map((set, i) => canonicalizeRangeSet(set, `ipam.ranges[${i}]`));
  } catch (e) {
    if (e instanceof RangeError) throw invalid(e.field, e.message.startsWith(e.field) ? e.message.slice(e.field.length).trim() : e.message);
    throw e;
  }
  const routes: CniRoute[] = [];
  if (ipam.routes !== undefined) {
    if (!Array.isArray(ipam.routes)) throw invalid("ipam.routes", "must be a list of {\"dst\": CIDR, \"gw\"?: IP}");
    ipam.routes.forEach((r, i) => {
      if (!isRecord(r) || typeof r.dst !== "string" || !parseCIDR(r.dst)) throw invalid(`ipam.routes[${i}].dst`, `${JSON.stringify(isRecord(r) ? r.dst : r)} is not a CIDR`);
      if (r.gw !== undefined && (typeof r.gw !== "string" || !parseIP(r.gw))) throw invalid(`ipam.routes[${i}].gw`, `${JSON.stringify(r.gw)} is not an IP address`);
      routes.push({ dst: r.dst, ...(typeof r.gw === "string" ? { gw: r.gw } : {}) });
    });
  }
  const dataDir = optString(ipam, "dataDir", DEFAULT_DATA_DIR, "ipam.");
  if (!dataDir.startsWith("/")) throw invalid("ipam.dataDir", "must be an absolute path");
  return { kind: "builtin", rangeSets, routes, dataDir, requested: requestedIPs(raw, env) };
}

/** Addresses asked for by CNI_ARGS IP=, args.cni.ips or runtimeConfig.ips (host-local's three ways). */
function requestedIPs(raw: Json, env: CniEnv): IP[] {
  const texts: string[] = [...(env.args.ips ?? [])];
  const fromArgs = isRecord(raw.args) && isRecord(raw.args.cni) ? raw.args.cni.ips : undefined;
  const fromRuntime = isRecord(raw.runtimeConfig) ? raw.runtimeConfig.ips : undefined;
  for (const list of [fromArgs, fromRuntime]) if (Array.isArray(list)) for (const t of list) texts.push(String(t));
  return texts.map((t) => {
    const ip = parseIP(t.includes("/") ? t.slice(0, t.indexOf("/")) : t);
    if (!ip) throw new CniError(CniCode.InvalidConfig, `requested IP ${JSON.stringify(t)} is not an IP address`);
    return ip;
  });
}
