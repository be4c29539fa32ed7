// host-local's on-disk reservation store, byte for byte: one file per address in
// <dataDir>/<network>/ named by the address and holding "<containerID>\r\n<ifname>",
// last_reserved_ip.<rangeSetId> holding the last address handed out, and a lock file.
// A reservation is created by link(2)-ing a fully written temp file to the address's name:
// link fails if the name exists, so creation is exclusive (like host-local's O_EXCL) and a
// crash can never leave an empty reservation file nobody owns.
import { type IP, formatIP, parseIP } from "../net/cidr.ts";
import type { IpamStore, Reservation } from "./store.ts";
import { linkFile, listDir, makeDirs, readFilesIn, readTextIfExists, removeFile, requirePrivateDir, writeText } from "../kernel/files.ts";
import { joinPath } from "../util/builtin.ts";

export const LINE_BREAK = "\r\n";
const LAST_PREFIX = "last_reserved_ip.";
const TEMP_PREFIX = ".gauze-reserving-";
/** Names that cannot be addresses: ".", "..", temp files (.gauze-...), the lock, last_reserved_ip.N. */
const NOT_ADDRESSES = ".l";

export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

export class DiskStore implements IpamStore {
  constructor(readonly dir: string) {}

  static open(dataDir: string, network: string): DiskStore {
    const dir = joinPath(dataDir, network);
    makeDirs(dir, 0o755);
    requirePrivateDir(dir);
    return new DiskStore(dir);
  }

  get lockPath(): string {
    return joinPath(this.dir, "lock");
  }

  reserve(ip: IP, containerId: string, ifname: string, rangeSetId: string): boolean {
    const temp = joinPath(this.dir, `${TEMP_PREFIX}${process.pid}`);
    removeFile(temp); // one a killed process of the same PID left
    writeText(temp, `${containerId.trim()}${LINE_BREAK}${ifname}`, { exclusive: true });
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
    for (const f of readFilesIn(this.dir, { skipFirst: NOT_ADDRESSES })) {
      const ip = parseIP(f.name);
      if (ip) out.push(toReservation(ip, utf8Decoder.decode(f.bytes)));
    }
    return out;
  }

  /**
   * The reservations of one container ID (its attachments', or an old host-local file's).
   * Every ADD and DEL asks this, and a node holds a file per pod: the files are read in one
   * call that compares each with the ID as bytes (after leading white space, as trim() would
   * skip it); only the few that match are decoded. Nothing is called per file from here: a
   * helper called per file is what wakes the JIT (see kernel/files.ts).
   */
  byContainer(containerId: string): Reservation[] {
    const wanted = containerId.trim();
    const out: Reservation[] = [];
    const files = readFilesIn(this.dir, { skipFirst: NOT_ADDRESSES, startsWith: utf8.encode(wanted) });
    for (let f = 0; f < files.length; f++) {
      const ip = parseIP(files[f]!.name);
      if (!ip) continue;
      const r = toReservation(ip, utf8Decoder.decode(files[f]!.bytes));
      if (r.containerId === wanted) out.push(r);
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

function matches(r: Reservation, containerId: string, ifname: string): boolean {
  return r.containerId === containerId.trim() && r.ifname === ifname;
}
