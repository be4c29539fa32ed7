import { test } from "node:test";
import assert from "node:assert/strict";
import { formatIP, parseCIDR, parseIP, prefixContains, prefixLast, nextIP, prevIP, formatPrefix } from "../../src/net/cidr.ts";

test("IPv4 parse/format round trip and rejects", () => {
  for (const t of ["0.0.0.0", "10.244.1.2", "255.255.255.255"]) assert.equal(formatIP(parseIP(t)!), t);
  for (const t of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.x", "", "1..2.3"]) assert.equal(parseIP(t), undefined, t);
});

test("IPv6 formatting follows RFC 5952 (what Go prints, so host-local's file names match)", () => {
  const cases: [string, string][] = [
    ["2001:db8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["fd00:0:0:1::", "fd00:0:0:1::"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["::ffff:10.0.0.1", "::ffff:a00:1"],
    ["FD00::ABCD", "fd00::abcd"],
  ];
  for (const [i, o] of cases) assert.equal(formatIP(parseIP(i)!), o, i);
  for (const t of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1"]) assert.equal(parseIP(t), undefined, t);
});

test("CIDR math", () => {
  const c = parseCIDR("10.244.1.7/24")!;
  assert.equal(formatIP(c.host), "10.244.1.7");
  assert.equal(formatPrefix(c.prefix), "10.244.1.0/24");
  assert.equal(formatIP(prefixLast(c.prefix)), "10.244.1.255");
  assert.ok(prefixContains(c.prefix, parseIP("10.244.1.200")!));
  assert.ok(!prefixContains(c.prefix, parseIP("10.244.2.1")!));
  assert.ok(!prefixContains(c.prefix, parseIP("::1")!));
  assert.equal(parseCIDR("10.0.0.0/33"), undefined);
  assert.equal(parseCIDR("10.0.0.0"), undefined);
  assert.equal(parseCIDR("10.0.0.0/-1"), undefined);
  assert.equal(formatPrefix(parseCIDR("fd00::5/64")!.prefix), "fd00::/64");
  assert.equal(formatIP(nextIP(parseIP("10.0.0.255")!)), "10.0.1.0");
  assert.equal(formatIP(prevIP(parseIP("10.0.1.0")!)), "10.0.0.255");
});
