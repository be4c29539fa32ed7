// Links: what gauze reads of them (name, index, MTU, MAC, flags, master, kind, VXLAN and bridge
// port details) and the requests that make and change them: a bridge, a veth pair whose peer
// is created straight inside another namespace, a VXLAN device, up/down, MTU, MAC, master,
// bridge-port hairpin, delete.
import { formatIPBytes, parseIP, ipToBytes } from "../../net/cidr.ts";
import type { Request } from "./socket.ts";
import { AF_BRIDGE, AF_UNSPEC, IFF, IFINFOMSG_LEN, IFLA, IFLA_BRPORT, IFLA_INFO, IFLA_MACVLAN, IFLA_VXLAN, IF_OPER, MACVLAN_MODE, NLM_F, RTM, VETH_INFO } from "./uapi.ts";
import { Attrs, type NlMessage, type NlWriter, formatMac, parseMac } from "./wire.ts";

export interface VxlanInfo {
  vni?: number;
  port?: number;
  local?: string;
  learning?: boolean;
  /** ifindex of the underlay device. */
  dev?: number;
}

export interface Link {
  index: number;
  name: string;
  mtu: number;
  mac?: string;
  /** IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  operstate: string;
  /** ifindex of the bridge (or other master) it is enslaved to. */
  master?: number;
  /** rtnetlink kind: bridge, veth, vxlan, ... (absent for plain devices such as lo). */
  kind?: string;
  slaveKind?: string;
  vxlan?: VxlanInfo;
  /** Bridge port: hairpin mode. */
  hairpin?: boolean;
  /** The link's alias (IFLA_IFALIAS): gauze writes which network and attachment a veth belongs to. */
  alias?: string;
  /** For a veth: ifindex of its peer, in the namespace named by peerNetnsId when set. */
  peerIndex?: number;
  peerNetnsId?: number;
}

/** A link as a request needs it: its index, and its name for messages. */
export interface DevRef {
  index: number;
  name: string;
}

/** Parses an RTM_NEWLINK message; undefined when it lacks a name or is garbled beyond use. */
export function parseLink(buf: Uint8Array, view: DataView, m: NlMessage): Link | undefined {
  if (m.end - m.body < IFINFOMSG_LEN) return undefined;
  const index = view.getInt32(m.body + 4, true);
  const flags = view.getUint32(m.body + 8, true);
  const a = new Attrs(buf, view, m.body + IFINFOMSG_LEN, m.end, IFLA.LINK_NETNSID);
  const name = a.string(IFLA.IFNAME);
  if (!name || index <= 0) return undefined;
  const mac = a.bytes(IFLA.ADDRESS);
  const oper = a.u8(IFLA.OPERSTATE);
  const link: Link = {
    index, name, mtu: a.u32(IFLA.MTU) ?? 0, flags, up: (flags & IFF.UP) !== 0,
    operstate: oper !== undefined ? (IF_OPER[oper] ?? "UNKNOWN") : "UNKNOWN",
  };
  if (mac && mac.length === 6) link.mac = formatMac(mac);
  const master = a.u32(IFLA.MASTER);
  if (master) link.master = master;
  const alias = a.string(IFLA.IFALIAS);
  if (alias) link.alias = alias;
  const peer = a.u32(IFLA.LINK);
  if (peer && peer !== index) link.peerIndex = peer;
  const nsid = a.s32(IFLA.LINK_NETNSID);
  if (nsid !== undefined && nsid >= 0) link.peerNetnsId = nsid;
  const info = a.nested(IFLA.LINKINFO, IFLA_INFO.SLAVE_DATA);
  if (info) {
    const kind = info.string(IFLA_INFO.KIND);
    if (kind) link.kind = kind;
    const slaveKind = info.string(IFLA_INFO.SLAVE_KIND);
    if (slaveKind) link.slaveKind = slaveKind;
    if (kind === "vxlan") {
      const d = info.nested(IFLA_INFO.DATA, IFLA_VXLAN.UDP_CSUM);
      if (d) {
        const local = d.bytes(IFLA_VXLAN.LOCAL) ?? d.bytes(IFLA_VXLAN.LOCAL6);
        link.vxlan = {
          vni: d.u32(IFLA_VXLAN.ID), port: d.u16be(IFLA_VXLAN.PORT), learning: d.has(IFLA_VXLAN.LEARNING) ? d.u8(IFLA_VXLAN.LEARNING) === 1 : undefined,
          dev: d.u32(IFLA_VXLAN.LINK), local: local ? formatIPBytes(local) : undefined,
        };
      }
    }
    if (slaveKind === "bridge") {
      const sd = info.nested(IFLA_INFO.SLAVE_DATA, IFLA_BRPORT.LEARNING);
      const mode = sd?.u8(IFLA_BRPORT.MODE);
      if (mode !== undefined) link.hairpin = mode === 1;
    }
  }
  return link;
}

