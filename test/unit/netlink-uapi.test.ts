// Every number in src/kernel/netlink/uapi.ts against the Linux uapi headers on this machine
// (linux-libc-dev): a small reader of their enums and #defines, so a typo cannot hide.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as uapi from "../../src/kernel/netlink/uapi.ts";

const HEADERS = ["netlink.h", "rtnetlink.h", "if_link.h", "if_addr.h", "neighbour.h", "veth.h", "if.h"].map((h) => `/usr/include/linux/${h}`);

/** NAME -> value from #defines and enums (sequential numbering, "= expr" restarts it). */
function readHeaders(): Map<string, number> {
  const known = new Map<string, number>();
  const evaluate = (expr: string): number | undefined => {
    const e = expr.replace(/\/\*.*?\*\//g, "").trim().replace(/^\((.*)\)$/, "$1");
    if (/^(0x[0-9a-fA-F]+|\d+)[uU]?$/.test(e)) return Number(e.replace(/[uU]$/, ""));
    const shift = /^\(?1\s*<<\s*(\d+)\)?$/.exec(e);
    if (shift) return 1 << Number(shift[1]);
    if (e.includes("|")) {
      const parts = e.split("|").map((p) => evaluate(p));
      return parts.every((p) => p !== undefined) ? parts.reduce((a, b) => a! | b!, 0) : undefined;
    }
    return known.get(e);
  };
  for (const file of HEADERS) {
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const m of text.matchAll(/^#define\s+([A-Z][A-Z0-9_]*)\s+(.+)$/gm)) {
      const v = evaluate(m[2]!);
      if (v !== undefined && !known.has(m[1]!)) known.set(m[1]!, v);
    }
    for (const m of text.matchAll(/enum\s*\w*\s*\{([\s\S]*?)\}/g)) {
      let next = 0;
      for (const raw of m[1]!.split(/,|\n/)) {
        const item = raw.replace(/#define.*/, "").trim();
        if (!/^[A-Za-z_]/.test(item)) continue;
        const [name, expr] = item.split("=").map((x) => x.trim());
        if (!/^[A-Z_][A-Z0-9_]*$/.test(name!)) continue;
        const v = expr !== undefined ? evaluate(expr) : next;
        if (v === undefined) continue;
        known.set(name!, v);
        next = v + 1;
      }
    }
  }
  return known;
}

const GROUPS: Record<string, string> = {
  NETLINK: "NETLINK_", NLMSG: "NLMSG_", NLM_F: "NLM_F_", NLMSGERR_ATTR: "NLMSGERR_ATTR_", RTM: "RTM_", RTNLGRP: "RTNLGRP_",
  IFF: "IFF_", IFLA: "IFLA_", IFLA_INFO: "IFLA_INFO_", VETH_INFO: "VETH_INFO_", IFLA_BRPORT: "IFLA_BRPORT_", IFLA_VXLAN: "IFLA_VXLAN_", IFLA_MACVLAN: "IFLA_MACVLAN_", MACVLAN_MODE: "MACVLAN_MODE_",
  IFA: "IFA_", IFA_F: "IFA_F_", RTA: "RTA_", RTAX: "RTAX_", RTN: "RTN_", RTPROT: "RTPROT_", RT_SCOPE: "RT_SCOPE_", RT_TABLE: "RT_TABLE_",
  RTNH_F: "RTNH_F_", RTM_F: "RTM_F_", NDA: "NDA_", NTF: "NTF_", NUD: "NUD_",
};

test("every netlink number matches the kernel's uapi headers", () => {
  const h = readHeaders();
  const wrong: string[] = [];
  let checked = 0;
  for (const [group, prefix] of Object.entries(GROUPS)) {
    const table = (uapi as unknown as Record<string, Record<string, number>>)[group]!;
    assert.ok(table, `uapi.ts exports ${group}`);
    for (const [k, v] of Object.entries(table)) {
      // NLM_F_ROOT/MATCH share values with REPLACE/EXCL by design; each name is checked on its own.
      const c = h.get(prefix + k);
      if (c === undefined) wrong.push(`${prefix}${k}: not in the headers`);
      else if (c !== v) wrong.push(`${prefix}${k}: gauze ${v}, headers ${c}`);
      checked++;
    }
  }
  for (const [name, v] of Object.entries({ NLMSG_HDRLEN: uapi.NLMSG_HDRLEN, NLA_F_NESTED: uapi.NLA_F_NESTED })) {
    if (name === "NLMSG_HDRLEN") continue; // a macro of sizeof: checked by the round trips instead
    if (h.get(name) !== v) wrong.push(`${name}: gauze ${v}, headers ${h.get(name)}`);
  }
  assert.deepEqual(wrong, []);
  assert.ok(checked > 100, `checked ${checked}`);
});
