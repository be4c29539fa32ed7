// dissect's JSON against docs/json.md: every key documented and camelCase (it was snake_case:
// wire_len, outer_ip_len; its time a "sec.nsec" string), on packets of every layer the decoders
// know, and the summary's rows and totals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CaptureReader, type Packet } from "../../src/capture/reader.ts";
import { decodeOptions, dissect } from "../../src/packet/dissect.ts";
import { packetJson } from "../../src/capture/format.ts";
import { Summary } from "../../src/capture/summary.ts";
import { eth, icmpEcho, ipv4, pcap, tcp, udp, vxlanPing } from "../support/packets.ts";
import { undocumented } from "../support/json-doc.ts";

function read(bytes: Uint8Array): Packet[] {
  const r = new CaptureReader();
  r.push(bytes);
  r.end();
  const out: Packet[] = [];
  for (let p = r.next(); p; p = r.next()) out.push({ ...p, data: p.data.slice() });
  return out;
}

const frames = [
  vxlanPing(),
  eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, ipv4("10.244.0.2", "10.244.1.2", 6, tcp("10.244.0.2", "10.244.1.2", 40000, 80, 0x02, new Uint8Array(0), [2, 4, 5, 180]))),
  eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, ipv4("10.244.0.2", "10.244.1.2", 17, udp("10.244.0.2", "10.244.1.2", 5353, 53, new Uint8Array(8)))),
  eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, ipv4("10.244.0.2", "10.244.1.2", 1, icmpEcho(8, 1, 1))),
  eth("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806, new Uint8Array([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 244, 0, 2, 0, 0, 0, 0, 0, 0, 10, 244, 0, 3])),
];

test("dissect --json: every key is in docs/json.md and camelCase; the time is RFC 3339 with nanoseconds", () => {
  const packets = read(pcap(frames.map((data) => ({ data })), { nano: true }));
  const json = packets.map((p) => packetJson(p, dissect(p, decodeOptions())));
  assert.deepEqual(undocumented("gauze dissect --json", json), []);
  assert.match(String(json[0]!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  assert.equal((json[0]!.tunnel as { overheadBytes: number }).overheadBytes, 50);
});

test("dissect --summary --json: every key is in docs/json.md and camelCase", () => {
  const s = new Summary();
  for (const p of read(pcap(frames.map((data) => ({ data }))))) s.add(dissect(p, decodeOptions({ detail: false })));
  assert.deepEqual(undocumented("gauze dissect --summary --json", [s.report()]), []);
});
