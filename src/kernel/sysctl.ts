// Reads and writes /proc/sys. /proc/sys/net is per network namespace: it shows the namespace
// of the thread that opens it, so the plugin sees its node's settings, not the host's, and
// `netns` reads or writes another namespace's (netns.ts:inNetns around the open).
import { readTextIfExists, writeText } from "./files.ts";
import { inNetns } from "./netns.ts";

/** The /proc/sys path of a dotted key; `dev` fills a "{dev}" segment (interface names may hold dots, as gauze.1 does). */
export function sysctlPath(key: string, dev?: string): string {
  return `/proc/sys/${key.split(".").map((p) => (p === "{dev}" && dev ? dev : p)).join("/")}`;
}

export function readSysctl(key: string, dev?: string, netns?: string): string | undefined {
  const read = () => {
    try {
      return readTextIfExists(sysctlPath(key, dev))?.trim();
    } catch {
      return undefined;
    }
  };
  return netns ? inNetns(netns, read) : read();
}

/** Writes only when the value differs; returns true when it changed something. */
export function ensureSysctl(key: string, value: string, netns?: string): boolean {
  const write = () => {
    if (readSysctl(key) === value) return false;
    writeText(sysctlPath(key), value);
    return true;
  };
  return netns ? inNetns(netns, write) : write();
}

/** The running kernel's version (kernel.osrelease), e.g. [6, 1, 0]; undefined when unreadable. */
export function kernelVersion(): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(readSysctl("kernel.osrelease") ?? "");
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}
