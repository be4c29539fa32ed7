// Kubernetes' syntax rules for the strings a policy carries (label keys and values, named ports)
// and the small helpers the parsers share for reading untrusted JSON. Labels are checked because
// a key the API server would refuse can never match a real label; accepting it silently would
// turn a typo into a rule that quietly selects nothing.
import { printable } from "../util/text.ts";
import type { Problem } from "./types.ts";

const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Why `key` is not a label key (optional DNS-subdomain prefix, '/', a name of at most 63), or undefined. */
export function labelKeyError(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    return `label key prefix ${quote(prefix)} is not a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !NAME_PART.test(name)) {
    return `label key ${quote(key)} is not a qualified name (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)`;
  }
  return undefined;
}

export function labelValueError(value: string): string | undefined {
  if (value.length === 0) return undefined;
  if (value.length > 63 || !NAME_PART.test(value)) {
    return `label value ${quote(value)} is not valid (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)`;
  }
  return undefined;
}

/** A container port name (IANA_SVC_NAME): at most 15 of [a-z0-9-], a letter somewhere, no "--". */
export function isPortName(s: string): boolean {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes("--");
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An own property, so a key like "__proto__" or "constructor" in untrusted JSON reads as data. */
export function field(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** Go's JSON decoding reads null as absent; so do we. */
export function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

export function quote(s: string): string {
  return JSON.stringify(printable(s.length > 80 ? `${s.slice(0, 80)}...` : s));
}

/** `path.key`, or `path["odd key"]` when the key is not an identifier. */
export function child(path: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${quote(key)}]`;
}

export function at(path: string, index: number): string {
  return `${path}[${index}]`;
}

export class Problems {
  readonly list: Problem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
  get count(): number {
    return this.list.length;
  }
}