function ifinfo(w: NlWriter, index: number, flags = 0, change = 0, family = AF_UNSPEC): void {
  const at = w.fixed(IFINFOMSG_LEN);
  w.view.setUint8(at, family);
  w.view.setInt32(at + 4, index, true);
  w.view.setUint32(at + 8, flags, true);
  w.view.setUint32(at + 12, change, true);
}

/** RTM_GETLINK for one link by name (the kernel answers ENODEV when there is none). */
export function getLink(name: string): Request {
  return { what: `show link ${name}`, type: RTM.GETLINK, flags: 0, body: (w) => { ifinfo(w, 0); w.string(IFLA.IFNAME, name); } };
}

export function getLinkByIndex(index: number): Request {
  return { what: `show link #${index}`, type: RTM.GETLINK, flags: 0, body: (w) => ifinfo(w, index) };
}

/** Every link of the namespace (a dump). With `master`, only the ports of that bridge. */
export function dumpLinks(master?: number): Request {
  return {
    what: master ? `list links of master #${master}` : "list links", type: RTM.GETLINK, flags: 0,
    body: (w) => { ifinfo(w, 0); if (master) w.u32(IFLA.MASTER, master); },
  };
}

export interface NewLinkCommon {
  name: string;
  mtu?: number;
  mac?: string;
  up?: boolean;
  /** Enslave to this bridge at creation. */
  master?: DevRef;
}

function common(w: NlWriter, o: NewLinkCommon): void {
  w.string(IFLA.IFNAME, o.name);
  if (o.mtu) w.u32(IFLA.MTU, o.mtu);
  if (o.mac) {
    const b = parseMac(o.mac);
    if (!b) throw new Error(`link ${o.name}: ${JSON.stringify(o.mac)} is not a MAC address`);
    w.bytes(IFLA.ADDRESS, b);
  }
  if (o.master) w.u32(IFLA.MASTER, o.master.index);
}

function describe(kind: string, o: NewLinkCommon, extra = ""): string {
  return `add link ${o.name} type ${kind}${extra}${o.mtu ? ` mtu ${o.mtu}` : ""}${o.mac ? ` address ${o.mac}` : ""}${o.master ? ` master ${o.master.name}` : ""}${o.up ? " up" : ""}`;
}

/** A bridge; fails with EEXIST when the name is taken. */
export function addBridge(o: NewLinkCommon): Request {
  return {
    what: describe("bridge", o), type: RTM.NEWLINK, flags: NLM_F.CREATE | NLM_F.EXCL,
    body: (w) => {
      ifinfo(w, 0, o.up ? IFF.UP : 0, o.up ? IFF.UP : 0);
      common(w, o);
      w.beginNest(IFLA.LINKINFO);
      w.string(IFLA_INFO.KIND, "bridge");
      w.endNest();
    },
  };
}

