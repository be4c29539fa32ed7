// Reads and writes /proc/sys. /proc/sys/net is per network namespace: it shows the namespace
// of the process that reads it, so the plugin sees its node's settings, not the host's.
import { readTextIfExists, writeText } from "../util/files.ts";

/** The /proc/sys path of a dotted key; `dev` fills a "{dev}" segment (interface names may hold dots, as gauze.1 does). */
export function sysctlPath(key: string, dev?: string): string {
  return `/proc/sys/${key.split(".").map((p) => (p === "{dev}" && dev ? dev : p)).join("/")}`;
}

export function readSysctl(key: string, dev?: string): string | undefined {
  try {
    return readTextIfExists(sysctlPath(key, dev))?.trim();
  } catch {
    return undefined;
  }
}

/** Writes only when the value differs; returns true when it changed something. */
export function ensureSysctl(key: string, value: string): boolean {
  if (readSysctl(key) === value) return false;
  writeText(`/proc/sys/${key.replaceAll(".", "/")}`, value);
  return true;
}
