// WireGuard in userspace (wireguard-go, for kernels without the module): started in a node's
// namespace, and configured through its UAPI socket (<run>/wireguard/<iface>.sock, a line
// protocol: "set=1" or "get=1", key=value lines, a blank line; the answer ends in "errno=N").
// Synchronous, over a unix socket from libc, so the agent's pass can apply a plan in one go.
// Keys are base64 here, as `wg` shows them; the protocol carries them as hex.
import { cString, describeErrno, libc } from "./libc.ts";

const AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0o2000000;
const POLLIN = 1, POLLOUT = 4;

export interface WgPeer {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  keepalive?: number;
}

export interface WgDevice {
  /** The private key's public half is not reported by the protocol: the caller knows its own key. */
  hasPrivateKey: boolean;
  listenPort?: number;
  peers: WgPeer[];
}

export interface WgPeerChange {
  publicKey: string;
  remove?: boolean;
  endpoint?: string;
  allowedIps?: string[];
  keepalive?: number;
}

export class WireguardError extends Error {}

const hex = (b64: string) => Buffer.from(b64, "base64").toString("hex");
const b64 = (h: string) => Buffer.from(h, "hex").toString("base64");

function sockaddrUn(path: string): Uint8Array {
  const p = cString(path);
  if (p.length > 108) throw new WireguardError(`socket path ${path} is too long`);
  const a = new Uint8Array(2 + 108);
  new DataView(a.buffer).setUint16(0, AF_UNIX, true);
  a.set(p, 2);
  return a;
}

function wait(fd: number, events: number, until: number, what: string): void {
  const c = libc();
  const pfd = new Uint8Array(8);
  const v = new DataView(pfd.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  const left = until - Date.now();
  if (left <= 0 || c.poll(pfd, 1, left) <= 0) throw new WireguardError(`${what}: no answer within the deadline`);
}

/** One request on the UAPI socket; the answer's lines (without the final errno line). */
export function uapi(sock: string, request: string, timeoutMs = 2000): string[] {
  const c = libc();
  const until = Date.now() + timeoutMs;
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new WireguardError(`socket: ${describeErrno(c.errno())}`);
  try {
    const addr = sockaddrUn(sock);
    if (c.connect(fd, addr, addr.length) !== 0) throw new WireguardError(`connect ${sock}: ${describeErrno(c.errno())} (is wireguard-go running for this device?)`);
    const out = new TextEncoder().encode(request);
    let sent = 0;
    while (sent < out.length) {
      wait(fd, POLLOUT, until, `write to ${sock}`);
      const n = c.send(fd, out.subarray(sent), out.length - sent, 0);
      if (n < 0) throw new WireguardError(`write to ${sock}: ${describeErrno(c.errno())}`);
      sent += n;
    }
    const buf = new Uint8Array(65536);
    let text = "";
    while (!/(^|\n)errno=-?\d+\n\n$/.test(text)) {
      wait(fd, POLLIN, until, `read from ${sock}`);
      const n = c.recv(fd, buf, buf.length, 0);
      if (n < 0) throw new WireguardError(`read from ${sock}: ${describeErrno(c.errno())}`);
      if (n === 0) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const lines = text.split("\n").filter(Boolean);
    const errLine = lines.pop() ?? "";
    const errno = Number(/^errno=(-?\d+)$/.exec(errLine)?.[1] ?? NaN);
    if (errno !== 0) throw new WireguardError(`${request.split("\n")[0]} on ${sock}: ${Number.isNaN(errno) ? "no answer" : describeErrno(errno)}`);
    return lines;
  } finally {
    c.close(fd);
  }
}

export function wgGet(sock: string): WgDevice {
  const dev: WgDevice = { hasPrivateKey: false, peers: [] };
  let peer: WgPeer | undefined;
  for (const line of uapi(sock, "get=1\n\n")) {
    const eq = line.indexOf("=");
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    if (k === "private_key") dev.hasPrivateKey = /[^0]/.test(v);
    else if (k === "listen_port") dev.listenPort = Number(v);
    else if (k === "public_key") dev.peers.push(peer = { publicKey: b64(v), allowedIps: [] });
    else if (peer && k === "endpoint") peer.endpoint = v;
    else if (peer && k === "allowed_ip") peer.allowedIps.push(v);
    else if (peer && k === "persistent_keepalive_interval") { const n = Number(v); if (n) peer.keepalive = n; }
  }
  return dev;
}

/** Sets the device's key and port (when given) and changes the peers listed; others stay. */
export function wgSet(sock: string, o: { privateKey?: string; listenPort?: number; peers?: WgPeerChange[] }): void {
  const lines = ["set=1"];
  if (o.privateKey) lines.push(`private_key=${hex(o.privateKey)}`);
  if (o.listenPort !== undefined) lines.push(`listen_port=${o.listenPort}`);
  for (const p of o.peers ?? []) {
    lines.push(`public_key=${hex(p.publicKey)}`);
    if (p.remove) { lines.push("remove=true"); continue; }
    if (p.endpoint) lines.push(`endpoint=${p.endpoint}`);
    if (p.allowedIps) lines.push("replace_allowed_ips=true", ...p.allowedIps.map((a) => `allowed_ip=${a}`));
    if (p.keepalive !== undefined) lines.push(`persistent_keepalive_interval=${p.keepalive}`);
  }
  uapi(sock, lines.join("\n") + "\n\n");
}