export interface VethPeer {
  name: string;
  mtu?: number;
  /** An open descriptor of the namespace the peer is created in (and a label for messages). */
  netnsFd?: number;
  netnsLabel?: string;
}

/** A veth pair; the peer is created directly inside the namespace given by its descriptor. */
export function addVeth(o: NewLinkCommon, peer: VethPeer): Request {
  return {
    what: describe("veth", o, ` peer ${peer.name}${peer.netnsLabel ? ` netns ${peer.netnsLabel}` : ""}`), type: RTM.NEWLINK, flags: NLM_F.CREATE | NLM_F.EXCL,
    body: (w) => {
      ifinfo(w, 0, o.up ? IFF.UP : 0, o.up ? IFF.UP : 0);
      common(w, o);
      w.beginNest(IFLA.LINKINFO);
      w.string(IFLA_INFO.KIND, "veth");
      w.beginNest(IFLA_INFO.DATA);
      w.beginNest(VETH_INFO.PEER);
      ifinfo(w, 0);
      w.string(IFLA.IFNAME, peer.name);
      if (peer.mtu) w.u32(IFLA.MTU, peer.mtu);
      if (peer.netnsFd !== undefined) w.u32(IFLA.NET_NS_FD, peer.netnsFd);
      w.endNest();
      w.endNest();
      w.endNest();
    },
  };
}

/** A macvlan on `master`, created straight inside the namespace given by its descriptor (a pod's). */
export function addMacvlan(o: NewLinkCommon & { master: DevRef; mode: "bridge" | "private" | "vepa"; netnsFd?: number; netnsLabel?: string }): Request {
  return {
    what: `add link ${o.name} type macvlan link ${o.master.name} mode ${o.mode}${o.netnsLabel ? ` netns ${o.netnsLabel}` : ""}`, type: RTM.NEWLINK, flags: NLM_F.CREATE | NLM_F.EXCL,
    body: (w) => {
      ifinfo(w, 0, o.up ? IFF.UP : 0, o.up ? IFF.UP : 0);
      w.string(IFLA.IFNAME, o.name);
      if (o.mtu) w.u32(IFLA.MTU, o.mtu);
      w.u32(IFLA.LINK, o.master.index);
      if (o.netnsFd !== undefined) w.u32(IFLA.NET_NS_FD, o.netnsFd);
      w.beginNest(IFLA.LINKINFO);
      w.string(IFLA_INFO.KIND, "macvlan");
      w.beginNest(IFLA_INFO.DATA);
      w.u32(IFLA_MACVLAN.MODE, MACVLAN_MODE[o.mode === "bridge" ? "BRIDGE" : o.mode === "vepa" ? "VEPA" : "PRIVATE"]);
      w.endNest();
      w.endNest();
    },
  };
}

export interface VxlanSpec extends NewLinkCommon {
  vni: number;
  port: number;
  local: string;
  /** Underlay device. */
  dev: DevRef;
  learning: boolean;
}

export function addVxlan(o: VxlanSpec): Request {
  const local = parseIP(o.local);
  if (!local) throw new Error(`vxlan ${o.name}: local ${JSON.stringify(o.local)} is not an IP address`);
  return {
    what: describe("vxlan", o, ` id ${o.vni} dstport ${o.port} local ${o.local} dev ${o.dev.name}${o.learning ? "" : " nolearning"}`),
    type: RTM.NEWLINK, flags: NLM_F.CREATE | NLM_F.EXCL,
    body: (w) => {
      ifinfo(w, 0, o.up ? IFF.UP : 0, o.up ? IFF.UP : 0);
      common(w, o);
      w.beginNest(IFLA.LINKINFO);
      w.string(IFLA_INFO.KIND, "vxlan");
      w.beginNest(IFLA_INFO.DATA);
      w.u32(IFLA_VXLAN.ID, o.vni);
      w.bytes(local.family === 4 ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, ipToBytes(local));
      w.u32(IFLA_VXLAN.LINK, o.dev.index);
      w.u16be(IFLA_VXLAN.PORT, o.port);
      w.u8(IFLA_VXLAN.LEARNING, o.learning ? 1 : 0);
      w.endNest();
      w.endNest();
    },
  };
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** Enslave to this bridge; null frees it. */
  master?: DevRef | null;
  /** Rename. */
  name?: string;
}

