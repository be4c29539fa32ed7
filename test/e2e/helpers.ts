// Test fixtures for running the real artifact (dist/bin/gauze) the way a runtime does: env +
// stdin, inside a namespace that stands in for the node. Every namespace and directory a test
// makes is registered and removed in `after`, even when the test fails.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

export const ROOT = join(import.meta.dirname, "..", "..");
export const GAUZE = join(ROOT, "dist", "bin", "gauze");
export const REF_DIR = ["/usr/lib/cni", "/opt/cni/bin"].find((d) => spawnSync("test", ["-x", `${d}/bridge`]).status === 0) ?? "/usr/lib/cni";

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export function sh(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const r = spawnSync(argv[0]!, argv.slice(1), { input: opts.input, env: opts.env ?? process.env, encoding: "utf8" });
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export function must(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = sh(argv, opts);
  if (r.status !== 0) throw new Error(`${argv.join(" ")} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return r.stdout;
}

let counter = 0;

/** A scratch world for one test file: namespaces and temp dirs, all removed in `after`. */
export class World {
  readonly tag: string;
  readonly namespaces: string[] = [];
  readonly dirs: string[] = [];
  constructor(name: string) {
    this.tag = `gz-t${process.pid % 100000}${name}`.slice(0, 20);
    after(() => this.cleanup());
  }
  netns(suffix = `n${counter++}`): string {
    const name = `${this.tag}-${suffix}`;
    must(["ip", "netns", "add", name]);
    this.namespaces.push(name);
    return name;
  }
  tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), "gauze-test-"));
    this.dirs.push(d);
    return d;
  }
  cleanup(): void {
    for (const n of this.namespaces.splice(0)) sh(["ip", "netns", "del", n]);
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

export function nsPath(name: string): string {
  return `/run/netns/${name}`;
}

export interface PluginCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  extraEnv?: Record<string, string>;
  /** Namespace the plugin runs in (the "node"). */
  node: string;
  bin?: string;
}

export function pluginEnv(c: PluginCall): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, CNI_COMMAND: c.command, CNI_PATH: c.path ?? REF_DIR, ...c.extraEnv };
  if (c.containerId !== undefined) env.CNI_CONTAINERID = c.containerId;
  env.CNI_NETNS = c.netns ?? "";
  env.CNI_IFNAME = c.ifname ?? "eth0";
  if (c.args !== undefined) env.CNI_ARGS = c.args;
  return env;
}

/** Runs the plugin inside the node namespace, as a runtime on that node would. */
export function plugin(c: PluginCall, stdin: string | object): Run {
  const input = typeof stdin === "string" ? stdin : JSON.stringify(stdin);
  return sh(["nsenter", `--net=${nsPath(c.node)}`, c.bin ?? GAUZE], { input, env: pluginEnv(c) });
}

export function pluginAsync(c: PluginCall, stdin: string | object): Promise<Run> {
  const input = typeof stdin === "string" ? stdin : JSON.stringify(stdin);
  return new Promise((resolve) => {
    const p = spawn("nsenter", [`--net=${nsPath(c.node)}`, c.bin ?? GAUZE], { env: pluginEnv(c) });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    p.on("close", (code) => resolve({ status: code ?? 1, stdout, stderr }));
    p.stdin.end(input);
  });
}

export function json<T = Record<string, unknown>>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.status}): ${r.stdout} ${r.stderr}`);
  }
}

/** `ip -j ...` inside a namespace, parsed. */
export function ipIn<T = Record<string, unknown>[]>(ns: string, args: string[]): T {
  const out = must(["ip", "-n", ns, "-j", ...args]);
  return (out.trim() ? JSON.parse(out) : []) as T;
}

export function linkExists(ns: string, name: string): boolean {
  return sh(["ip", "-n", ns, "link", "show", "dev", name]).status === 0;
}

