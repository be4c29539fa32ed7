// A real etcd server for tests, on loopback with a temp data dir; stopped (by PID) and removed
// after the test file.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";

export interface TestEtcd {
  endpoint: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  remove(): Promise<void>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

/** `slot` picks another pair of ports (several etcds in one test file); `tls` serves https with client certificates. */
export async function startEtcd(o: { slot?: number; tls?: { cert: string; key: string; ca: string } } = {}): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), "gauze-etcd-"));
  const base = 24000 + (process.pid % 500) * 8 + (o.slot ?? 0) * 2;
  const client = base;
  const peer = base + 1;
  const scheme = o.tls ? "https" : "http";
  const tls = o.tls ? ["--cert-file", o.tls.cert, "--key-file", o.tls.key, "--client-cert-auth", "--trusted-ca-file", o.tls.ca] : [];
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn("etcd", ["--name", "gz-test", "--data-dir", join(dir, "data"), "--listen-client-urls", `${scheme}://127.0.0.1:${client}`,
      "--advertise-client-urls", `${scheme}://127.0.0.1:${client}`, "--listen-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`, "--initial-cluster", `gz-test=http://127.0.0.1:${peer}`, "--log-level", "error", ...tls], { stdio: "ignore" });
    const until = Date.now() + 10_000;
    while (!(await portOpen(client))) {
      if (Date.now() > until) throw new Error("etcd did not start (apt-get install etcd-server)");
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    if (!proc || proc.exitCode !== null) return;
    const p = proc;
    const gone = new Promise((r) => p.on("exit", r));
    p.kill("SIGTERM");
    await gone;
  };
  await start();
  return { endpoint: `${scheme}://127.0.0.1:${client}`, stop, start, remove: async () => { await stop(); rmSync(dir, { recursive: true, force: true }); } };
}
