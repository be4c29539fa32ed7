// Named network namespaces (/run/netns/<name>) that gauze itself creates: the lab's nodes and
// pods, the smoke run's, the tests'. Every name gauze creates starts with "gz-".
import { runSync, type SpawnResult } from "./spawn.ts";

export const NETNS_PREFIX = "gz-";
export const NETNS_DIR = "/run/netns";

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

function mustBeOurs(name: string): void {
  if (!name.startsWith(NETNS_PREFIX)) throw new Error(`refusing to touch namespace ${name}: gauze only manages ${NETNS_PREFIX}* namespaces`);
}

export function addNetns(name: string): string {
  mustBeOurs(name);
  const r = runSync(["ip", "netns", "add", name]);
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr.trim()}`);
  return netnsPath(name);
}

export function delNetns(name: string): void {
  mustBeOurs(name);
  runSync(["ip", "netns", "del", name]);
}

/** Runs argv inside the namespace (nsenter: no /sys remount, no extra process). */
export function execIn(name: string, argv: readonly string[], opts: { input?: string; env?: Record<string, string | undefined> } = {}): SpawnResult {
  return runSync(["nsenter", `--net=${netnsPath(name)}`, ...argv], opts);
}