/** Changes an existing link (RTM_NEWLINK without CREATE: it must exist). */
export function setLink(dev: DevRef, c: LinkChange): Request {
  const parts: string[] = [];
  if (c.name) parts.push(`name ${c.name}`);
  if (c.mtu) parts.push(`mtu ${c.mtu}`);
  if (c.mac) parts.push(`address ${c.mac}`);
  if (c.master !== undefined) parts.push(c.master ? `master ${c.master.name}` : "nomaster");
  if (c.up !== undefined) parts.push(c.up ? "up" : "down");
  return {
    what: `set link ${dev.name} ${parts.join(" ")}`, type: RTM.NEWLINK, flags: 0,
    body: (w) => {
      ifinfo(w, dev.index, c.up ? IFF.UP : 0, c.up !== undefined ? IFF.UP : 0);
      if (c.name) w.string(IFLA.IFNAME, c.name);
      if (c.mtu) w.u32(IFLA.MTU, c.mtu);
      if (c.mac) {
        const b = parseMac(c.mac);
        if (!b) throw new Error(`link ${dev.name}: ${JSON.stringify(c.mac)} is not a MAC address`);
        w.bytes(IFLA.ADDRESS, b);
      }
      if (c.master !== undefined) w.u32(IFLA.MASTER, c.master ? c.master.index : 0);
    },
  };
}

/**
 * Marks a just-made link by name (no index needed, so it can ride in the creation's batch): its
 * alias, and for a bridge port, hairpin mode.
 */
export function markLink(name: string, o: { alias?: string; hairpin?: boolean }): Request {
  return {
    what: `set link ${name}${o.alias ? ` alias ${o.alias}` : ""}${o.hairpin !== undefined ? ` type bridge_slave hairpin ${o.hairpin ? "on" : "off"}` : ""}`,
    type: RTM.NEWLINK, flags: 0,
    body: (w) => {
      ifinfo(w, 0);
      w.string(IFLA.IFNAME, name);
      if (o.alias) w.string(IFLA.IFALIAS, o.alias);
      if (o.hairpin !== undefined) {
        w.beginNest(IFLA.LINKINFO);
        w.string(IFLA_INFO.SLAVE_KIND, "bridge");
        w.beginNest(IFLA_INFO.SLAVE_DATA);
        w.u8(IFLA_BRPORT.MODE, o.hairpin ? 1 : 0);
        w.endNest();
        w.endNest();
      }
    },
  };
}

/** Hairpin mode on a bridge port (a pod reaching itself through its service IP). */
export function setHairpin(dev: DevRef, on: boolean): Request {
  return {
    what: `set bridge port ${dev.name} hairpin ${on ? "on" : "off"}`, type: RTM.SETLINK, flags: 0,
    body: (w) => {
      ifinfo(w, dev.index, 0, 0, AF_BRIDGE);
      w.beginNest(IFLA.PROTINFO);
      w.u8(IFLA_BRPORT.MODE, on ? 1 : 0);
      w.endNest();
    },
  };
}

/** Deletes a link by name or index; deleting one end of a veth pair removes both. */
export function delLink(dev: DevRef | string): Request {
  const name = typeof dev === "string" ? dev : dev.name;
  return {
    what: `delete link ${name}`, type: RTM.DELLINK, flags: 0,
    body: (w) => {
      if (typeof dev === "string") {
        ifinfo(w, 0);
        w.string(IFLA.IFNAME, dev);
      } else {
        ifinfo(w, dev.index);
      }
    },
  };
}
