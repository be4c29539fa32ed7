// A BPF_MAP_TYPE_RINGBUF read in place through mmap: the consumer page read-write (our
// position, written back after each record so the kernel can reuse the space), the producer
// page and the data read-only, the data mapped twice back to back by the kernel so a record that
// wraps around the end reads as one piece. Each record has an 8-byte header: its length with the
// BUSY bit (still being written: stop there) and the DISCARD bit (skipped). Our position is
// written with Atomics.store (a release: the kernel may reuse the space only after we read it).
// The producer's position and the headers are read with plain loads: those pages are read-only,
// and Atomics.load on them crashed bun 1.4 (SIGSEGV) once poll() was hot enough to be optimized
// (seemingly a locked read-modify-write on a read-only page); on x86_64 a plain load already has
// acquire order. The agent polls from its
// event loop: poll() drains what is there without a syscall; wait() blocks in epoll_wait for a
// bounded time when the caller wants to sleep until something comes.
import type { Pointer } from "bun:ffi";
import { type Libc, describeErrno, libc } from "../libc.ts";
import type { BpfMap } from "./map.ts";
import { MAP_TYPE } from "./uapi.ts";

const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
const EPOLL_CLOEXEC = 0o2000000, EPOLL_CTL_ADD = 1, EPOLLIN = 1, EINTR = 4;
const BUSY = 0x80000000, DISCARD = 0x40000000;
/** x86_64 packs struct epoll_event (12 bytes); aarch64 does not (16). */
const EPOLL_EVENT = process.arch === "x64" ? 12 : 16;

export class RingBufferError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RingBufferError";
  }
}

export class RingBuffer {
  private closed = false;
  private readonly consumer: BigUint64Array;
  private readonly producer: BigUint64Array;
  private readonly headers: Uint32Array;
  private readonly data: Uint8Array;
  private readonly mask: bigint;
  private readonly events = new Uint8Array(EPOLL_EVENT * 4);

  private constructor(private readonly c: Libc, readonly map: BpfMap, private readonly page: number, readonly size: number,
    private readonly consPtr: Pointer, private readonly prodPtr: Pointer, private readonly epfd: number) {
    this.consumer = new BigUint64Array(c.view(consPtr, page).buffer, 0, 1);
    const prod = c.view(prodPtr, page + 2 * size);
    this.producer = new BigUint64Array(prod.buffer, 0, 1);
    this.headers = new Uint32Array(prod.buffer, page, (2 * size) / 4);
    this.data = new Uint8Array(prod.buffer, page, 2 * size);
    this.mask = BigInt(size - 1);
  }

  static open(map: BpfMap): RingBuffer {
    if (map.shape.type !== MAP_TYPE.RINGBUF) throw new RingBufferError(`map ${map.name} is not a ring buffer`);
    const c = libc();
    const page = c.getpagesize();
    const size = map.shape.maxEntries;
    const cons = c.mmapAt(page, PROT_READ | PROT_WRITE, MAP_SHARED, map.fd, 0);
    if (!cons) throw new RingBufferError(`ring buffer ${map.name}: mmap of the consumer page: ${describeErrno(c.errno())}`);
    const prod = c.mmapAt(page + 2 * size, PROT_READ, MAP_SHARED, map.fd, page);
    if (!prod) {
      const e = c.errno();
      c.munmap(cons, page);
      throw new RingBufferError(`ring buffer ${map.name}: mmap of the producer page and data: ${describeErrno(e)}`);
    }
    const epfd = c.epoll_create1(EPOLL_CLOEXEC);
    const ev = new Uint8Array(EPOLL_EVENT);
    new DataView(ev.buffer).setUint32(0, EPOLLIN, true);
    if (epfd < 0 || c.epoll_ctl(epfd, EPOLL_CTL_ADD, map.fd, ev) !== 0) {
      const e = c.errno();
      if (epfd >= 0) c.close(epfd);
      c.munmap(prod, page + 2 * size);
      c.munmap(cons, page);
      throw new RingBufferError(`ring buffer ${map.name}: epoll: ${describeErrno(e)}`);
    }
    return new RingBuffer(c, map, page, size, cons, prod, epfd);
  }

  /** Bytes written and not yet read. */
  pending(): number {
    if (this.closed) return 0;
    return Number(this.producer[0]! - this.consumer[0]!);
  }

  /**
   * Hands up to `max` records to `onRecord`, oldest first, and returns how many. A record's
   * bytes are the ring's own memory: valid only during the call (copy what must be kept).
   */
  poll(onRecord: (record: Uint8Array) => void, max = Number.MAX_SAFE_INTEGER): number {
    if (this.closed) return 0;
    let cons = this.consumer[0]!;
    const prod = this.producer[0]!;
    let n = 0;
    while (cons < prod && n < max) {
      const off = Number(cons & this.mask);
      const hdr = this.headers[off / 4]!;
      if (hdr & BUSY) break; // reserved, not yet submitted: later records wait behind it
      const len = hdr & ~(BUSY | DISCARD);
      if (!(hdr & DISCARD)) {
        onRecord(this.data.subarray(off + 8, off + 8 + len));
        n++;
      }
      cons += BigInt((len + 8 + 7) & ~7);
      Atomics.store(this.consumer, 0, cons);
    }
    return n;
  }

  /** Blocks up to `timeoutMs` for the kernel to say there is data; true when there is. */
  wait(timeoutMs: number): boolean {
    if (this.closed) return false;
    if (this.pending() > 0) return true;
    for (;;) {
      const r = this.c.epoll_wait(this.epfd, this.events, 4, timeoutMs);
      if (r >= 0) return r > 0 || this.pending() > 0;
      if (this.c.errno() !== EINTR) throw new RingBufferError(`ring buffer ${this.map.name}: epoll_wait: ${describeErrno(this.c.errno())}`);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.c.close(this.epfd);
    this.c.munmap(this.prodPtr, this.page + 2 * this.size);
    this.c.munmap(this.consPtr, this.page);
  }
}
