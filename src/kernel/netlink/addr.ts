// Addresses on links: read them, add one (a /24 gateway on the bridge, a pod's address, a /32 on
// the VXLAN device), delete one.
import { type IP, formatIP, ipFromBytes, ipToBytes, parseCIDR } from "../../net/cidr.ts";
import type { DevRef } from "./link.ts";
import type { Request } from "./socket.ts";
import { AF_INET, AF_INET6, AF_UNSPEC, IFADDRMSG_LEN, IFA, NLM_F, RTM, RT_SCOPE } from "./uapi.ts";
import { Attrs, type NlMessage, type NlWriter } from "./wire.ts";

export interface Addr {
  index: number;
  family: 4 | 6;
  /** The interface's own address (IFA_LOCAL, or IFA_ADDRESS where there is no LOCAL). */
  address: string;
  prefixLen: number;
  scope: number;
}

export function parseAddr(buf: Uint8Array, view: DataView, m: NlMessage): Addr | undefined {
  if (m.end - m.body < IFADDRMSG_LEN) return undefined;
  const fam = buf[m.body];
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const prefixLen = buf[m.body + 1]!;
  const scope = buf[m.body + 3]!;
  const index = view.getUint32(m.body + 4, true);
  const a = new Attrs(buf, view, m.body + IFADDRMSG_LEN, m.end, IFA.FLAGS);
  const raw = a.bytes(IFA.LOCAL) ?? a.bytes(IFA.ADDRESS);
  const ip = raw ? ipFromBytes(raw) : undefined;
  if (!ip || (ip.family === 4) !== (fam === AF_INET)) return undefined;
  return { index, family: ip.family, address: formatIP(ip), prefixLen, scope };
}

/** Addresses of the namespace (a dump), optionally of one family; callers filter by index. */
export function dumpAddrs(family?: 4 | 6): Request {
  return {
    what: "list addresses", type: RTM.GETADDR, flags: 0,
    body: (w) => { w.fixed(IFADDRMSG_LEN); w.view.setUint8(w.len - IFADDRMSG_LEN, family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC); },
  };
}

function ifaddr(w: NlWriter, ip: IP, prefixLen: number, index: number): void {
  const at = w.fixed(IFADDRMSG_LEN);
  w.view.setUint8(at, ip.family === 4 ? AF_INET : AF_INET6);
  w.view.setUint8(at + 1, prefixLen);
  w.view.setUint8(at + 3, RT_SCOPE.UNIVERSE);
  w.view.setUint32(at + 4, index, true);
}

function cidrOf(cidr: string): { ip: IP; bits: number } {
  const c = parseCIDR(cidr);
  if (!c) throw new Error(`${JSON.stringify(cidr)} is not an address with a prefix length`);
  return { ip: c.host, bits: c.prefix.bits };
}

/** Adds "10.244.1.1/24" to a link; EEXIST when it is there already. IPv6 skips DAD (a pod's address is unique by IPAM). */
export function addAddr(dev: DevRef, cidr: string): Request {
  const { ip, bits } = cidrOf(cidr);
  return {
    what: `add address ${cidr} dev ${dev.name}`, type: RTM.NEWADDR, flags: NLM_F.CREATE | NLM_F.EXCL,
    body: (w) => {
      ifaddr(w, ip, bits, dev.index);
      const b = ipToBytes(ip);
      w.bytes(IFA.LOCAL, b);
      w.bytes(IFA.ADDRESS, b);
      if (ip.family === 6) w.u32(IFA.FLAGS, 0x02 /* IFA_F_NODAD */);
    },
  };
}

export function delAddr(dev: DevRef, cidr: string): Request {
  const { ip, bits } = cidrOf(cidr);
  return {
    what: `delete address ${cidr} dev ${dev.name}`, type: RTM.DELADDR, flags: 0,
    body: (w) => {
      ifaddr(w, ip, bits, dev.index);
      w.bytes(IFA.LOCAL, ipToBytes(ip));
    },
  };
}
