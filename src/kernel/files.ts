// The few synchronous file operations the plugin needs, on libc (libc.ts) rather than node:fs:
// binding libc costs well under a millisecond where loading node:fs costs 2, and it gives
// flock(2), which node:fs lacks. The CLI's bulk file work still uses node:fs.
import type { Pointer } from "bun:ffi";
import { DIRENT_NAME, EEXIST, EINTR, ENOENT, type Libc, errnoName, libc } from "./libc.ts";

export class FileError extends Error {
  constructor(readonly code: string, readonly path: string, op: string) {
    super(`${op} ${path}: ${code}`);
    this.name = "FileError";
  }
}

const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_NOFOLLOW = 0o400000, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, STATX_BASIC_STATS = 0x7ff;
const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFLNK = 0o120000;
const LOCK_EX = 2, LOCK_UN = 8;
const EISDIR = 21;
const X_OK = 1;

const dec = new TextDecoder();
const enc = new TextEncoder();

// Every function here is written to be called per file, many times per plugin run, without
// calling small helpers on the way: `C ?? (C = libc())` instead of libc(), enc.encode(path + "\0")
// instead of a cString helper. Helpers called per file get hot enough for the JIT, which then
// compiles them on a thread of its own: about a millisecond per plugin run.
let C: Libc | undefined;

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
  const c = C ?? (C = libc());
  const fd = c.open(enc.encode(path + "\0"), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) fail(c, path, "open");
  try {
    return readFd(c, fd, path);
  } finally {
    c.close(fd);
  }
}

/** A file of a directory and its bytes (a copy). */
export interface DirFile {
  name: string;
  bytes: Uint8Array;
}

export interface ReadFilesOptions {
  /** Skip files whose name starts with one of these characters (".l": ".", "..", lock, last_...). */
  skipFirst?: string;
  /** Keep only files whose content, after leading white space, starts with these bytes. */
  startsWith?: Uint8Array;
}

/**
 * The files of `dir` (with their contents) in one call: for IPAM, which reads a small file per
 * pod on every ADD and DEL. Each file is opened by the name's pointer in the directory entry
 * (openat, no string made) and compared as bytes; only the files kept get a name string. Files
 * that vanish meanwhile, and directories, are skipped; a file over 64 KB is an error.
 */
