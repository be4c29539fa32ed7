// `gauze probe` (hidden; run by trace inside a pod's namespace): one TCP connection attempt or
// one UDP datagram from a source port trace chose, so that every node can tell the probe's
// packets from the pod's others, or one ICMP echo (where no ping binary is: gauze's image).
// Exit 0: answered (connected, a datagram came back, the echo's reply).
import { connect } from "node:net";
import { createSocket } from "node:dgram";
import { RawReceiver, sendRaw } from "../kernel/raw-socket.ts";

const IPPROTO_ICMP = 1, IPPROTO_ICMPV6 = 58;

/** One ICMP echo (IPv4 or IPv6) with `size` payload bytes, through a raw socket (CAP_NET_RAW); 0 when its reply came. */
export async function probeIcmp(o: { to: string; size: number; timeoutMs: number; id?: number }): Promise<number> {
  const v6 = o.to.includes(":");
  const id = o.id ?? (process.pid & 0xffff);
  const msg = new Uint8Array(8 + o.size);
  const dv = new DataView(msg.buffer);
  msg[0] = v6 ? 128 : 8;
  dv.setUint16(4, id);
  dv.setUint16(6, 1);
  for (let i = 8; i < msg.length; i++) msg[i] = i & 0xff;
  // IPv4's checksum is the sender's; for ICMPv6 the kernel computes it (it needs the addresses).
  if (!v6) {
    let sum = 0;
    for (let i = 0; i < msg.length; i += 2) sum += (msg[i]! << 8) | (msg[i + 1] ?? 0);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    dv.setUint16(2, ~sum & 0xffff);
  }
  const rx = new RawReceiver(v6 ? 6 : 4, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
  try {
    sendRaw(v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, o.to, msg);
    const until = Date.now() + o.timeoutMs;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) return 1;
      const p = rx.receive(Math.min(left, 200));
      if (!p) { await new Promise((r) => setTimeout(r, 0)); continue; }
      const pv = new DataView(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength);
      if (p.src === o.to && p.payload.length >= 8 && p.payload[0] === (v6 ? 129 : 0) && pv.getUint16(4) === id) return 0;
    }
  } finally {
    rx.close();
  }
}

export function probe(o: { protocol: "tcp" | "udp"; to: string; port: number; sourcePort: number; timeoutMs: number }): Promise<number> {
  return new Promise((resolve) => {
    const done = (code: number) => { clearTimeout(t); resolve(code); };
    const t = setTimeout(() => { cleanup(); resolve(1); }, o.timeoutMs);
    let cleanup = () => undefined as void;
    if (o.protocol === "tcp") {
      const sock = connect({ host: o.to, port: o.port, localPort: o.sourcePort });
      cleanup = () => { sock.destroy(); };
      sock.on("connect", () => { sock.end(); done(0); });
      sock.on("error", () => { sock.destroy(); done(1); });
    } else {
      const sock = createSocket(o.to.includes(":") ? "udp6" : "udp4");
      cleanup = () => { sock.close(); };
      sock.on("message", () => { sock.close(); done(0); });
      sock.on("error", () => { sock.close(); done(1); });
      sock.bind(o.sourcePort, () => sock.send(Buffer.from("gauze-trace\n"), o.port, o.to));
    }
  });
}
