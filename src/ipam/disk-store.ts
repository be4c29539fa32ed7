// host-local's on-disk reservation store, byte for byte: one file per address in
// <dataDir>/<network>/ named by the address and holding "<containerID>\r\n<ifname>",
// last_reserved_ip.<rangeSetId> holding the last address handed out, and a lock file.
// A reservation is created by link(2)-ing a fully written temp file to the address's name:
// link fails if the name exists, so creation is exclusive (like host-local's O_EXCL) and a
// crash can never leave an empty reservation file nobody owns.
import { type IP, formatIP, parseIP } from "./cidr.ts";
import type { IpamStore, Reservation } from "./store.ts";
import { FileError, linkFile, listDir, makeDirs, readText, readTextIfExists, removeFile, writeText } from "../util/files.ts";
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
      const [containerId = "", ifname = ""] = text.trim().split(LINE_BREAK);
      out.push({ ip, containerId: containerId.trim(), ifname: ifname.trim() });
    }
    return out;
  }

  getByAttachment(containerId: string, ifname: string): IP[] {
    return this.list().filter((r) => matches(r, containerId, ifname)).map((r) => r.ip);
  }

  releaseByAttachment(containerId: string, ifname: string): IP[] {
    const all = this.list();
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

function matches(r: Reservation, containerId: string, ifname: string): boolean {
  return r.containerId === containerId.trim() && r.ifname === ifname;
}