export function readFilesIn(dir: string, o: ReadFilesOptions = {}): DirFile[] {
  const c = C ?? (C = libc());
  const d = c.opendir(enc.encode(dir + "\0"));
  if (!d) fail(c, dir, "opendir");
  const dfd = c.dirfd(d);
  const skip = o.skipFirst ?? "";
  const skipCodes = Array.from(skip, (ch) => ch.charCodeAt(0));
  const want = o.startsWith;
  const out: DirFile[] = [];
  try {
    for (;;) {
      const ent = c.readdir(d);
      if (!ent) break;
      if (skipCodes.length && skipCodes.includes(c.peekU8(ent, DIRENT_NAME))) continue;
      // O_NOFOLLOW: a symlink planted among the reservations is not followed (an error, not a read).
      const fd = c.openat(dfd, ((ent as unknown as number) + DIRENT_NAME) as unknown as Pointer, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
      if (fd < 0) {
        if (c.errno() === ENOENT) continue; // released while we listed
        fail(c, `${dir}/${c.direntName(ent)}`, "open");
      }
      let used = 0;
      try {
        for (;;) {
          const n = c.read(fd, readBuf.subarray(used), readBuf.length - used);
          if (n < 0) {
            if (c.errno() === EINTR) continue;
            if (c.errno() === EISDIR) { used = -1; break; }
            fail(c, `${dir}/${c.direntName(ent)}`, "read");
          }
          if (n === 0) break;
          used += n;
          if (used === readBuf.length) throw new FileError("EFBIG", `${dir}/${c.direntName(ent)}`, `read (larger than ${readBuf.length} bytes)`);
        }
      } finally {
        c.close(fd);
      }
      if (used < 0) continue;
      if (want) {
        let i = 0;
        while (i < used && (readBuf[i] === 32 || (readBuf[i]! >= 9 && readBuf[i]! <= 13))) i++;
        if (used - i < want.length) continue;
        let same = true;
        for (let k = 0; k < want.length && same; k++) same = readBuf[i + k] === want[k];
        if (!same) continue;
      }
      out.push({ name: c.direntName(ent), bytes: readBuf.slice(0, used) });
    }
  } finally {
    c.closedir(d);
  }
  return out;
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
  const c = C ?? (C = libc());
  const fds = new Int32Array(2);
  if (c.pipe2(fds, O_CLOEXEC) !== 0) return undefined;
  return { read: fds[0]!, write: fds[1]! };
}

/** Reads a descriptor to its end and closes it. */
export function readAllAndClose(fd: number): string {
  const c = C ?? (C = libc());
  try {
    return readFd(c, fd, `fd ${fd}`);
  } finally {
    c.close(fd);
  }
}

export function closeFd(fd: number): void {
  (C ?? (C = libc())).close(fd);
}

export function readStdin(): string {
  try {
    return readFd(C ?? (C = libc()), 0, "stdin");
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
  writeAll(C ?? (C = libc()), fd, enc.encode(text), `fd ${fd}`);
}

/**
 * Writes a file. Never through a symlink (O_NOFOLLOW); with `exclusive`, only a file that did
 * not exist (O_EXCL), as temp files are made.
 */
export function writeText(path: string, text: string, opts: { append?: boolean; mode?: number; exclusive?: boolean } = {}): void {
  const c = C ?? (C = libc());
  const fd = c.open(enc.encode(path + "\0"), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (opts.exclusive ? O_EXCL : 0) | (opts.append ? O_APPEND : O_TRUNC), opts.mode ?? 0o644);
  if (fd < 0) fail(c, path, "open");
  try {
    writeAll(c, fd, enc.encode(text), path);
  } finally {
    c.close(fd);
  }
}

/**
 * Writes a file whole, atomically: a fresh temp name beside it, created exclusively and never
 * through a symlink (O_EXCL | O_NOFOLLOW: nobody can plant one there for us to write through),
 * then rename(2), which replaces whatever is at `path` (a symlink included) rather than
 * following it. Readers see the old file or the new one, never half of one. The temp name ends
 * in ".tmp-<pid>": never *.conf or *.conflist, so a runtime scanning net.d cannot load it half-written.
 */
export function writeAtomic(path: string, text: string, mode = 0o644): void {
  const c = C ?? (C = libc());
  const slash = path.lastIndexOf("/");
  if (slash > 0) makeDirs(path.slice(0, slash));
  const tmp = `${path}.tmp-${process.pid}`;
  c.unlink(enc.encode(tmp + "\0")); // a temp file left by a killed writer with our PID
  writeText(tmp, text, { exclusive: true, mode });
  if (c.rename(enc.encode(tmp + "\0"), enc.encode(path + "\0")) !== 0) {
    const err = c.errno();
    c.unlink(enc.encode(tmp + "\0"));
    throw new FileError(errnoName(err), path, "rename");
  }
}

/** link(2): creates `newPath` for `existing`; false when `newPath` already exists. */
export function linkFile(existing: string, newPath: string): boolean {
  const c = C ?? (C = libc());
  if (c.link(enc.encode(existing + "\0"), enc.encode(newPath + "\0")) === 0) return true;
  if (c.errno() === EEXIST) return false;
  fail(c, newPath, "link");
}

/** unlink(2); false when it was not there. */
export function removeFile(path: string): boolean {
  const c = C ?? (C = libc());
  if (c.unlink(enc.encode(path + "\0")) === 0) return true;
  if (c.errno() === ENOENT) return false;
  fail(c, path, "unlink");
}

export function makeDirs(path: string, mode = 0o755): void {
  const c = C ?? (C = libc());
  if (c.mkdir(enc.encode(path + "\0"), mode) === 0 || c.errno() === EEXIST) return;
  if (c.errno() !== ENOENT) fail(c, path, "mkdir");
  const parent = path.replace(/\/[^/]+\/?$/, "");
  if (parent === path || parent === "") fail(c, path, "mkdir");
  makeDirs(parent, mode);
  if (c.mkdir(enc.encode(path + "\0"), mode) !== 0 && c.errno() !== EEXIST) fail(c, path, "mkdir");
}

export function listDir(path: string): string[] {
  const c = C ?? (C = libc());
  const dir = c.opendir(enc.encode(path + "\0"));
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

/** Owner, mode and kind of a path itself (a symlink is not followed). Undefined when it is not there. */
export function statPath(path: string): { uid: number; mode: number; isDir: boolean; isSymlink: boolean } | undefined {
  const c = C ?? (C = libc());
  const buf = new Uint8Array(256); // struct statx: uid at 20, mode (u16) at 28, the same on every architecture
  if (c.statx(AT_FDCWD, enc.encode(path + "\0"), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, buf) !== 0) {
    if (c.errno() === ENOENT) return undefined;
    fail(c, path, "statx");
  }
  const v = new DataView(buf.buffer);
  const mode = v.getUint16(28, true);
  return { uid: v.getUint32(20, true), mode: mode & 0o7777, isDir: (mode & S_IFMT) === S_IFDIR, isSymlink: (mode & S_IFMT) === S_IFLNK };
}

/**
 * Refuses a directory others could tamper with: a symlink, not a directory, not owned by root,
 * or writable by group or others. IPAM's state lives there: whoever can write it can make the
 * plugin hand out an address twice.
 */
export function requirePrivateDir(path: string): void {
  const st = statPath(path);
  if (!st) throw new FileError("ENOENT", path, "check");
  const euid = process.geteuid?.() ?? 0;
  const problem = st.isSymlink ? "is a symlink" : !st.isDir ? "is not a directory" : st.uid !== 0 && st.uid !== euid ? `is owned by uid ${st.uid}, not root` : (st.mode & 0o022) !== 0 ? `is writable by ${(st.mode & 0o020) ? "its group" : "others"} (mode ${st.mode.toString(8)})` : undefined;
  if (problem) throw new Error(`state directory ${path} ${problem}: refused, since whoever can change it can make IPAM hand out an address twice (chown root and chmod go-w it, or point dataDir elsewhere)`);
}

export function isExecutable(path: string): boolean {
  return (C ?? (C = libc())).access(enc.encode(path + "\0"), X_OK) === 0;
}

export interface FileLock {
  release(): void;
}

/**
 * An exclusive flock(2) on a directory that exists and is never removed (e.g. /var/lib): a lock
 * for state whose own directory comes and goes with it (the lab's host state).
 */
export function lockDir(path: string): FileLock {
  const c = C ?? (C = libc());
  const fd = c.open(enc.encode(path + "\0"), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) fail(c, path, "open");
  return flockHeld(c, fd, path);
}

/** Waits for the exclusive lock on an open descriptor; the lock owns the descriptor. */
function flockHeld(c: Libc, fd: number, path: string): FileLock {
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

/**
 * An exclusive flock(2) on `path`: the lock the reference host-local plugin takes on
 * <dataDir>/<network>/lock. The kernel drops it when the process dies, so a SIGKILLed ADD
 * cannot leave the store locked. Blocking, like host-local (others hold it for milliseconds).
 */
export function lockFile(path: string): FileLock {
  const c = C ?? (C = libc());
  const fd = c.open(enc.encode(path + "\0"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644);
  if (fd < 0) fail(c, path, "open");
  return flockHeld(c, fd, path);
}
