// The one binding to libc, through bun:ffi. Everything gauze asks of the kernel directly (file
// I/O, flock, namespaces, mounts, netlink sockets) goes through these few functions; binding
// them all costs under half a millisecond (measured), so they are bound together on first use.
// Only the shipped runtime (bun) has bun:ffi: the plugin, the CLI and the unit tests run on it.
import type { Pointer } from "bun:ffi";

export interface Libc {
  open(path: Uint8Array, flags: number, mode: number): number;
  close(fd: number): number;
  read(fd: number, buf: Uint8Array, n: number): number;
  write(fd: number, buf: Uint8Array, n: number): number;
  link(a: Uint8Array, b: Uint8Array): number;
  unlink(p: Uint8Array): number;
  rename(from: Uint8Array, to: Uint8Array): number;
  mkdir(p: Uint8Array, mode: number): number;
  access(p: Uint8Array, mode: number): number;
  flock(fd: number, op: number): number;
  ioctl(fd: number, req: number): number;
  setns(fd: number, nstype: number): number;
  unshare(flags: number): number;
  mount(source: Uint8Array | null, target: Uint8Array, fstype: Uint8Array | null, flags: number, data: null): number;
  umount2(target: Uint8Array, flags: number): number;
  pipe2(fds: Int32Array, flags: number): number;
  opendir(p: Uint8Array): Pointer | null;
  dirfd(dir: Pointer): number;
  openat(dirfd: number, path: Uint8Array | Pointer, flags: number, mode: number): number;
  readdir(dir: Pointer): Pointer | null;
  closedir(dir: Pointer): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  connect(fd: number, addr: Uint8Array, len: number): number;
  getsockname(fd: number, addr: Uint8Array, len: Uint32Array): number;
  send(fd: number, buf: Uint8Array, n: number, flags: number): number;
  recv(fd: number, buf: Uint8Array, n: number, flags: number): number;
  /** recvfrom(2): the sender's address too (a raw socket's datagrams carry no other). */
  recvfrom(fd: number, buf: Uint8Array, n: number, flags: number, addr: Uint8Array, len: Uint32Array): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, len: Uint32Array): number;
  clock_gettime(clock: number, ts: BigInt64Array): number;
  poll(fds: Uint8Array, n: number, timeoutMs: number): number;
  statx(dirfd: number, path: Uint8Array, flags: number, mask: number, buf: Uint8Array): number;
  errno(): number;
  strerror(n: number): string;
  /** d_name of a struct dirent (Linux/glibc, x86_64 and aarch64: at offset DIRENT_NAME). */
  direntName(ent: Pointer): string;
  /** A byte at a pointer (bun:ffi's own reader: native, no JS wrapper). */
  peekU8(p: Pointer, offset: number): number;
  /** mmap(2) of a descriptor (a packet socket's ring); null on failure (errno says why). */
  mmap(length: number, prot: number, flags: number, fd: number): Pointer | null;
  munmap(p: Pointer, length: number): number;
  /** The memory at a pointer as bytes, without copying (the ring is read in place). */
  view(p: Pointer, length: number): Uint8Array;
  /** The address of a buffer, for structs that hold pointers (a socket filter program). */
  addressOf(b: Uint8Array): number;
  /** syscall(2) with three arguments, the second a buffer (bpf(2): command, attr, size). */
  syscall(nr: number, a: number, b: Uint8Array, c: number): number;
  /** mmap(2) of a descriptor at a page-aligned offset (a BPF ring buffer's pages); null on failure. */
  mmapAt(length: number, prot: number, flags: number, fd: number, offset: number): Pointer | null;
  epoll_create1(flags: number): number;
  /** struct epoll_event is packed on x86_64 (12 bytes), 16 bytes on aarch64. */
  epoll_ctl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  epoll_wait(epfd: number, events: Uint8Array, maxEvents: number, timeoutMs: number): number;
  /** 0 when there is no such interface in this thread's network namespace. */
  if_nametoindex(name: Uint8Array): number;
  /** The MMU page size (4 KiB on x86_64; 4, 16 or 64 KiB on aarch64): what mmap offsets count in. */
  getpagesize(): number;
}

/** Offset of d_name in glibc's struct dirent on 64-bit Linux (d_ino 8, d_off 8, d_reclen 2, d_type 1). */
export const DIRENT_NAME = 19;

let bound: Libc | undefined;

/** libc, bound on first use. Callers keep the result: a call per operation would make it hot enough to wake the JIT. */
export function libc(): Libc {
  return bound ?? bind();
}

