// The few synchronous file operations the plugin needs, without node:fs on its start-up path:
// under bun (the shipped executable) they call libc through bun:ffi, which costs 1 ms to bind
// instead of the 2 ms node:fs costs to load, and gives flock(2) and the namespace ioctl that
// node:fs lacks. Under node (unit tests through tsx) they fall back to node:fs.
import { nodeBuiltin } from "./builtin.ts";

export class FileError extends Error {
  constructor(readonly code: string, readonly path: string, op: string) {
    super(`${op} ${path}: ${code}`);
    this.name = "FileError";
  }
}

const ERRNO: Record<number, string> = { 1: "EPERM", 2: "ENOENT", 4: "EINTR", 5: "EIO", 9: "EBADF", 13: "EACCES", 17: "EEXIST", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 25: "ENOTTY", 28: "ENOSPC", 30: "EROFS" };

const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0o100, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_CLOEXEC = 0o2000000;
const LOCK_EX = 2, LOCK_UN = 8;
const NS_GET_NSTYPE = 0xb703;
const CLONE_NEWNET = 0x40000000;
const X_OK = 1;

interface Libc {
  open(path: Uint8Array, flags: number, mode: number): number;
  close(fd: number): number;
  read(fd: number, buf: Uint8Array, n: number): number | bigint;
  write(fd: number, buf: Uint8Array, n: number): number | bigint;
  link(a: Uint8Array, b: Uint8Array): number;
  unlink(p: Uint8Array): number;
  mkdir(p: Uint8Array, mode: number): number;
  access(p: Uint8Array, mode: number): number;
  flock(fd: number, op: number): number;
  ioctl(fd: number, req: number): number;
  setns(fd: number, nstype: number): number;
  pipe2(fds: Int32Array, flags: number): number;
  opendir(p: Uint8Array): unknown;
  readdir(dir: unknown): unknown;
  closedir(dir: unknown): number;
  errno(): number;
  direntName(ent: unknown): string;
}

let libc: Libc | undefined;

// Callers write `libc ?? bind()`: a call to bind() per file operation made it hot enough for
// the JIT to compile it (on a thread of its own) in every plugin run.
function bind(): Libc | undefined {
  if (typeof Bun === "undefined") return undefined;
  if (libc) return libc;
  // require, not import: a static import of bun:ffi would not resolve under node (unit tests).
  const ffi = require("bun:ffi") as typeof import("bun:ffi");
  const T = ffi.FFIType;
  const { symbols: s } = ffi.dlopen("libc.so.6", {
    open: { args: [T.ptr, T.i32, T.i32], returns: T.i32 },
    close: { args: [T.i32], returns: T.i32 },
    read: { args: [T.i32, T.ptr, T.u64], returns: T.i64 },
    write: { args: [T.i32, T.ptr, T.u64], returns: T.i64 },
    link: { args: [T.ptr, T.ptr], returns: T.i32 },
    unlink: { args: [T.ptr], returns: T.i32 },
    mkdir: { args: [T.ptr, T.i32], returns: T.i32 },
    access: { args: [T.ptr, T.i32], returns: T.i32 },
    flock: { args: [T.i32, T.i32], returns: T.i32 },
    ioctl: { args: [T.i32, T.u64], returns: T.i32 },
    setns: { args: [T.i32, T.i32], returns: T.i32 },
    pipe2: { args: [T.ptr, T.i32], returns: T.i32 },
    opendir: { args: [T.ptr], returns: T.ptr },
    readdir: { args: [T.ptr], returns: T.ptr },
    closedir: { args: [T.ptr], returns: T.i32 },
    __errno_location: { args: [], returns: T.ptr },
  });
  const sym = s as unknown as Record<string, (...a: unknown[]) => unknown>;
  libc = {
    open: (p, f, m) => sym.open!(p, f, m) as number,
    close: (fd) => sym.close!(fd) as number,
    read: (fd, b, n) => sym.read!(fd, b, n) as number,
    write: (fd, b, n) => sym.write!(fd, b, n) as number,
    link: (a, b) => sym.link!(a, b) as number,
    unlink: (p) => sym.unlink!(p) as number,
    mkdir: (p, m) => sym.mkdir!(p, m) as number,
    access: (p, m) => sym.access!(p, m) as number,
    flock: (fd, op) => sym.flock!(fd, op) as number,
    ioctl: (fd, r) => sym.ioctl!(fd, r) as number,
    setns: (fd, t) => sym.setns!(fd, t) as number,
    pipe2: (fds, flags) => sym.pipe2!(fds, flags) as number,
    opendir: (p) => sym.opendir!(p),
    readdir: (d) => sym.readdir!(d),
    closedir: (d) => sym.closedir!(d) as number,
    errno: () => ffi.read.i32(sym.__errno_location!() as import("bun:ffi").Pointer, 0),
    // struct dirent on Linux/glibc (x86_64, aarch64): d_ino 8, d_off 8, d_reclen 2, d_type 1, d_name.
    direntName: (ent) => new ffi.CString(ent as import("bun:ffi").Pointer, 19).toString(),
  };
  return libc;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const cstr = (s: string) => enc.encode(s + "\0");

function fail(c: Libc, path: string, op: string): never {
  const n = c.errno();
  throw new FileError(ERRNO[n] ?? `errno ${n}`, path, op);
}

function nodeCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? "EIO";
}