export function ping(fromNs: string, ip: string, count = 1): boolean {
  return sh(["ip", "netns", "exec", fromNs, "ping", "-c", String(count), "-i", "0.2", "-W", "1", ip]).status === 0;
}

export function gauzeConf(dataDir: string, extra: Record<string, unknown> = {}, ipamExtra: Record<string, unknown> = {}) {
  return {
    cniVersion: "1.1.0",
    name: "gztest",
    type: "gauze",
    bridge: "gzbr0",
    ipam: { ranges: [[{ subnet: "10.99.0.0/24" }]], dataDir, ...ipamExtra },
    ...extra,
  };
}

export interface AddResult {
  cniVersion: string;
  interfaces: { name: string; mac?: string; mtu?: number; sandbox?: string }[];
  ips: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes: { dst: string; gw?: string }[];
  dns: Record<string, unknown>;
}

/** host-local style reservations in <dataDir>/<network>: address -> file content. */
export function reservations(dataDir: string, network = "gztest"): Map<string, string> {
  const out = new Map<string, string>();
  const dir = join(dataDir, network);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^[0-9.]+$|^[0-9a-f:]+$/.test(name)) continue;
    out.set(name, readFileSync(join(dir, name), "utf8"));
  }
  return out;
}

/** Pings from a lab pod to `ip` every 0.1 s while `during` runs (and 1.5 s after); the pings sent and lost. */
export async function lossDuring(lab: string, from: string, ip: string, during: () => void): Promise<{ sent: number; lost: number }> {
  const p = spawn("nsenter", [`--net=/run/netns/gz-${lab}-pod-${from}`, "ping", "-n", "-i", "0.1", "-W", "1", ip]);
  let out = "";
  p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  const closed = new Promise((r) => p.on("close", r));
  try {
    await new Promise((r) => setTimeout(r, 400));
    during();
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    // Also when `during` throws: a ping left running keeps the test file from ever ending.
    p.kill("SIGINT");
    await closed;
  }
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out)!;
  return { sent: Number(m[1]), lost: Number(m[1]) - Number(m[2]) };
}

/** A packet as `gauze capture --json` prints it (docs/json.md): the fields the tests read. */
export interface CapturedPacket {
  layers: { layer: string; totalLen?: number; payloadLen?: number; source?: string; destination?: string }[];
  tunnel?: { overheadBytes: number };
  sealed?: { protocol?: string; outerIpLen: number; innerPaddedLen: number; overheadBytes: number };
}

/** The first packet `gauze capture` decodes on a lab node's eth0 while one ping goes from `fromPod` to `to`. */
export function captureOne(lab: string, node: string, filter: string, fromPod: string, to: string): Promise<CapturedPacket> {
  const c = spawn(GAUZE, ["capture", "--iface", "eth0", "--netns", `gz-${node}`, "--filter", filter, "--count", "1", "--duration", "5", "--json"]);
  let out = "";
  c.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve) => {
    setTimeout(() => sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-${fromPod}`, "ping", "-c", "1", "-W", "1", to]), 600);
    c.on("close", () => resolve(JSON.parse(out.trim().split("\n")[0]!) as CapturedPacket));
  });
}

/**
 * `gauze observe <args>` running (a live stream): what it printed so far, a wait for a condition
 * on it (the error names why and shows both streams), and its stop.
 */
export function observing(args: string[]): { out: () => string; err: () => string; until: (what: () => boolean, ms: number, why: string) => Promise<void>; stop: () => void } {
  const p = spawn(GAUZE, ["observe", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  p.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
  p.stderr!.on("data", (d: Buffer) => { err += d.toString(); });
  const until = async (what: () => boolean, ms: number, why: string) => {
    const end = Date.now() + ms;
    while (!what()) {
      if (Date.now() > end) throw new Error(`${why}\nstdout:\n${out}\nstderr:\n${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { out: () => out, err: () => err, until, stop: () => { p.kill("SIGINT"); } };
}