function bind(): Libc {
  if (typeof Bun === "undefined") {
    throw new Error("gauze talks to the kernel through bun:ffi: run the gauze executable (or bun), not node");
  }
  // require, not import: a module that only names these types must still load under node.
  const ffi = require("bun:ffi") as typeof import("bun:ffi");
  const T = ffi.FFIType;
  const { symbols: s } = ffi.dlopen("libc.so.6", {
    open: { args: [T.ptr, T.i32, T.i32], returns: T.i32 },
    close: { args: [T.i32], returns: T.i32 },
    // ssize_t results as i32: gauze never moves 2 GB in one call, and a plain number needs no
    // wrapper function (a JS wrapper called per file or per message is what wakes the JIT).
    read: { args: [T.i32, T.ptr, T.u64], returns: T.i32 },
    write: { args: [T.i32, T.ptr, T.u64], returns: T.i32 },
    link: { args: [T.ptr, T.ptr], returns: T.i32 },
    unlink: { args: [T.ptr], returns: T.i32 },
    rename: { args: [T.ptr, T.ptr], returns: T.i32 },
    mkdir: { args: [T.ptr, T.i32], returns: T.i32 },
    access: { args: [T.ptr, T.i32], returns: T.i32 },
    flock: { args: [T.i32, T.i32], returns: T.i32 },
    ioctl: { args: [T.i32, T.u64], returns: T.i32 },
    setns: { args: [T.i32, T.i32], returns: T.i32 },
    unshare: { args: [T.i32], returns: T.i32 },
    mount: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.ptr], returns: T.i32 },
    umount2: { args: [T.ptr, T.i32], returns: T.i32 },
    pipe2: { args: [T.ptr, T.i32], returns: T.i32 },
    opendir: { args: [T.ptr], returns: T.ptr },
    dirfd: { args: [T.ptr], returns: T.i32 },
    openat: { args: [T.i32, T.ptr, T.i32, T.i32], returns: T.i32 },
    readdir: { args: [T.ptr], returns: T.ptr },
    closedir: { args: [T.ptr], returns: T.i32 },
    socket: { args: [T.i32, T.i32, T.i32], returns: T.i32 },
    bind: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
    connect: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
    getsockname: { args: [T.i32, T.ptr, T.ptr], returns: T.i32 },
    send: { args: [T.i32, T.ptr, T.u64, T.i32], returns: T.i32 },
    recv: { args: [T.i32, T.ptr, T.u64, T.i32], returns: T.i32 },
    recvfrom: { args: [T.i32, T.ptr, T.u64, T.i32, T.ptr, T.ptr], returns: T.i32 },
    setsockopt: { args: [T.i32, T.i32, T.i32, T.ptr, T.u32], returns: T.i32 },
    getsockopt: { args: [T.i32, T.i32, T.i32, T.ptr, T.ptr], returns: T.i32 },
    clock_gettime: { args: [T.i32, T.ptr], returns: T.i32 },
    poll: { args: [T.ptr, T.u64, T.i32], returns: T.i32 },
    statx: { args: [T.i32, T.ptr, T.i32, T.u32, T.ptr], returns: T.i32 },
    mmap: { args: [T.ptr, T.u64, T.i32, T.i32, T.i32, T.i64], returns: T.ptr },
    munmap: { args: [T.ptr, T.u64], returns: T.i32 },
    strerror: { args: [T.i32], returns: T.ptr },
    __errno_location: { args: [], returns: T.ptr },
    // Variadic in C; the integer arguments travel in the same registers either way (SysV x86_64,
    // AAPCS64 on Linux). i64, not i32: glibc moves the first one whole into the syscall number.
    syscall: { args: [T.i64, T.i64, T.ptr, T.u64], returns: T.i32 },
    epoll_create1: { args: [T.i32], returns: T.i32 },
    epoll_ctl: { args: [T.i32, T.i32, T.i32, T.ptr], returns: T.i32 },
    epoll_wait: { args: [T.i32, T.ptr, T.i32, T.i32], returns: T.i32 },
    if_nametoindex: { args: [T.ptr], returns: T.u32 },
    getpagesize: { args: [], returns: T.i32 },
  });
  const f = s as unknown as Record<string, (...a: unknown[]) => unknown>;
  const errnoAt = f.__errno_location!() as Pointer; // thread-local, but gauze calls libc from one thread
  bound = {
    open: f.open as Libc["open"],
    close: f.close as Libc["close"],
    read: f.read as Libc["read"],
    write: f.write as Libc["write"],
    link: f.link as Libc["link"],
    unlink: f.unlink as Libc["unlink"],
    rename: f.rename as Libc["rename"],
    mkdir: f.mkdir as Libc["mkdir"],
    access: f.access as Libc["access"],
    flock: f.flock as Libc["flock"],
    ioctl: f.ioctl as Libc["ioctl"],
    setns: f.setns as Libc["setns"],
    unshare: f.unshare as Libc["unshare"],
    mount: f.mount as Libc["mount"],
    umount2: f.umount2 as Libc["umount2"],
    pipe2: f.pipe2 as Libc["pipe2"],
    opendir: f.opendir as Libc["opendir"],
    dirfd: f.dirfd as Libc["dirfd"],
    openat: f.openat as Libc["openat"],
    readdir: f.readdir as Libc["readdir"],
    closedir: f.closedir as Libc["closedir"],
    socket: f.socket as Libc["socket"],
    bind: f.bind as Libc["bind"],
    connect: f.connect as Libc["connect"],
    getsockname: f.getsockname as Libc["getsockname"],
    send: f.send as Libc["send"],
    recv: f.recv as Libc["recv"],
    recvfrom: f.recvfrom as Libc["recvfrom"],
    setsockopt: f.setsockopt as Libc["setsockopt"],
    getsockopt: f.getsockopt as Libc["getsockopt"],
    clock_gettime: f.clock_gettime as Libc["clock_gettime"],
    poll: f.poll as Libc["poll"],
    statx: f.statx as Libc["statx"],
    errno: () => ffi.read.i32(errnoAt, 0),
    strerror: (n) => new ffi.CString(f.strerror!(n) as Pointer).toString(),
    direntName: (ent) => new ffi.CString(ent, DIRENT_NAME).toString(),
    peekU8: ffi.read.u8,
    mmap: (length, prot, flags, fd) => {
      const p = f.mmap!(null, length, prot, flags, fd, 0) as Pointer | null;
      // MAP_FAILED is (void *)-1
      return p === null || (p as unknown as number) === -1 || (p as unknown as number) === 0xffffffffffffffff ? null : p;
    },
    munmap: f.munmap as Libc["munmap"],
    view: (p, length) => new Uint8Array(ffi.toArrayBuffer(p, 0, length)),
    addressOf: (b) => ffi.ptr(b) as unknown as number,
    syscall: f.syscall as Libc["syscall"],
    mmapAt: (length, prot, flags, fd, offset) => {
      const p = f.mmap!(null, length, prot, flags, fd, offset) as Pointer | null;
      return p === null || (p as unknown as number) === -1 || (p as unknown as number) === 0xffffffffffffffff ? null : p;
    },
    epoll_create1: f.epoll_create1 as Libc["epoll_create1"],
    epoll_ctl: f.epoll_ctl as Libc["epoll_ctl"],
    epoll_wait: f.epoll_wait as Libc["epoll_wait"],
    if_nametoindex: f.if_nametoindex as Libc["if_nametoindex"],
    getpagesize: f.getpagesize as Libc["getpagesize"],
  };
  return bound;
}

