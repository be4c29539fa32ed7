// Network namespaces: entering one for a moment (setns(2) on this thread, and always back),
// creating and deleting the named ones gauze owns (/run/netns/gz-*, as `ip netns add` makes
// them: a bind mount of a fresh namespace), and starting processes inside one. Everything that
// runs "in a node" or "in a pod" comes through here; nothing builds an nsenter command line.
import { EEXIST, EINVAL, ENOENT, cString, describeErrno, libc } from "./libc.ts";
import { readText, writeFd } from "./files.ts";

export const NETNS_PREFIX = "gz-";
export const NETNS_DIR = "/run/netns";

const CLONE_NEWNET = 0x40000000;
const NS_GET_NSTYPE = 0xb703;
const O_RDONLY = 0, O_CREAT = 0o100, O_EXCL = 0o200, O_CLOEXEC = 0o2000000;
const MS_BIND = 0x1000, MS_REC = 0x4000, MS_SHARED = 1 << 20;
const MNT_DETACH = 2;

export class NetnsError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
    this.name = "NetnsError";
  }
}

function fail(what: string): never {
  const n = libc().errno();
  throw new NetnsError(`${what}: ${describeErrno(n)}`, n);
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** A namespace given by name (under /run/netns) or by path. */
export function netnsArg(nameOrPath: string): string {
  return nameOrPath.includes("/") ? nameOrPath : netnsPath(nameOrPath);
}

/** What a path is: gone, a network namespace, or something else (the NS_GET_NSTYPE ioctl). */
export function netnsKind(path: string): "missing" | "netns" | "other" {
  const c = libc();
  const fd = c.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return c.errno() === ENOENT ? "missing" : "other";
  try {
    return c.ioctl(fd, NS_GET_NSTYPE) === CLONE_NEWNET ? "netns" : "other";
  } finally {
    c.close(fd);
  }
}

/** An open descriptor of a namespace file (for IFLA_NET_NS_FD); the caller closes it. */
export function openNetns(path: string): number {
  const fd = libc().open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) fail(`open ${path}`);
  return fd;
}

/**
 * Runs `fn` with this thread in the network namespace at `path`, and always back. Sockets
 * opened and processes started meanwhile belong to that namespace, and /proc/sys/net opened
 * meanwhile shows its settings; so does nothing else.
 */
export function inNetns<T>(path: string, fn: () => T): T {
  const c = libc();
  const self = c.open(cString("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC, 0);
  if (self < 0) fail("open /proc/thread-self/ns/net");
  const target = c.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (target < 0) {
    c.close(self);
    fail(`open ${path}`);
  }
  try {
    if (c.setns(target, CLONE_NEWNET) !== 0) fail(`enter network namespace ${path}`);
    try {
      return fn();
    } finally {
      back(self);
    }
  } finally {
    c.close(target);
    c.close(self);
  }
}

function back(self: number): void {
  if (libc().setns(self, CLONE_NEWNET) !== 0) {
    // Stuck in another namespace: nothing after this may touch the network. Stop here.
    writeFd(2, "gauze: cannot return to the original network namespace; exiting\n");
    process.exit(70);
  }
}

function mustBeOurs(name: string): void {
  if (!name.startsWith(NETNS_PREFIX) || name.includes("/") || name.length > 200) {
    throw new NetnsError(`refusing to touch namespace ${JSON.stringify(name)}: gauze only manages ${NETNS_PREFIX}* namespaces`, EINVAL);
  }
}

/**
 * /run/netns as `ip netns add` prepares it: a shared mount, so that the namespaces mounted on
 * it show up in every mount namespace (containers started later see them too). Returns
 * whether this call made /run/netns a mount (so the last lab down can undo exactly that).
 */
export function prepareNetnsDir(): boolean {
  const c = libc();
  if (c.mkdir(cString(NETNS_DIR), 0o755) !== 0 && c.errno() !== EEXIST) fail(`mkdir ${NETNS_DIR}`);
  const dir = cString(NETNS_DIR);
  if (c.mount(cString("none"), dir, null, MS_SHARED | MS_REC, null) === 0) return false;
  if (c.errno() !== EINVAL) fail(`make ${NETNS_DIR} shared`);
  // Not a mount point yet: bind it onto itself, then share it.
  if (c.mount(dir, dir, cString("none"), MS_BIND | MS_REC, null) !== 0) fail(`bind ${NETNS_DIR}`);
  if (c.mount(cString("none"), dir, null, MS_SHARED | MS_REC, null) !== 0) fail(`make ${NETNS_DIR} shared`);
  return true;
}

/** Creates the named namespace /run/netns/<name> (gz-* only) and returns its path. */
export function addNetns(name: string): string {
  mustBeOurs(name);
  prepareNetnsDir();
  const c = libc();
  const path = netnsPath(name);
  const fd = c.open(cString(path), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) fail(`create ${path}`);
  c.close(fd);
  const self = c.open(cString("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC, 0);
  if (self < 0) {
    c.unlink(cString(path));
    fail("open /proc/thread-self/ns/net");
  }
  try {
    // A fresh namespace for this thread only, pinned by a bind mount, then back.
    if (c.unshare(CLONE_NEWNET) !== 0) {
      const n = c.errno();
      c.unlink(cString(path));
      throw new NetnsError(`new network namespace ${name}: ${describeErrno(n)}`, n);
    }
    const bound = c.mount(cString("/proc/thread-self/ns/net"), cString(path), cString("none"), MS_BIND, null);
    const n = c.errno();
    back(self);
    if (bound !== 0) {
      c.unlink(cString(path));
      throw new NetnsError(`mount namespace ${name} on ${path}: ${describeErrno(n)}`, n);
    }
  } finally {
    c.close(self);
  }
  return path;
}

/** Removes the named namespace; the kernel frees it once nothing else holds it. Quiet when gone. */
export function delNetns(name: string): void {
  mustBeOurs(name);
  const c = libc();
  const path = cString(netnsPath(name));
  if (c.umount2(path, MNT_DETACH) !== 0 && c.errno() !== EINVAL && c.errno() !== ENOENT) fail(`unmount ${netnsPath(name)}`);
  if (c.unlink(path) !== 0 && c.errno() !== ENOENT) fail(`remove ${netnsPath(name)}`);
}

/** Undoes prepareNetnsDir's mount (only when it made one, and only when nothing is left in it). */
export function unmountNetnsDir(): void {
  libc().umount2(cString(NETNS_DIR), MNT_DETACH);
}

/**
 * Detaches every mount point at or below `dir` (deepest first), e.g. what a container runtime
 * left under a lab's storage; returns how many there were.
 */
export function unmountUnder(dir: string): number {
  let points: string[] = [];
  try {
    points = readText("/proc/self/mountinfo").split("\n").map((l) => l.split(" ")[4] ?? "")
      .map((p) => p.replace(/\\040/g, " ")).filter((p) => p === dir || p.startsWith(dir.endsWith("/") ? dir : `${dir}/`));
  } catch {
    return 0;
  }
  const c = libc();
  for (const p of points.sort((a, b) => b.length - a.length)) c.umount2(cString(p), MNT_DETACH);
  return points.length;
}
