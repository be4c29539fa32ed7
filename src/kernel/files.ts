// The few synchronous file operations the plugin needs, on libc (libc.ts) rather than node:fs:
// binding libc costs well under a millisecond where loading node:fs costs 2, and it gives
// flock(2), which node:fs lacks. The CLI's bulk file work still uses node:fs.
import { EEXIST, EINTR, ENOENT, type Libc, cString, errnoName, libc } from "./libc.ts";

export class FileError extends Error {
  constructor(readonly code: string, readonly path: string, op: string) {
    super(`${op} ${path}: ${code}`);
    this.name = "FileError";
  }
}

const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0o100, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_CLOEXEC = 0o2000000;
const LOCK_EX = 2, LOCK_UN = 8;
const X_OK = 1;

const dec = new TextDecoder();
const enc = new TextEncoder();

function fail(c: Libc, path: string, op: string): never {
  throw new FileError(errnoName(c.errno()), path, op);
}

/** One read buffer for the process: IPAM reads dozens of tiny reservation files per ADD. */
const readBuf = new Uint8Array(65536);

function readFd(c: Libc, fd: number, what: string): string {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const n = c.read(fd, readBuf, readBuf.length);
    if (n < 0) {
      if (c.errno() === EINTR) continue;
      fail(c, what, "read");
    }
    if (n === 0) break;
    chunks.push(readBuf.slice(0, n));
  }
  if (chunks.length === 0) return "";
  if (chunks.length === 1) return dec.decode(chunks[0]);
  return dec.decode(Buffer.concat(chunks));
}

export function readText(path: string): string {
  const c = libc();
  const fd = c.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) fail(c, path, "open");
  try {
    return readFd(c, fd, path);
  } finally {
    c.close(fd);
  }
}

/**
 * The bytes of a small file, or undefined if it is not there. The result is a view of one
 * shared buffer, valid until the next read: for scanning many tiny files without a string or
 * an allocation per file. A file larger than the buffer is an error, never a silent cut.
 */
export function readBytesIfExists(path: string): Uint8Array | undefined {
  const c = libc();
  const fd = c.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    if (c.errno() === ENOENT) return undefined;
    fail(c, path, "open");
  }
  try {
    let used = 0;
    for (;;) {
      const n = c.read(fd, readBuf.subarray(used), readBuf.length - used);
      if (n < 0) {
        if (c.errno() === EINTR) continue;
        fail(c, path, "read");
      }
      if (n === 0) return readBuf.subarray(0, used);
      used += n;
      if (used === readBuf.length) throw new FileError("EFBIG", path, `read (larger than ${readBuf.length} bytes)`);
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

/** A pipe whose ends this process reads and writes with plain read(2)/write(2). */
export function makePipe(): { read: number; write: number } | undefined {
  const c = libc();
  const fds = new Int32Array(2);
  if (c.pipe2(fds, O_CLOEXEC) !== 0) return undefined;
  return { read: fds[0]!, write: fds[1]! };
}

/** Reads a descriptor to its end and closes it. */
export function readAllAndClose(fd: number): string {
  const c = libc();
  try {
    return readFd(c, fd, `fd ${fd}`);
  } finally {
    c.close(fd);
  }
}

export function closeFd(fd: number): void {
  libc().close(fd);
}

export function readStdin(): string {
  try {
    return readFd(libc(), 0, "stdin");
  } catch {
    return "";
  }
}

function writeAll(c: Libc, fd: number, data: Uint8Array, what: string): void {
  let off = 0;
  while (off < data.length) {
    const n = c.write(fd, data.subarray(off), data.length - off);
    if (n < 0) {
      if (c.errno() === EINTR) continue;
      fail(c, what, "write");
    }
    off += n;
  }
}

/** Writes to an open descriptor (1 = stdout, 2 = stderr). */
export function writeFd(fd: number, text: string): void {
  writeAll(libc(), fd, enc.encode(text), `fd ${fd}`);
}

export function writeText(path: string, text: string, opts: { append?: boolean; mode?: number } = {}): void {
  const c = libc();
  const fd = c.open(cString(path), O_WRONLY | O_CREAT | O_CLOEXEC | (opts.append ? O_APPEND : O_TRUNC), opts.mode ?? 0o644);
  if (fd < 0) fail(c, path, "open");
  try {
    writeAll(c, fd, enc.encode(text), path);
  } finally {
    c.close(fd);
  }
}

/** link(2): creates `newPath` for `existing`; false when `newPath` already exists. */
export function linkFile(existing: string, newPath: string): boolean {
  const c = libc();
  if (c.link(cString(existing), cString(newPath)) === 0) return true;
  if (c.errno() === EEXIST) return false;
  fail(c, newPath, "link");
}

/** unlink(2); false when it was not there. */
export function removeFile(path: string): boolean {
  const c = libc();
  if (c.unlink(cString(path)) === 0) return true;
  if (c.errno() === ENOENT) return false;
  fail(c, path, "unlink");
}

export function makeDirs(path: string, mode = 0o755): void {
  const c = libc();
  if (c.mkdir(cString(path), mode) === 0 || c.errno() === EEXIST) return;
  if (c.errno() !== ENOENT) fail(c, path, "mkdir");
  const parent = path.replace(/\/[^/]+\/?$/, "");
  if (parent === path || parent === "") fail(c, path, "mkdir");
  makeDirs(parent, mode);
  if (c.mkdir(cString(path), mode) !== 0 && c.errno() !== EEXIST) fail(c, path, "mkdir");
}

export function listDir(path: string): string[] {
  const c = libc();
  const dir = c.opendir(cString(path));
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
  return libc().access(cString(path), X_OK) === 0;
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
  const c = libc();
  const fd = c.open(cString(path), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644);
  if (fd < 0) fail(c, path, "open");
  while (c.flock(fd, LOCK_EX) !== 0) {
    if (c.errno() !== EINTR) {
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
