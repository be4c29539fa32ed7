// The route-netlink client: src/kernel/netlink/rtnl.ts is the entry; the other modules build and
// parse one kind of object each (link, addr, route, neigh), over socket.ts and wire.ts.
export { Rtnl, withRtnl, type Tolerate } from "./rtnl.ts";
export { NetlinkError, NetlinkSocket, type Outcome, type Request, type SocketOptions } from "./socket.ts";
export { NetlinkParseError } from "./wire.ts";
export { type DevRef, type Link, type LinkChange, type VxlanInfo, addBridge, addMacvlan, addVeth, addVxlan, delLink, markLink, setHairpin, setLink } from "./link.ts";
export { type Addr, addAddr, delAddr } from "./addr.ts";
export { type Route, type RouteSpec, addRoute, delRoute, formatRoute, isOnlink, replaceRoute } from "./route.ts";
export { type FdbEntry, type Neigh, delFdb, delNeigh, isPermanent, replaceFdb, replaceNeigh } from "./neigh.ts";
