// Reads and writes /proc/sys. /proc/sys/net is per network namespace: it shows the namespace
// of the process that reads it, so the plugin sees its node's settings, not the host's.
import { readFileSync, writeFileSync } from "node:fs";

export function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${key.replaceAll(".", "/")}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Writes only when the value differs; returns true when it changed something. */
export function ensureSysctl(key: string, value: string): boolean {
  if (readSysctl(key) === value) return false;
  writeFileSync(`/proc/sys/${key.replaceAll(".", "/")}`, value);
  return true;
}
