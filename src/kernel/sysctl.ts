// Reads and writes /proc/sys. /proc/sys/net is per network namespace: it shows the namespace
// of the process that reads it, so the plugin sees its node's settings, not the host's.
import { readTextIfExists, writeText } from "../util/files.ts";

export function readSysctl(key: string): string | undefined {
  try {
    return readTextIfExists(`/proc/sys/${key.replaceAll(".", "/")}`)?.trim();
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
