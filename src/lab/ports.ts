// The lab's agnhost "image" and its probe, as the upstream NetworkPolicy suite uses them: a pod
// serves every port it declares (TCP: accepts and answers its name; UDP: echoes its name back;
// SCTP: answers an INIT with an INIT ACK through a raw socket, since this kernel has no SCTP
// sockets), and a probe from inside a pod says connected, refused or timeout. Both run inside the
// pod's network namespace (the lab starts them there).
import { createServer, connect } from "node:net";
import { createSocket } from "node:dgram";
import { IPPROTO_SCTP, RawReceiver, sendRaw } from "../kernel/raw-socket.ts";
import { SCTP_INIT, SCTP_INIT_ACK, parseSctp, sctpInit, sctpInitAck } from "../packet/sctp.ts";
import type { PodPort } from "./state.ts";

export type ProbeResult = "connected" | "refused" | "timeout";
export type ProbeProtocol = "tcp" | "udp" | "sctp";

/** Serves each port until the process is stopped. */
export async function servePorts(ports: PodPort[], who: string): Promise<void> {
  const answer = Buffer.from(`${who}\n`);
  for (const p of ports.filter((x) => x.protocol === "TCP")) {
    const srv = createServer((c) => { c.on("error", () => undefined); c.end(answer); });
    await new Promise<void>((res, rej) => { srv.once("error", rej); srv.listen({ port: p.containerPort, host: "::", ipv6Only: false }, () => res()); });
  }
  for (const p of ports.filter((x) => x.protocol === "UDP")) {
    for (const type of ["udp4", "udp6"] as const) {
      const s = createSocket({ type, ipv6Only: type === "udp6" });
      s.on("message", (_m, r) => s.send(answer, r.port, r.address));
      s.on("error", () => undefined);
      await new Promise<void>((res) => s.bind(p.containerPort, type === "udp4" ? "0.0.0.0" : "::", () => res()));
    }
  }
  const sctp = new Set(ports.filter((x) => x.protocol === "SCTP").map((x) => x.containerPort));
  if (sctp.size) {
    const rx = ([4, 6] as const).map((f) => new RawReceiver(f, IPPROTO_SCTP));
    // Raw sockets cannot join the event loop here: polled, without blocking, every 5 ms.
    setInterval(() => {
      for (const r of rx) {
        for (let pkt = r.receive(0); pkt; pkt = r.receive(0)) {
          const h = parseSctp(pkt.payload);
          if (h?.chunk === SCTP_INIT && h.initiateTag !== undefined && sctp.has(h.dstPort)) {
            try { sendRaw(IPPROTO_SCTP, pkt.src, sctpInitAck({ srcPort: h.srcPort, dstPort: h.dstPort, initiateTag: h.initiateTag }, (Math.random() * 2 ** 32) >>> 0)); } catch { /* the reply could not go: the probe times out */ }
          }
        }
      }
    }, 5);
  }
  await new Promise<void>((res) => { process.once("SIGTERM", () => res()); process.once("SIGINT", () => res()); });
}

/** One probe from this namespace to `to`:`port`. */
export async function probeOnce(to: string, port: number, protocol: ProbeProtocol, timeoutMs: number): Promise<{ result: ProbeResult; ms: number }> {
  const t0 = performance.now();
  const done = (result: ProbeResult) => ({ result, ms: +(performance.now() - t0).toFixed(1) });
  if (protocol === "tcp") {
    return new Promise((res) => {
      const c = connect({ host: to, port });
      const timer = setTimeout(() => { c.destroy(); res(done("timeout")); }, timeoutMs);
      c.once("connect", () => { clearTimeout(timer); c.destroy(); res(done("connected")); });
      c.once("error", (e: NodeJS.ErrnoException) => { clearTimeout(timer); c.destroy(); res(done(e.code === "ECONNREFUSED" ? "refused" : "timeout")); });
    });
  }
  if (protocol === "udp") {
    return new Promise((res) => {
      const s = createSocket(to.includes(":") ? "udp6" : "udp4");
      const end = (r: ProbeResult) => { clearTimeout(timer); try { s.close(); } catch { /* closed */ } res(done(r)); };
      const timer = setTimeout(() => end("timeout"), timeoutMs);
      s.once("message", () => end("connected"));
      s.on("error", (e: NodeJS.ErrnoException) => end(e.code === "ECONNREFUSED" ? "refused" : "timeout"));
      s.connect(port, to, () => s.send("probe"));
    });
  }
  // SCTP: an INIT from a port of our own, and the INIT ACK awaited from that address and port.
  const rx = new RawReceiver(to.includes(":") ? 6 : 4, IPPROTO_SCTP);
  try {
    const myPort = 32768 + Math.floor(Math.random() * 28000);
    const tag = ((Math.random() * 2 ** 32) >>> 0) || 1;
    sendRaw(IPPROTO_SCTP, to, sctpInit(myPort, port, tag));
    const until = Date.now() + timeoutMs;
    // Polled without blocking, so that several probes of one process wait side by side (each raw socket sees every SCTP packet).
    while (Date.now() < until) {
      const pkt = rx.receive(0);
      if (!pkt) { await new Promise((r) => setTimeout(r, 2)); continue; }
      const h = parseSctp(pkt.payload);
      if (h && h.srcPort === port && h.dstPort === myPort && h.vtag === tag && h.chunk === SCTP_INIT_ACK) return done("connected");
    }
    return done("timeout");
  } finally {
    rx.close();
  }
}
