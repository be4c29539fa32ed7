// The numbers of route netlink that gauze uses, from the Linux uapi headers (linux-libc-dev:
// linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h, neighbour.h, veth.h). Each group is named
// after its C prefix: NLM_F.ACK is NLM_F_ACK. test/unit/netlink-uapi.test.ts reads the headers
// on the machine and checks every number here against them.

export const AF_UNSPEC = 0, AF_INET = 2, AF_BRIDGE = 7, AF_INET6 = 10, AF_NETLINK = 16;
export const SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1, SO_SNDBUF = 7, SO_RCVBUF = 8, SO_RCVTIMEO = 20, SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33;
export const SOL_NETLINK = 270;

export const NETLINK = { ROUTE: 0, ADD_MEMBERSHIP: 1, CAP_ACK: 10, EXT_ACK: 11, GET_STRICT_CHK: 12 } as const;

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const NLM_F = {
  REQUEST: 0x01, MULTI: 0x02, ACK: 0x04, ECHO: 0x08, DUMP_INTR: 0x10,
  ROOT: 0x100, MATCH: 0x200, DUMP: 0x300,
  REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400, APPEND: 0x800,
  CAPPED: 0x100, ACK_TLVS: 0x200,
} as const;

export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2 } as const;

export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWNEIGH: 28, DELNEIGH: 29, GETNEIGH: 30,
} as const;

/** Multicast groups (1-based: the bit is 1 << (group - 1)). */
export const RTNLGRP = { LINK: 1, NEIGH: 3, IPV4_IFADDR: 5, IPV4_ROUTE: 7, IPV6_IFADDR: 9, IPV6_ROUTE: 11 } as const;

export const IFF = { UP: 0x1, BROADCAST: 0x2, LOOPBACK: 0x8, POINTOPOINT: 0x10, RUNNING: 0x40, NOARP: 0x80, PROMISC: 0x100, MULTICAST: 0x1000, LOWER_UP: 0x10000 } as const;

export const IFLA = {
  ADDRESS: 1, BROADCAST: 2, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, PROTINFO: 12, TXQLEN: 13,
  OPERSTATE: 16, LINKMODE: 17, LINKINFO: 18, NET_NS_PID: 19, IFALIAS: 20, NET_NS_FD: 28, EXT_MASK: 29, LINK_NETNSID: 37,
} as const;

export const IFLA_INFO = { KIND: 1, DATA: 2, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;

export const VETH_INFO = { PEER: 1 } as const;

export const IFLA_MACVLAN = { MODE: 1 } as const;
export const MACVLAN_MODE = { PRIVATE: 1, VEPA: 2, BRIDGE: 4, PASSTHRU: 8, SOURCE: 16 } as const;

export const IFLA_BRPORT = { STATE: 1, MODE: 4, LEARNING: 8 } as const;

export const IFLA_VXLAN = {
  ID: 1, GROUP: 2, LINK: 3, LOCAL: 4, TTL: 5, TOS: 6, LEARNING: 7, AGEING: 8, LIMIT: 9, PORT_RANGE: 10,
  PROXY: 11, RSC: 12, L2MISS: 13, L3MISS: 14, PORT: 15, GROUP6: 16, LOCAL6: 17, UDP_CSUM: 18,
} as const;

/** RFC 2863 operational states (IFLA_OPERSTATE). */
export const IF_OPER = ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"] as const;

export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8 } as const;
export const IFA_F = { NODAD: 0x02, PERMANENT: 0x80, NOPREFIXROUTE: 0x200 } as const;

export const RTA = { DST: 1, SRC: 2, IIF: 3, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15, VIA: 18 } as const;
export const RTAX = { MTU: 2 } as const;
export const RTN = { UNICAST: 1, LOCAL: 2, BROADCAST: 3, ANYCAST: 4, MULTICAST: 5, BLACKHOLE: 6, UNREACHABLE: 7, PROHIBIT: 8 } as const;
export const RTPROT = { UNSPEC: 0, KERNEL: 2, BOOT: 3, STATIC: 4 } as const;
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;
export const RT_TABLE = { UNSPEC: 0, MAIN: 254, LOCAL: 255 } as const;
export const RTNH_F = { ONLINK: 4 } as const;
export const RTM_F = { CLONED: 0x200 } as const;

export const NDA = { DST: 1, LLADDR: 2, CACHEINFO: 3, PROBES: 4, VLAN: 5, PORT: 6, VNI: 7, IFINDEX: 8, MASTER: 9 } as const;
export const NTF = { USE: 0x01, SELF: 0x02, MASTER: 0x04, PROXY: 0x08, EXT_LEARNED: 0x10, ROUTER: 0x80 } as const;
export const NUD = { INCOMPLETE: 0x01, REACHABLE: 0x02, STALE: 0x04, DELAY: 0x08, PROBE: 0x10, FAILED: 0x20, NOARP: 0x40, PERMANENT: 0x80 } as const;

/** Bytes of the fixed headers (struct nlmsghdr, ifinfomsg, ifaddrmsg, rtmsg, ndmsg, nlattr). */
export const NLMSG_HDRLEN = 16, IFINFOMSG_LEN = 16, IFADDRMSG_LEN = 8, RTMSG_LEN = 12, NDMSG_LEN = 12, NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000, NLA_TYPE_MASK = 0x3fff;
