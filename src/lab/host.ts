// What labs add to the host itself, and take away again: /var/lib/gauze, the /run/netns mount
// that `ip netns` also makes, and the pseudo filesystems the agents need (tracefs for drops with
// the kernel's reason, bpffs for pinned eBPF objects) where the host has them unmounted, as a
// fresh machine does. The lab that finds something missing adds it and notes it in
// /var/lib/gauze/lab/.host.json; the last `lab down` removes exactly what was noted, so
// `gauze lab down --all` leaves the host as it found it. Both run under one lock (on /var/lib,
// which outlives the lab's own directories), so a lab coming up while the last one goes down
// never finds tracefs unmounted under it.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { lockDir, writeAtomic } from "../kernel/files.ts";
import { NETNS_DIR, unmountNetnsDir } from "../kernel/netns.ts";
import { PSEUDO_FILESYSTEMS, type PseudoFs, ensureMounted, missingLine, mountTable, unmount } from "../kernel/pseudofs.ts";
import { PIN_ROOT } from "../kernel/bpf/pin.ts";
import { LAB_HOME, type Progress, listLabs } from "./state.ts";

interface HostState {
  /** Absent in records of older gauze, which wrote one only when it made the directory. */
  createdLabHome?: boolean;
  createdVarLibGauze: boolean;
  createdNetnsMount: boolean;
  /** Pseudo filesystems a lab mounted because the host had them unmounted. */
  mounted?: PseudoFs["kind"][];
}

const HOST_STATE = join(LAB_HOME, ".host.json");

function netnsMounted(): boolean {
  return mountTable().has(NETNS_DIR);
}

function readHost(): HostState | undefined {
  try {
    return JSON.parse(readFileSync(HOST_STATE, "utf8")) as HostState;
  } catch {
    return undefined;
  }
}

function hostLock() {
  return lockDir(dirname(dirname(LAB_HOME)));
}

/**
 * Readies the host for a lab and runs `register` (which saves the new lab's state) under the
 * host lock: the first lab notes what the host lacked; any lab mounts a missing tracefs or bpffs
 * and notes it. A mount that fails is said (the agents then report the feature as off).
 */
export function prepareHost(progress: Progress, register: () => void): void {
  const lock = hostLock();
  try {
    let host = readHost();
    if (!host) {
      // Without a record, a LAB_HOME that exists was made by an older gauze or by hand: nothing of it is ours to remove.
      const fresh = !existsSync(LAB_HOME);
      host = { createdLabHome: fresh, createdVarLibGauze: fresh && !existsSync("/var/lib/gauze"), createdNetnsMount: fresh && !netnsMounted(), mounted: [] };
    }
    mkdirSync(LAB_HOME, { recursive: true });
    for (const fs of PSEUDO_FILESYSTEMS) {
      const r = ensureMounted(fs);
      if (!r.ok) progress(`host: ${missingLine(fs, r.why)}`);
      else if (r.mounted) {
        progress(`host: mounted ${fs.kind} at ${r.at} (${fs.feature}); the last lab down unmounts it`);
        host.mounted = [...new Set([...(host.mounted ?? []), fs.kind])];
      }
    }
    writeAtomic(HOST_STATE, JSON.stringify(host) + "\n");
    register();
  } finally {
    lock.release();
  }
}

/** Undoes what labs added to the host itself, once the last lab is gone. */
export function cleanHost(progress: Progress = () => undefined): void {
  if (!existsSync(LAB_HOME)) return;
  const lock = hostLock();
  try {
    if (listLabs().length > 0) return;
    const host = readHost();
    if (!host) return; // made by an older gauze or by hand: leave it
    for (const kind of host.mounted ?? []) {
      const fs = PSEUDO_FILESYSTEMS.find((f) => f.kind === kind)!;
      if (unmount(fs)) progress(`host: unmounted ${fs.kind} from ${fs.path} (a lab had mounted it)`);
      else if (mountTable().get(fs.path) === fs.fstype) progress(`host: could not unmount ${fs.kind} from ${fs.path} (still in use); umount ${fs.path} once nothing uses it`);
    }
    rmSync(HOST_STATE, { force: true });
    // On a bpffs that was there before (so not unmounted above): the labs' agents' pin root, empty now.
    try { rmdirSync(PIN_ROOT); } catch { /* not there, or not empty: someone else's */ }
    if (host.createdLabHome !== false) {
      try { rmdirSync(LAB_HOME); } catch { /* not empty: someone else's files */ }
    }
    if (host.createdVarLibGauze) {
      try { rmdirSync("/var/lib/gauze"); } catch { /* not empty */ }
    }
    if (host.createdNetnsMount) {
      let left: string[] = [];
      try { left = readdirSync(NETNS_DIR); } catch { /* gone */ }
      if (left.length === 0) {
        unmountNetnsDir();
        try { rmdirSync(NETNS_DIR); } catch { /* keep */ }
      }
    }
  } finally {
    lock.release();
  }
}
