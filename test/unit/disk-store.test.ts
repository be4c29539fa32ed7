// The on-disk store's lookups by attachment: files are compared as bytes before being decoded,
// and that shortcut must find exactly what reading every file would.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskStore } from "../../src/ipam/disk-store.ts";
import { formatIP } from "../../src/net/cidr.ts";

test("byContainer finds what a full read finds: exact, old id-only files, whitespace, prefixes; skips non-address files", () => {
  const dir = mkdtempSync(join(tmpdir(), "gauze-store-"));
  try {
    const files: Record<string, string> = {
      "10.1.0.2": "abc\r\neth0", // ours
      "10.1.0.3": "abcd\r\neth0", // an ID that starts with ours
      "10.1.0.4": "abc\r\neth1", // ours, another interface
      "10.1.0.5": "  abc \r\n eth0 \n", // ours, written with stray whitespace
      "10.1.0.6": "abc", // an old host-local file: the ID alone
      "10.1.0.7": "xyz\r\neth0",
      "fd00::8": "abc\r\neth0", // IPv6 reservation, ours
      ".gauze-reserving-77": "abc\r\neth0", // a temp file left by a crash: not a reservation
      "last_reserved_ip.0": "10.1.0.7",
      lock: "",
    };
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const store = new DiskStore(dir);
    const viaList = store.list().filter((r) => r.containerId === "abc").map((r) => `${formatIP(r.ip)} ${r.ifname}`).sort();
    const viaScan = store.byContainer("abc").map((r) => `${formatIP(r.ip)} ${r.ifname}`).sort();
    assert.deepEqual(viaScan, viaList);
    assert.deepEqual(viaScan, ["10.1.0.2 eth0", "10.1.0.4 eth1", "10.1.0.5 eth0", "10.1.0.6 ", "fd00::8 eth0"]);
    assert.deepEqual(store.getByAttachment("abc", "eth0").map(formatIP).sort(), ["10.1.0.2", "10.1.0.5", "fd00::8"]);
    assert.deepEqual(store.releaseByAttachment("abc", "eth1").map(formatIP), ["10.1.0.4"]);
    assert.deepEqual(store.byContainer("abc").length, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
