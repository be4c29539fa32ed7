// --filter: a small display-filter language over decoded packets, in tcpdump's words but aware
// of tunnels. A primitive matches a header at any depth, or only outside/inside the tunnel
// with `outer`/`inner`:
//   proto:  eth arp ip ip6 icmp icmp6 udp tcp vxlan geneve
//   host A | src A | dst A | src host A | dst host A | port N | src port N | dst port N | vni N
//   tunnel | malformed | cut
//   combined with and/&&, or/||, not/!, and parentheses.
// Example: "inner icmp and vni 1", "outer udp port 8472 and not inner tcp".
import type { Dissection, Layer } from "../packet/decode/layers.ts";
import { ipv4Text, ipv6At } from "./addr.ts";
import { parseIP, formatIP } from "../net/cidr.ts";

export type PacketFilter = (d: Dissection) => boolean;

export class FilterError extends Error {
  constructor(message: string, readonly expr: string) {
    super(`filter ${JSON.stringify(expr)}: ${message}`);
    this.name = "FilterError";
  }
}

type Scope = "any" | "outer" | "inner";
const PROTOS: Record<string, Layer["kind"][]> = {
  eth: ["eth"], arp: ["arp"], ip: ["ipv4"], ipv4: ["ipv4"], ip6: ["ipv6"], ipv6: ["ipv6"], icmp: ["icmp"], icmp6: ["icmp6"],
  udp: ["udp"], tcp: ["tcp"], vxlan: ["vxlan"], geneve: ["geneve"], wireguard: ["wireguard"],
};

function inScope(l: Layer, s: Scope): boolean {
  return s === "any" || (s === "outer" ? l.depth === 0 : l.depth > 0);
}

export function compileFilter(expr: string): PacketFilter {
  const tokens = expr.match(/\(|\)|&&|\|\||!|[^\s()!&|]+/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const take = () => {
    const t = tokens[i++];
    if (t === undefined) throw new FilterError("ends too early", expr);
    return t;
  };
  const number = (what: string) => {
    const t = take();
    if (!/^\d+$/.test(t)) throw new FilterError(`${what} needs a number, not ${JSON.stringify(t)}`, expr);
    return Number(t);
  };
  const address = () => {
    const t = take();
    const ip = parseIP(t);
    if (!ip) throw new FilterError(`${JSON.stringify(t)} is not an IP address`, expr);
    return formatIP(ip);
  };

  const parseOr = (): PacketFilter => {
    let left = parseAnd();
    while (peek() === "or" || peek() === "||") {
      i++;
      const a = left, b = parseAnd();
      left = (d) => a(d) || b(d);
    }
    return left;
  };
  const parseAnd = (): PacketFilter => {
    let left = parseNot();
    while (peek() === "and" || peek() === "&&") {
      i++;
      const a = left, b = parseNot();
      left = (d) => a(d) && b(d);
    }
    return left;
  };
  const parseNot = (): PacketFilter => {
    if (peek() === "not" || peek() === "!") {
      i++;
      const a = parseNot();
      return (d) => !a(d);
    }
    return parsePrimary();
  };
  const parsePrimary = (): PacketFilter => {
    const t = take();
    if (t === "(") {
      const e = parseOr();
      if (take() !== ")") throw new FilterError("missing )", expr);
      return e;
    }
    let scope: Scope = "any";
    let word = t;
    if (t === "inner" || t === "outer") {
      scope = t;
      word = take();
    }
    const layers = (kinds: Layer["kind"][]) => (d: Dissection) => d.layers.some((l) => kinds.includes(l.kind) && inScope(l, scope));
    if (PROTOS[word]) {
      const base = layers(PROTOS[word]!);
      // tcpdump style "udp port 8472" / "tcp dst port 80": a port right after a protocol binds to it.
      const next = peek();
      if ((word === "udp" || word === "tcp") && (next === "port" || next === "src" || next === "dst")) {
        const portMatch = parsePort(take(), word);
        return (d) => base(d) && portMatch(d);
      }
      return base;
    }
    switch (word) {
      case "tunnel": return (d) => d.tunnel !== undefined;
      case "malformed": return (d) => d.malformed !== undefined;
      case "cut": return (d) => d.cut !== undefined;
      case "vni": { const n = number("vni"); return (d) => d.layers.some((l) => (l.kind === "vxlan" || l.kind === "geneve") && l.vni === n && inScope(l, scope)); }
      case "host": { const a = address(); return (d) => d.layers.some((l) => inScope(l, scope) && ipMatches(l, d, a, "any")); }
      case "src": case "dst": case "port": return parsePortOrHost(word, scope);
      default: throw new FilterError(`unknown word ${JSON.stringify(word)}`, expr);
    }
    function parsePortOrHost(first: string, sc: Scope): PacketFilter {
      if (first === "port") return parsePort(first, undefined, sc);
      const dir = first as "src" | "dst";
      if (peek() === "port") return parsePort(dir, undefined, sc);
      if (peek() === "host") i++;
      const a = address();
      return (d) => d.layers.some((l) => inScope(l, sc) && ipMatches(l, d, a, dir));
    }
    function parsePort(first: string, proto?: string, sc: Scope = scope): PacketFilter {
      let dir: "src" | "dst" | "any" = "any";
      if (first === "src" || first === "dst") {
        dir = first;
        if (take() !== "port") throw new FilterError(`expected "port" after ${first}`, expr);
      }
      const n = number("port");
      return (d) => d.layers.some((l) => (l.kind === "udp" || l.kind === "tcp") && (!proto || l.kind === proto) && inScope(l, sc) &&
        ((dir !== "dst" && l.srcPort === n) || (dir !== "src" && l.dstPort === n)));
    }
  };

  if (tokens.length === 0) throw new FilterError("is empty", expr);
  const f = parseOr();
  if (i < tokens.length) throw new FilterError(`unexpected ${JSON.stringify(tokens[i])}`, expr);
  return f;
}

function ipMatches(l: Layer, d: Dissection, addr: string, dir: "src" | "dst" | "any"): boolean {
  if (l.kind === "ipv4") {
    return (dir !== "dst" && ipv4Text(l.src) === addr) || (dir !== "src" && ipv4Text(l.dst) === addr);
  }
  if (l.kind === "ipv6") {
    return (dir !== "dst" && ipv6At(d.frame, l.srcAt) === addr) || (dir !== "src" && ipv6At(d.frame, l.dstAt) === addr);
  }
  return false;
}