/** One read buffer for the process: IPAM reads dozens of tiny reservation files per ADD. */
const readBuf = new Uint8Array(65536);

function readFd(c: Libc, fd: number): string {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const n = Number(c.read(fd, readBuf, readBuf.length));
    if (n < 0) {
      if (c.errno() === 4) continue;
      throw new FileError(ERRNO[c.errno()] ?? "EIO", `fd ${fd}`, "read");
    }
    if (n === 0) break;
    chunks.push(readBuf.slice(0, n));
  }
  if (chunks.length === 0) return "";
  if (chunks.length === 1) return dec.decode(chunks[0]);
  return dec.decode(Buffer.concat(chunks));
}

export function readText(path: string): string {
  const c = libc ?? bind();
  if (!c) {
    try {
      return nodeBuiltin("node:fs").readFileSync(path, "utf8");
    } catch (e) {
      throw new FileError(nodeCode(e), path, "read");
    }
  }
  const fd = c.open(cstr(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) fail(c, path, "open");
  try {
    return readFd(c, fd);
  } finally {
    c.close(fd);
  }
}

/**
 * The bytes of a small file, or undefined if it is not there. Under bun the result is a view of
 * one shared buffer, valid until the next read: for scanning many tiny files without a string
 * or an allocation per file.
 */
export function readBytesIfExists(path: string): Uint8Array | undefined {
  const c = libc ?? bind();
  if (!c) {
    try {
      return nodeBuiltin("node:fs").readFileSync(path);
    } catch (e) {
      if (nodeCode(e) === "ENOENT") return undefined;
      throw new FileError(nodeCode(e), path, "read");
    }
  }
  const fd = c.open(cstr(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    if (c.errno() === 2) return undefined;
    fail(c, path, "open");
  }
  try {
    let used = 0;
    for (;;) {
      const n = Number(c.read(fd, readBuf.subarray(used), readBuf.length - used));
      if (n < 0) {
        if (c.errno() === 4) continue;
        fail(c, path, "read");
      }
      if (n === 0 || used + n === readBuf.length) return readBuf.subarray(0, used + n);
      used += n;
    }
  } finally {
    c.close(fd);
  }
}

export function readTextIfExists(path: string): string | undefined {
  try {
    return readText(path);
  } catch (e) {
    if (e instanceof FileError && e.code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * A pipe for a child's output that this process reads with plain read(2) (bun only; undefined
 * elsewhere). Reading a child's stdout through Bun's streams starts two pool threads per
 * plugin call; the plugin reads its ip's few kilobytes at the end, when ip has exited anyway.
 */
export function makePipe(): { read: number; write: number } | undefined {
  const c = libc ?? bind();
  if (!c) return undefined;
  const fds = new Int32Array(2);
  if (c.pipe2(fds, O_CLOEXEC) !== 0) return undefined;
  return { read: fds[0]!, write: fds[1]! };
}

/** Reads a descriptor to its end and closes it. */
export function readAllAndClose(fd: number): string {
  const c = (libc ?? bind())!;
  try {
    return readFd(c, fd);
  } finally {
    c.close(fd);
  }
}

export function closeFd(fd: number): void {
  (libc ?? bind())?.close(fd);
}

export function readStdin(): string {
  const c = libc ?? bind();
  if (!c) {
    try {
      return nodeBuiltin("node:fs").readFileSync(0, "utf8");
    } catch {
      return "";
    }
  }
  try {
    return readFd(c, 0);
  } catch {
    return "";
  }
}

function writeAll(c: Libc, fd: number, data: Uint8Array, what: string): void {
  let off = 0;
  while (off < data.length) {
    const n = Number(c.write(fd, data.subarray(off), data.length - off));
    if (n < 0) {
      if (c.errno() === 4) continue;
      fail(c, what, "write");
    }
    off += n;
  }
}

/** Writes to an open descriptor (1 = stdout, 2 = stderr). */
export function writeFd(fd: number, text: string): void {
  const c = libc ?? bind();
  if (!c) {
    nodeBuiltin("node:fs").writeSync(fd, text);
    return;
  }
  writeAll(c, fd, enc.encode(text), `fd ${fd}`);
}

export function writeText(path: string, text: string, opts: { append?: boolean; mode?: number } = {}): void {
  const c = libc ?? bind();
  if (!c) {
    try {
      nodeBuiltin("node:fs").writeFileSync(path, text, { flag: opts.append ? "a" : "w", mode: opts.mode ?? 0o644 });
      return;
    } catch (e) {
      throw new FileError(nodeCode(e), path, "write");
    }
  }
  const fd = c.open(cstr(path), O_WRONLY | O_CREAT | O_CLOEXEC | (opts.append ? O_APPEND : O_TRUNC), opts.mode ?? 0o644);
  if (fd < 0) fail(c, path, "open");
  try {
    writeAll(c, fd, enc.encode(text), path);
  } finally {
    c.close(fd);
  }
}

/** link(2): creates `newPath` for `existing`; false when `newPath` already exists. */
export function linkFile(existing: string, newPath: string): boolean {
  const c = libc ?? bind();
  if (!c) {
    try {
      nodeBuiltin("node:fs").linkSync(existing, newPath);
      return true;
    } catch (e) {
      if (nodeCode(e) === "EEXIST") return false;
      throw new FileError(nodeCode(e), newPath, "link");
    }
  }
  if (c.link(cstr(existing), cstr(newPath)) === 0) return true;
  if (c.errno() === 17) return false;
  fail(c, newPath, "link");
}

/** unlink(2); false when it was not there. */
export function removeFile(path: string): boolean {
  const c = libc ?? bind();
  if (!c) {
    try {
      nodeBuiltin("node:fs").unlinkSync(path);
      return true;
    } catch (e) {
      if (nodeCode(e) === "ENOENT") return false;
      throw new FileError(nodeCode(e), path, "unlink");
    }
  }
  if (c.unlink(cstr(path)) === 0) return true;
  if (c.errno() === 2) return false;
  fail(c, path, "unlink");
}

export function makeDirs(path: string, mode = 0o755): void {
  const c = libc ?? bind();
  if (!c) {
    try {
      nodeBuiltin("node:fs").mkdirSync(path, { recursive: true, mode });
      return;
    } catch (e) {
      throw new FileError(nodeCode(e), path, "mkdir");
    }
  }
  if (c.mkdir(cstr(path), mode) === 0 || c.errno() === 17) return;
  if (c.errno() !== 2) fail(c, path, "mkdir");
  const parent = path.replace(/\/[^/]+\/?$/, "");
  if (parent === path || parent === "") fail(c, path, "mkdir");
  makeDirs(parent, mode);
  if (c.mkdir(cstr(path), mode) !== 0 && c.errno() !== 17) fail(c, path, "mkdir");
}

export function listDir(path: string): string[] {
  const c = libc ?? bind();
  if (!c) {
    try {
      return nodeBuiltin("node:fs").readdirSync(path);
    } catch (e) {
      throw new FileError(nodeCode(e), path, "readdir");
    }
  }
  const dir = c.opendir(cstr(path));
  if (!dir) fail(c, path, "opendir");
  const names: string[] = [];
  try {
    for (;;) {
      const ent = c.readdir(dir);
      if (!ent) break;
      const name = c.direntName(ent);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    c.closedir(dir);
  }
  return names;
}

export function isExecutable(path: string): boolean {
  const c = libc ?? bind();
  if (!c) {
    try {
      nodeBuiltin("node:fs").accessSync(path, X_OK);
      return true;
    } catch {
      return false;
    }
  }
  return c.access(cstr(path), X_OK) === 0;
}

/** What a CNI_NETNS path is: gone, a network namespace, or something else. */
export function netnsKind(path: string): "missing" | "netns" | "other" {
  const c = libc ?? bind();
  if (!c) {
    const fs = nodeBuiltin("node:fs");
    try {
      // Without the ioctl: namespace files all live on nsfs, one device.
      return fs.statSync(path).dev === fs.statSync("/proc/self/ns/net").dev ? "netns" : "other";
    } catch {
      return "missing";
    }
  }
  const fd = c.open(cstr(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return c.errno() === 2 ? "missing" : "other";
  try {
    return c.ioctl(fd, NS_GET_NSTYPE) === CLONE_NEWNET ? "netns" : "other";
  } finally {
    c.close(fd);
  }
}

export interface FileLock {
  release(): void;
}

/**
 * An exclusive flock(2) on `path`: the lock the reference host-local plugin takes on
 * <dataDir>/<network>/lock. The kernel drops it when the process dies, so a SIGKILLed ADD
 * cannot leave the store locked. Blocking, like host-local (others hold it for milliseconds).
 */
export function lockFile(path: string): FileLock {
  const c = libc ?? bind();
  if (!c) throw new FileError("ENOSYS", path, "flock (needs the bun executable, not node)");
  const fd = c.open(cstr(path), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644);
  if (fd < 0) fail(c, path, "open");
  while (c.flock(fd, LOCK_EX) !== 0) {
    if (c.errno() !== 4) {
      c.close(fd);
      fail(c, path, "flock");
    }
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      c.flock(fd, LOCK_UN);
      c.close(fd);
    },
  };
}


/**
 * Runs `fn` with this thread in the network namespace at `path`, and always back. Processes
 * spawned meanwhile start in that namespace: the plugin runs ip for the pod's side this way,
 * without an nsenter process in between. Undefined under node (no setns there).
 */
export function inNetns<T>(path: string, fn: () => T): { value: T } | undefined {
  const c = libc ?? bind();
  if (!c) return undefined;
  const self = c.open(cstr("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC, 0);
  if (self < 0) return undefined;
  const target = c.open(cstr(path), O_RDONLY | O_CLOEXEC, 0);
  if (target < 0) { c.close(self); fail(c, path, "open"); }
  try {
    if (c.setns(target, CLONE_NEWNET) !== 0) fail(c, path, "setns");
    try {
      return { value: fn() };
    } finally {
      if (c.setns(self, CLONE_NEWNET) !== 0) {
        // Stuck in the pod's namespace: nothing after this may touch the network. Stop here.
        writeFd(2, "gauze: cannot return to the node's network namespace; exiting\n");
        process.exit(70);
      }
    }
  } finally {
    c.close(target);
    c.close(self);
  }
}
