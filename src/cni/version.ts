// CNI spec versions: which we speak, how to compare them, and which verbs each allows.
import { CniCode, CniError } from "./errors.ts";

export const SPEC_VERSION = "1.1.0";
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

function parts(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function compareVersions(a: string, b: string): number {
  const pa = parts(a) ?? [0, 0, 0];
  const pb = parts(b) ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

export function requireSupportedVersion(v: unknown): string {
  if (typeof v !== "string" || v === "") {
    throw new CniError(CniCode.InvalidConfig, "network config has no cniVersion", `add "cniVersion": "${SPEC_VERSION}" to the config`);
  }
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new CniError(CniCode.IncompatibleVersion, `cniVersion ${v} is not supported by gauze`,
      `use one of ${SUPPORTED_VERSIONS.join(", ")}`);
  }
  return v;
}

/** CHECK exists from 0.4.0, STATUS and GC from 1.1.0. */
export function requireVerbAllowed(verb: string, v: string): void {
  const since = verb === "CHECK" ? "0.4.0" : verb === "STATUS" || verb === "GC" ? "1.1.0" : undefined;
  if (since && compareVersions(v, since) < 0) {
    throw new CniError(CniCode.IncompatibleVersion, `${verb} is not defined for cniVersion ${v} (needs ${since} or later)`,
      `raise cniVersion to ${since} or later`);
  }
}