/** Linux errno names gauze may meet (asm-generic numbers: x86_64 and aarch64 alike). */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 9: "EBADF", 11: "EAGAIN",
  12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV", 20: "ENOTDIR",
  21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY", 27: "EFBIG", 28: "ENOSPC", 30: "EROFS",
  31: "EMLINK", 34: "ERANGE", 36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 61: "ENODATA",
  71: "EPROTO", 74: "EBADMSG", 75: "EOVERFLOW", 90: "EMSGSIZE", 93: "EPROTONOSUPPORT", 95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH", 105: "ENOBUFS",
  110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 114: "EALREADY", 115: "EINPROGRESS", 125: "ECANCELED",
};

export const EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EAGAIN = 11, EEXIST = 17, ENODEV = 19, EINVAL = 22, ENOBUFS = 105, ETIMEDOUT = 110;

export function errnoName(n: number): string {
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}

/** "network is unreachable (ENETUNREACH)": libc's text, lower-cased, and the symbol to search for. */
export function describeErrno(n: number): string {
  let text: string;
  try {
    text = libc().strerror(n);
  } catch {
    text = "error";
  }
  return `${text.charAt(0).toLowerCase()}${text.slice(1)} (${errnoName(n)})`;
}

const encoder = new TextEncoder();

/** A NUL-terminated copy of a string, for a char* argument. */
export function cString(s: string): Uint8Array {
  return encoder.encode(s + "\0");
}
