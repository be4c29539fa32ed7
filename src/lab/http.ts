// The lab's two HTTP helpers: the "nginx" image's server (it answers with the pod's name, so a
// client sees which pod it reached), and a small GET client to run inside a pod's namespace.
import { createServer, get } from "node:http";

export function serveHttp(port: number, pod: string): Promise<never> {
  // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d: said as the IPv4 address it is.
  const plain = (a: string | undefined) => (a ?? "").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
  const server = createServer((req, res) => {
    const local = `${plain(req.socket.localAddress)}:${req.socket.localPort}`;
    res.writeHead(200, { "content-type": "text/plain", server: "gauze-lab-nginx" });
    res.end(`hello from ${pod} (${local}), you are ${plain(req.socket.remoteAddress)}\n`);
  });
  // Both families, as nginx's image listens on a dual-stack pod (":: with ipv6only off").
  server.once("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EAFNOSUPPORT" || e.code === "EADDRNOTAVAIL") server.listen(port, "0.0.0.0"); // IPv6 off in this namespace
    else throw e;
  });
  server.listen({ port, host: "::", ipv6Only: false });
  return new Promise(() => undefined);
}

export function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => { body += d; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - t0 }));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}
