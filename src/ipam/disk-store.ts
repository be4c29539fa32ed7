// host-local's on-disk reservation store, byte for byte: one file per address in
// <dataDir>/<network>/ named by the address and holding "<containerID>\r\n<ifname>",
// last_reserved_ip.<rangeSetId> holding the last address handed out, and a lock file.
// A reservation is created by link(2)-ing a fully written temp file to the address's name:
// link fails if the name exists, so creation is exclusive (like host-local's O_EXCL) and a
// crash can never leave an empty reservation file nobody owns.
import { type IP, formatIP, parseIP } from "../net/cidr.ts";
import type { IpamStore, Reservation } from "./store.ts";
import { FileError, linkFile, listDir, makeDirs, readBytesIfExists, readText, readTextIfExists, removeFile, writeText } from "../kernel/files.ts";
import { joinPath } from "../util/builtin.ts";

export const LINE_BREAK = "\r\n";
const LAST_PREFIX = "last_reserved_ip.";
const TEMP_PREFIX = ".gauze-reserving-";

export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

export class DiskStore implements IpamStore {
  constructor(readonly dir: string) {}

  static open(dataDir: string, network: string): DiskStore {
    const dir = joinPath(dataDir, network);
    makeDirs(dir);
    return new DiskStore(dir);
  }

  get lockPath(): string {
    return joinPath(this.dir, "lock");
  }

  reserve(ip: IP, containerId: string, ifname: string, rangeSetId: string): boolean {
    const temp = joinPath(this.dir, `${TEMP_PREFIX}${process.pid}`);
    writeText(temp, `${containerId.trim()}${LINE_BREAK}${ifname}`);
    let made: boolean;
    try {
      made = linkFile(temp, joinPath(this.dir, formatIP(ip)));
    } finally {
      removeFile(temp);
    }
    if (made) writeText(joinPath(this.dir, LAST_PREFIX + rangeSetId), formatIP(ip));
    return made;
  }

  lastReserved(rangeSetId: string): IP | undefined {
    const text = readTextIfExists(joinPath(this.dir, LAST_PREFIX + rangeSetId));
    return text === undefined ? undefined : parseIP(text.trim());
  }

  /** Every reservation file (skipping the lock, cursors and temp files). */
  list(): Reservation[] {
    const out: Reservation[] = [];
    for (const name of listDir(this.dir)) {
      const ip = parseIP(name);
      if (!ip) continue;
      let text: string;
      try {
        text = readText(joinPath(this.dir, name));
      } catch (e) {
        if (e instanceof FileError && e.code === "ENOENT") continue; // released while we listed
        throw e;
      }
      out.push(toReservation(ip, text));
    }
    return out;
  }

  /**
   * The reservations of one container ID (its attachments', or an old host-local file's).
   * Every ADD and DEL asks this, and a node holds a file per pod: each file is compared as
   * bytes first, and only one that starts with the ID is decoded (25 us less per file).
   */
  byContainer(containerId: string): Reservation[] {
    const id = utf8.encode(containerId.trim());
    const out: Reservation[] = [];
    for (const name of listDir(this.dir)) {
      // Not an address: the lock, last_reserved_ip.N, temp files. parseIP below decides.
      const first = name.charCodeAt(0);
      if (first === 46 || first === 108) continue; // "." or "l"
      const bytes = readBytesIfExists(joinPath(this.dir, name));
      if (!bytes || !startsWithAfterSpace(bytes, id)) continue;
      const ip = parseIP(name);
      if (!ip) continue;
      const r = toReservation(ip, utf8Decoder.decode(bytes));
      if (r.containerId === containerId.trim()) out.push(r);
    }
    return out;
  }

  getByAttachment(containerId: string, ifname: string): IP[] {
    return this.byContainer(containerId).filter((r) => matches(r, containerId, ifname)).map((r) => r.ip);
  }

  releaseByAttachment(containerId: string, ifname: string): IP[] {
    const all = this.byContainer(containerId);
    let mine = all.filter((r) => matches(r, containerId, ifname));
    // Files written by old host-local versions hold only the container ID.
    if (mine.length === 0) mine = all.filter((r) => r.containerId === containerId.trim() && r.ifname === "");
    for (const r of mine) this.release(r.ip);
    return mine.map((r) => r.ip);
  }

  release(ip: IP): void {
    removeFile(joinPath(this.dir, formatIP(ip)));
  }

  /** Removes temp files left by a process killed between write and link. Call under the lock. */
  sweepTemps(): number {
    let n = 0;
    for (const name of listDir(this.dir)) {
      if (name.startsWith(TEMP_PREFIX) && removeFile(joinPath(this.dir, name))) n++;
    }
    return n;
  }
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

function toReservation(ip: IP, text: string): Reservation {
  const [containerId = "", ifname = ""] = text.trim().split(LINE_BREAK);
  return { ip, containerId: containerId.trim(), ifname: ifname.trim() };
}

/** Whether `bytes`, after leading ASCII whitespace (what trim() removes from these files), begins with `prefix`. */
function startsWithAfterSpace(bytes: Uint8Array, prefix: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 32 || (bytes[i]! >= 9 && bytes[i]! <= 13))) i++;
  if (bytes.length - i < prefix.length) return false;
  for (let k = 0; k < prefix.length; k++) if (bytes[i + k] !== prefix[k]) return false;
  return true;
}

function matches(r: Reservation, containerId: string, ifname: string): boolean {
  return r.containerId === containerId.trim() && r.ifname === ifname;
}
