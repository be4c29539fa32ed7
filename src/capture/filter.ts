// --filter: a small display-filter language over decoded packets, in tcpdump's words but aware
// of tunnels. A primitive matches a header at any depth, or only outside/inside the tunnel
// with `outer`/`inner`:
//   proto:  eth arp ip ip6 icmp icmp6 udp tcp vxlan geneve
//   host A | src A | dst A | src host A | dst host A | port N | src port N | dst port N | vni N
//   tunnel | malformed | cut
//   combined with and/&&, or/||, not/!, and parentheses.
// Example: "inner icmp and vni 1", "outer udp port 8472 and not inner tcp".
// Wireshark's spellings of the same are read too (a newcomer types what they know):
//   tcp.port == 80, udp.dstport == 8472, ip.addr == A, ip.src == A, ipv6.dst == A, vxlan.vni == 1
//   ("==" or "eq"; "!=" or "ne" negates), and tcpdump's "ip host A", "icmpv6", "ether".
// An unknown word is refused with the list of words that exist.
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
  ether: ["eth"], icmpv6: ["icmp6"], wg: ["wireguard"],
};

/** Wireshark's field names, as the primitive each means: [words before the value, protocol the port binds to]. */
const FIELDS: Record<string, { words: string[]; proto?: "tcp" | "udp" }> = {
  "ip.addr": { words: ["host"] }, "ip.src": { words: ["src"] }, "ip.dst": { words: ["dst"] },
  "ipv6.addr": { words: ["host"] }, "ipv6.src": { words: ["src"] }, "ipv6.dst": { words: ["dst"] },
  "tcp.port": { words: ["port"], proto: "tcp" }, "tcp.srcport": { words: ["src", "port"], proto: "tcp" }, "tcp.dstport": { words: ["dst", "port"], proto: "tcp" },
  "udp.port": { words: ["port"], proto: "udp" }, "udp.srcport": { words: ["src", "port"], proto: "udp" }, "udp.dstport": { words: ["dst", "port"], proto: "udp" },
  "vxlan.vni": { words: ["vni"] }, "geneve.vni": { words: ["vni"] },
};

/** Every word the language knows, for the error that refuses another one. */
export const FILTER_WORDS = [
  ...Object.keys(PROTOS), "inner", "outer", "host", "src", "dst", "port", "vni", "tunnel", "malformed", "cut", "and", "or", "not",
  ...Object.keys(FIELDS).map((f) => `${f} ==`),
];

function inScope(l: Layer, s: Scope): boolean {
  return s === "any" || (s === "outer" ? l.depth === 0 : l.depth > 0);
}

export function compileFilter(expr: string): PacketFilter {
  // "==" and "!=" are tokens of their own, so "tcp.port==80" reads as Wireshark writes it.
  const raw = expr.match(/\(|\)|&&|\|\||==|!=|!|[^\s()!&|=]+/g) ?? [];
  // Wireshark's "field == value" becomes the primitive it means ("tcp.port == 80" is "tcp port 80").
  const tokens: string[] = [];
  for (let k = 0; k < raw.length; k++) {
    const f = FIELDS[raw[k]!];
    if (!f) { tokens.push(raw[k]!); continue; }
    const op = raw[k + 1];
    if (op !== "==" && op !== "eq" && op !== "!=" && op !== "ne") throw new FilterError(`${raw[k]} needs == or != and a value, e.g. "${raw[k]} == ${f.words.includes("port") ? "80" : f.words[0] === "vni" ? "1" : "10.244.1.2"}"`, expr);
    if (op === "!=" || op === "ne") tokens.push("not");
    tokens.push(...(f.proto ? [f.proto] : []), ...f.words);
    k++;
  }
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
    // tcpdump's "ip host A" / "ip6 src A": the protocol qualifier adds nothing an address does not say.
    if ((word === "ip" || word === "ip6") && (peek() === "host" || peek() === "src" || peek() === "dst")) word = take();
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
      default: throw new FilterError(`unknown word ${JSON.stringify(word)}; the words are: ${FILTER_WORDS.join(", ")} (e.g. "udp port 8472 and inner icmp", "tcp.port == 80")`, expr);
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

/**
 * A live capture's --filter is tcpdump's (BPF, in the kernel): Wireshark's field spellings
 * become tcpdump's words first ("tcp.port == 80" -> "tcp port 80"), so what works for dissect
 * works for capture; tcpdump itself judges the rest. A field BPF has no word for is refused.
 */
export function captureFilterToBpf(expr: string): string {
  const raw = expr.match(/\(|\)|&&|\|\||==|!=|!|[^\s()!&|=]+/g) ?? [];
  const out: string[] = [];
  for (let k = 0; k < raw.length; k++) {
    const t = raw[k]!;
    const f = FIELDS[t];
    if (!f) { out.push(t === "==" ? "=" : t); continue; }
    if (f.words[0] === "vni") throw new FilterError(`${t}: a capture filter cannot see into the tunnel; capture "udp port 8472" and filter the VNI with gauze dissect --filter "vni N"`, expr);
    const op = raw[k + 1];
    if (op !== "==" && op !== "eq" && op !== "!=" && op !== "ne") throw new FilterError(`${t} needs == or != and a value, e.g. "${t} == ${f.words.includes("port") ? "80" : "10.244.1.2"}"`, expr);
    const words = f.words[0] === "host" || f.words.length === 2 || f.words[0] === "port" ? f.words : [...f.words, "host"];
    out.push(...(op === "!=" || op === "ne" ? ["not"] : []), ...(f.proto ? [f.proto] : []), ...words);
    k++;
  }
  return out.join(" ");
}
