// `gauze agent-api GET <path>` (hidden): one request to this node's agent API (its unix socket,
// /run/gauze/agent.sock) with the body streamed to stdout. A cluster source runs it inside the
// agent's container through the API server's pods/exec (observe/cluster-source.ts), so the
// agent's API never listens on a TCP port and the API server's RBAC decides who may ask.
//   exit 0: HTTP 200, the body on stdout
//   exit 1: another status, "HTTP <code>: <body>" on stderr
//   exit 2: the socket did not answer (the reason on stderr)
// With --until-stdin-ends a live stream (follow=1) stops when stdin closes: the exec session's
// end closes it, so a reader that goes away leaves no request behind on the agent.
// `/local/links` is answered here, not by the agent: the node's interfaces (index to name), which
// trace uses to name the hops it reports; `/local/net-conf` the net-conf.json the agent reads
// (the manifest's ConfigMap, /etc/gauze/net-conf.json), whose Network doctor checks podCIDRs against.
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { withRtnl } from "../kernel/netlink/index.ts";
import { gauzeExecutable, runInteractive } from "../kernel/spawn.ts";
import { nodePaths } from "../node/paths.ts";
import { podRecordDir, readPodRecords } from "../node/pod-record.ts";

export interface AgentApiOptions { socket?: string; netConf?: string; untilStdinEnds?: boolean }

export function agentApi(method: string, path: string, o: AgentApiOptions): Promise<number> {
  if (method !== "GET") {
    process.stderr.write(`gauze agent-api: the agent's API answers GET only (not ${method})\n`);
    return Promise.resolve(2);
  }
  if (!path.startsWith("/")) {
    process.stderr.write(`gauze agent-api: ${JSON.stringify(path)} is not a path: give one such as /v1/flows?last=20\n`);
    return Promise.resolve(2);
  }
  if (path === "/local/links") {
    try {
      const links = withRtnl({}, (nl) => Object.fromEntries(nl.links().map((l) => [String(l.index), l.name])));
      process.stdout.write(JSON.stringify(links));
      return Promise.resolve(0);
    } catch (e) {
      process.stderr.write(`gauze agent-api: cannot list this node's links: ${(e as Error).message}\n`);
      return Promise.resolve(2);
    }
  }
  if (path === "/local/net-conf") {
    try {
      process.stdout.write(readFileSync(o.netConf ?? "/etc/gauze/net-conf.json", "utf8"));
      return Promise.resolve(0);
    } catch (e) {
      process.stderr.write(`gauze agent-api: cannot read the agent's net-conf.json: ${(e as Error).message}\n`);
      return Promise.resolve(2);
    }
  }
  const socket = o.socket ?? nodePaths("").apiSocket;
  return new Promise((settle) => {
    // Once answered, stdin must not hold the process open.
    const resolve = (code: number) => { if (o.untilStdinEnds) process.stdin.destroy(); settle(code); };
    const req = request({ socketPath: socket, path, method: "GET" }, (res) => {
      if (res.statusCode !== 200) {
        let body = "";
        res.on("data", (d: Buffer) => { body += d.toString(); });
        res.on("end", () => { process.stderr.write(`HTTP ${res.statusCode}: ${body.trim()}\n`); resolve(1); });
        return;
      }
      res.pipe(process.stdout);
      res.on("end", () => resolve(0));
      res.on("error", (e) => { process.stderr.write(`the agent cut the stream: ${e.message}\n`); resolve(2); });
    });
    req.on("error", (e: Error & { code?: string }) => {
      const why = e.code === "ENOENT" ? `no API socket at ${socket}: the agent is not running in this container`
        : e.code === "ECONNREFUSED" ? `the API socket ${socket} refuses connections: the agent has stopped` : e.message;
      process.stderr.write(`${why}\n`);
      resolve(2);
    });
    req.end();
    if (o.untilStdinEnds) {
      process.stdin.on("end", () => { req.destroy(); resolve(0); });
      process.stdin.on("error", () => { req.destroy(); resolve(0); });
      process.stdin.resume();
    }
    // A reader that has gone away: stdout's pipe breaks at the next write.
    process.stdout.on("error", () => { req.destroy(); resolve(0); });
  });
}

/**
 * `gauze agent-api in-pod --ip <pod IP> -- <argv>` (hidden): runs argv (a trace probe) inside the
 * network namespace of this node's pod that has that address, found by its CNI record (the
 * runtime's netns path). Needs CAP_SYS_ADMIN (setns) and the host's /run/netns in the container:
 * the manifest's `--trace-probes` opt-in gives both. argv[0] "gauze" is this executable.
 */
export function inPod(ip: string, argv: string[]): number {
  const records = readPodRecords(podRecordDir(nodePaths("").subnetFile));
  const r = records.find((x) => x.ips.some((a) => a.split("/")[0] === ip));
  if (!r) {
    process.stderr.write(`gauze agent-api: no pod of this node has ${ip} (${records.length} pod record(s) here)\n`);
    return 2;
  }
  // containerd names /var/run/netns/cni-…; /var/run is /run on the host, and only /run/netns is mounted.
  const netns = r.netns.replace(/^\/var\/run\//, "/run/");
  if (!existsSync(netns)) {
    process.stderr.write(`gauze agent-api: the pod's network namespace ${r.netns} is not visible here: the agent's container needs the host's /run/netns (gauze manifests --trace-probes)\n`);
    return 2;
  }
  const cmd = argv[0] === "gauze" ? [gauzeExecutable(), ...argv.slice(1)] : argv;
  try {
    const code = runInteractive(cmd, { netns });
    // The exec's caller tells "ran, no answer" from "could not run" by this line (cluster-source.ts).
    if (code === 1) process.stderr.write("gauze probe: no answer\n");
    return code;
  } catch (e) {
    process.stderr.write(`gauze agent-api: cannot enter ${netns}: ${(e as Error).message} (entering a pod's namespace needs CAP_SYS_ADMIN: gauze manifests --trace-probes)\n`);
    return 2;
  }
}
