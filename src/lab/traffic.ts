// Traffic the lab's pods can make, as the lab's "images" run them inside a pod or node namespace:
// a bounded UDP flood (random ports, as a misbehaving or hostile pod sprays them) and a prober
// that times HTTP GETs (an agent's /healthz under load). Benchmarks and tests use both.
import { createSocket } from "node:dgram";
import { httpGet } from "./http.ts";
import { percentile } from "../util/stats.ts";

export interface FloodOptions {
  to: string;
  /** Datagrams a second. */
  rate: number;
  seconds: number;
  /** A fixed destination port; absent: a random one from 1024-65535 for each datagram. */
  port?: number;
  size?: number;
}

/** Sends `rate` datagrams a second for `seconds`, in 10 ms batches; resolves with how many went. */
export function udpFlood(o: FloodOptions): Promise<{ sent: number; errors: number }> {
  const sock = createSocket(o.to.includes(":") ? "udp6" : "udp4");
  const payload = Buffer.alloc(o.size ?? 32, "y");
  let sent = 0, errors = 0;
  const perTick = Math.max(1, Math.round(o.rate / 100));
  const until = Date.now() + o.seconds * 1000;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (Date.now() >= until) {
        clearInterval(timer);
        sock.close();
        resolve({ sent, errors });
        return;
      }
      for (let i = 0; i < perTick; i++) {
        const port = o.port ?? 1024 + Math.floor(Math.random() * (65536 - 1024));
        sock.send(payload, port, o.to, (e) => { if (e) errors++; });
        sent++;
      }
    }, 10);
  });
}

/** GETs `url` every `everyMs` for `seconds`; latency percentiles (a request that times out counts as its timeout). */
export async function httpProbe(url: string, everyMs: number, seconds: number, timeoutMs = 2000): Promise<{ n: number; failed: number; p50: number; p99: number; max: number }> {
  const ms: number[] = [];
  let failed = 0;
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const t0 = performance.now();
    try {
      const r = await httpGet(url, timeoutMs);
      if (r.status !== 200) failed++;
      ms.push(r.ms);
    } catch {
      failed++;
      ms.push(performance.now() - t0);
    }
    const left = everyMs - (performance.now() - t0);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
  const sorted = [...ms].sort((a, b) => a - b);
  return { n: ms.length, failed, p50: +percentile(sorted, 50).toFixed(2), p99: +percentile(sorted, 99).toFixed(2), max: +(sorted[sorted.length - 1] ?? 0).toFixed(2) };
}
