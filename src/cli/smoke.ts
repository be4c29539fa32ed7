// `gauze smoke`: the plugin's end-to-end proof on this machine, the way a runtime uses it.
// A namespace stands in for the node (the plugin builds its bridge there, never in the host's
// namespace); two pod namespaces get ADDed, ping each other across the bridge, are CHECKed,
// DELeted twice (as containerd does) and everything is removed again.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addNetns, delNetns, netnsPath } from "../kernel/netns.ts";
import { runSync } from "../kernel/spawn.ts";

interface Step {
  step: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export async function runSmoke(opts: { json?: boolean; keep?: boolean }): Promise<number> {
  const id = `${process.pid}`;
  const node = `gz-smoke-${id}-node`;
  const pods = [`gz-smoke-${id}-a`, `gz-smoke-${id}-b`];
  const dataDir = mkdtempSync(join(tmpdir(), "gauze-smoke-"));
  const steps: Step[] = [];
  const self = process.execPath;
  const conf = JSON.stringify({
    cniVersion: "1.1.0", name: "gauze-smoke", type: "gauze", bridge: "gzsmoke0",
    ipam: { ranges: [[{ subnet: "10.250.0.0/24" }]], dataDir },
  });
  const say = (s: Step) => {
    steps.push(s);
    if (!opts.json) console.log(`${s.ok ? "ok  " : "FAIL"} ${s.step.padEnd(34)} ${s.ms.toFixed(1).padStart(7)} ms  ${s.detail}`);
  };
  const timed = (step: string, fn: () => string) => {
    const t = performance.now();
    try {
      const detail = fn();
      say({ step, ok: true, ms: performance.now() - t, detail });
      return true;
    } catch (e) {
      say({ step, ok: false, ms: performance.now() - t, detail: (e as Error).message });
      return false;
    }
  };
  const plugin = (command: string, pod: string, netns: string, stdin = conf) => {
    const r = runSync([self], {
      netns: netnsPath(node),
      input: stdin,
      env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: pod, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" },
    });
    if (r.status !== 0) throw new Error(`${command} ${pod}: ${r.stdout.trim() || r.stderr.trim()}`);
    return r.stdout;
  };
  const addresses: string[] = [];
  const results: string[] = [];
  let ok = true;
  try {
    ok &&= timed("create node + pod namespaces", () => { addNetns(node); pods.forEach((p) => addNetns(p)); return [node, ...pods].join(", "); });
    for (const pod of pods) {
      ok &&= timed(`ADD ${pod}`, () => {
        const out = plugin("ADD", pod, netnsPath(pod));
        results.push(out);
        const ip = (JSON.parse(out) as { ips: { address: string }[] }).ips[0]!.address;
        addresses.push(ip.split("/")[0]!);
        return ip;
      });
    }
    ok &&= timed("ping pod a -> pod b", () => {
      const r = runSync(["ping", "-c", "2", "-i", "0.2", "-W", "2", addresses[1]!], { netns: netnsPath(pods[0]!) });
      if (r.status !== 0) throw new Error(`ping ${addresses[1]} failed: ${(r.stdout + r.stderr).trim().split("\n").pop()}`);
      return r.stdout.trim().split("\n").pop() ?? "";
    });
    ok &&= timed("CHECK both pods", () => {
      pods.forEach((pod, i) => {
        const prev = JSON.stringify({ ...JSON.parse(conf), prevResult: JSON.parse(results[i]!) });
        plugin("CHECK", pod, netnsPath(pod), prev);
      });
      return "interfaces, addresses, routes and reservations match";
    });
    ok &&= timed("DEL both pods, twice (as containerd)", () => {
      for (const pod of pods) { plugin("DEL", pod, netnsPath(pod)); plugin("DEL", pod, ""); }
      return "idempotent";
    });
  } finally {
    if (!opts.keep) {
      timed("clean up", () => {
        [...pods, node].forEach((n) => delNetns(n));
        rmSync(dataDir, { recursive: true, force: true });
        return "namespaces and IPAM dir removed";
      });
    }
  }
  if (opts.json) console.log(JSON.stringify({ ok, steps }, null, 2));
  else console.log(ok ? "smoke: the gauze plugin works on this machine" : "smoke: FAILED (see above)");
  return ok ? 0 : 1;
}
