// host-local's on-disk reservation store, byte for byte: one file per address in
// <dataDir>/<network>/ named by the address and holding "<containerID>\r\n<ifname>",
// last_reserved_ip.<rangeSetId> holding the last address handed out, and a lock file.
// A reservation is created by link(2)-ing a fully written temp file to the address's name:
// link fails if the name exists, so creation is exclusive (like host-local's O_EXCL) and a
// crash can never leave an empty reservation file nobody owns.
import {
  closeSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, unlinkSync, writeFileSync, writeSync,
} from "node:fs";
import { join } from "node:path";
import { type IP, formatIP, parseIP } from "./cidr.ts";
import type { IpamStore, Reservation } from "./store.ts";

export const LINE_BREAK = "\r\n";
const LAST_PREFIX = "last_reserved_ip.";
const TEMP_PREFIX = ".gauze-reserving-";

export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

export class DiskStore implements IpamStore {
  constructor(readonly dir: string) {}

  static open(dataDir: string, network: string): DiskStore {
    const dir = join(dataDir, network);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    return new DiskStore(dir);
  }

  get lockPath(): string {
    return join(this.dir, "lock");
  }

  reserve(ip: IP, containerId: string, ifname: string, rangeSetId: string): boolean {
    const name = join(this.dir, formatIP(ip));
    const temp = join(this.dir, `${TEMP_PREFIX}${process.pid}`);
    const fd = openSync(temp, "w", 0o644);
    try {
      writeSync(fd, `${containerId.trim()}${LINE_BREAK}${ifname}`);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temp, name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    } finally {
      unlinkSync(temp);
    }
    writeFileSync(join(this.dir, LAST_PREFIX + rangeSetId), formatIP(ip), { mode: 0o644 });
    return true;
  }

  lastReserved(rangeSetId: string): IP | undefined {
    try {
      return parseIP(readFileSync(join(this.dir, LAST_PREFIX + rangeSetId), "utf8").trim());
    } catch {
      return undefined;
    }
  }

  /** Every reservation file (skipping the lock, cursors and temp files). */
  list(): Reservation[] {
    const out: Reservation[] = [];
    for (const name of readdirSync(this.dir)) {
      const ip = parseIP(name);
      if (!ip) continue;
      let text: string;
      try {
        text = readFileSync(join(this.dir, name), "utf8");
      } catch {
        continue; // released while we listed
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
    try {
      unlinkSync(join(this.dir, formatIP(ip)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }

  /** Removes temp files left by a process killed between write and link. Call under the lock. */
  sweepTemps(): number {
    let n = 0;
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      unlinkSync(join(this.dir, name));
      n++;
    }
    return n;
  }
}

function matches(r: Reservation, containerId: string, ifname: string): boolean {
  return r.containerId === containerId.trim() && r.ifname === ifname;
}
