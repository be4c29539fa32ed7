// `gauze probe` (hidden; run by trace inside a pod's namespace): one TCP connection attempt or
// one UDP datagram from a source port trace chose, so that every node can tell the probe's
// packets from the pod's others. Exit 0: answered (connected, or a datagram came back).
import { connect } from "node:net";
import { createSocket } from "node:dgram";

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
