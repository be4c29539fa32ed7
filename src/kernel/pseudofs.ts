// The host's pseudo filesystems gauze needs: tracefs (the kernel's drop events, for the packet-ring
// observer and trace) and bpffs (pinned eBPF programs and maps). A fresh machine has neither
// mounted. Whoever owns the host state mounts what is missing: `gauze lab up` (and the last `lab
// down` unmounts what it mounted), or the agent when it has the right to. Where nobody may mount
// one, callers say which feature is off and the one command that fixes it; nothing turns off
// silently.
import { readFileSync, existsSync } from "node:fs";
import { cString, describeErrno, libc } from "./libc.ts";

export interface PseudoFs {
  kind: "tracefs" | "bpffs";
  /** Where gauze expects it (the first of `paths` that is mounted counts). */
  path: string;
  /** Other places it may be mounted (tracefs under debugfs on older set-ups). */
  alsoAt: string[];
  fstype: string;
  /** What gauze does with it: named when it is missing. */
  feature: string;
  /** The one command that mounts it. */
  fix: string;
}

export const TRACEFS: PseudoFs = {
  kind: "tracefs", path: "/sys/kernel/tracing", alsoAt: ["/sys/kernel/debug/tracing"], fstype: "tracefs",
  feature: "drops with the kernel's reason (the skb:kfree_skb tracepoint)",
  fix: "mount -t tracefs nodev /sys/kernel/tracing",
};

export const BPFFS: PseudoFs = {
  kind: "bpffs", path: "/sys/fs/bpf", alsoAt: [], fstype: "bpf",
  feature: "pinned eBPF programs and maps (kept across agent restarts)",
  fix: "mount -t bpf bpf /sys/fs/bpf",
};

export const PSEUDO_FILESYSTEMS: readonly PseudoFs[] = [TRACEFS, BPFFS];

/** Mount points and their filesystem types, as this process's mount namespace sees them. */
export function mountTable(): Map<string, string> {
  const out = new Map<string, string>();
  let text = "";
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": mount point is field 5,
    // the type follows the " - " separator (optional fields come before it).
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const mountPoint = line.slice(0, sep).split(" ")[4];
    const fstype = line.slice(sep + 3).split(" ")[0];
    if (mountPoint && fstype) out.set(mountPoint.replace(/\\040/g, " "), fstype);
  }
  return out;
}

/** Where `fs` is mounted now, or undefined. */
export function mountedAt(fs: PseudoFs, table = mountTable()): string | undefined {
  return [fs.path, ...fs.alsoAt].find((p) => table.get(p) === fs.fstype);
}

export type MountOutcome = { ok: true; mounted: boolean; at: string } | { ok: false; why: string };

/**
 * Mounts `fs` at its path unless it is mounted already (`mounted` says whether this call did it).
 * Refused (no CAP_SYS_ADMIN in the mount namespace's owner, a read-only /sys): why, with the fix.
 */
export function ensureMounted(fs: PseudoFs): MountOutcome {
  const at = mountedAt(fs);
  if (at) return { ok: true, mounted: false, at };
  if (!existsSync(fs.path)) return { ok: false, why: `${fs.kind} is not mounted and ${fs.path} does not exist (this kernel may lack it)` };
  const c = libc();
  if (c.mount(cString(fs.fstype === "bpf" ? "bpf" : "nodev"), cString(fs.path), cString(fs.fstype), 0, null) !== 0) {
    return { ok: false, why: `${fs.kind} is not mounted at ${fs.path}, and mounting it failed: ${describeErrno(c.errno())}` };
  }
  return { ok: true, mounted: true, at: fs.path };
}

/** Unmounts `fs` from its path (what `ensureMounted` mounted); false when it was not mounted or is busy. */
export function unmount(fs: PseudoFs): boolean {
  if (mountTable().get(fs.path) !== fs.fstype) return false;
  return libc().umount2(cString(fs.path), 0) === 0;
}

/** "off: drops with the kernel's reason (...): tracefs is not mounted ...; fix: mount -t tracefs ..." */
export function missingLine(fs: PseudoFs, why: string): string {
  return `off: ${fs.feature}: ${why}; fix: ${fs.fix}`;
}
