// CNI results: one internal shape (SPEC 1.1.0), converted to the version the config asked for
// on the way out, and parsed from any supported version on the way in (prevResult, delegated
// IPAM plugins).
import { compareVersions } from "./version.ts";
import { CniCode, CniError } from "./errors.ts";
import { parseCIDR, parseIP } from "../net/cidr.ts";

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniIPConfig {
  /** CIDR: the address with its subnet's prefix length, e.g. 10.244.1.5/24. */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIPConfig[];
  routes?: CniRoute[];
  dns?: CniDNS;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Shapes `r` for `version`: 0.3.x/0.4.0 carry ips[].version; 1.1.0 adds route and interface fields. */
export function convertResult(r: CniResult, version: string): Record<string, unknown> {
  const legacy = compareVersions(version, "1.0.0") < 0;
  const v11 = compareVersions(version, "1.1.0") >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces) {
    out.interfaces = r.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      return o;
    });
  }
  if (r.ips) {
    out.ips = r.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (legacy) o.version = ip.address.includes(":") ? "6" : "4";
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (r.routes) {
    out.routes = r.routes.map((rt) => {
      const o: Record<string, unknown> = { dst: rt.dst };
      if (rt.gw) o.gw = rt.gw;
      if (v11) for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) if (rt[k] !== undefined) o[k] = rt[k];
      return o;
    });
  }
  out.dns = r.dns ?? {};
  return out;
}

/** Parses a result of any supported version (prevResult, or a delegated IPAM plugin's output). */
export function parseResult(v: unknown, what: string): CniResult {
  if (!isRecord(v)) throw new CniError(CniCode.DecodeFailure, `${what} is not a JSON object`);
  const out: CniResult = { cniVersion: typeof v.cniVersion === "string" ? v.cniVersion : "" };
  if (Array.isArray(v.interfaces)) {
    out.interfaces = v.interfaces.filter(isRecord).map((i) => ({
      name: String(i.name ?? ""),
      ...(typeof i.mac === "string" ? { mac: i.mac } : {}),
      ...(typeof i.mtu === "number" ? { mtu: i.mtu } : {}),
      ...(typeof i.sandbox === "string" ? { sandbox: i.sandbox } : {}),
    }));
  }
  if (Array.isArray(v.ips)) {
    out.ips = v.ips.map((ip, idx) => {
      if (!isRecord(ip) || typeof ip.address !== "string" || !parseCIDR(ip.address)) {
        throw new CniError(CniCode.DecodeFailure, `${what}.ips[${idx}].address is not a CIDR`);
      }
      if (ip.gateway !== undefined && (typeof ip.gateway !== "string" || !parseIP(ip.gateway))) {
        throw new CniError(CniCode.DecodeFailure, `${what}.ips[${idx}].gateway is not an IP address`);
      }
      return {
        address: ip.address,
        ...(typeof ip.gateway === "string" ? { gateway: ip.gateway } : {}),
        ...(typeof ip.interface === "number" ? { interface: ip.interface } : {}),
      };
    });
  }
  if (Array.isArray(v.routes)) {
    out.routes = v.routes.map((rt, idx) => {
      if (!isRecord(rt) || typeof rt.dst !== "string" || !parseCIDR(rt.dst)) {
        throw new CniError(CniCode.DecodeFailure, `${what}.routes[${idx}].dst is not a CIDR`);
      }
      const o: CniRoute = { dst: rt.dst };
      if (typeof rt.gw === "string") o.gw = rt.gw;
      for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) if (typeof rt[k] === "number") o[k] = rt[k] as number;
      return o;
    });
  }
  if (isRecord(v.dns)) out.dns = v.dns as CniDNS;
  return out;
}
