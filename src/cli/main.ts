// The gauze command line. Each subcommand lives in its own module and is loaded on use.
import { Command, Option } from "commander";
import { GAUZE_VERSION } from "../version.ts";
import { SPEC_VERSION, SUPPORTED_VERSIONS } from "../cni/version.ts";
import { ETCD_FLAGS, STORE_FLAGS } from "../store/flags.ts";

/** The subnet registry flags (store/flags.ts), shared by the agent, uninstall and the lab's store helpers. */
function withStoreOptions(c: Command): Command {
  for (const d of STORE_FLAGS) c.option(d.flag, d.help, d.default);
  return c;
}

/** A cluster through its Kubernetes API instead of a lab (cli/source.ts, observe/cluster-source.ts). */
function withKubeOptions(c: Command): Command {
  return c.option("--kubeconfig <path>", "a cluster through its Kubernetes API (each agent reached by pods/exec; else $KUBECONFIG, the in-cluster config)")
    .option("--context <name>", "the kubeconfig's context to use")
    .option("--gauze-namespace <ns>", "gauze's namespace on the cluster", "kube-gauze")
    .option("--daemonset <name>", "gauze's DaemonSet on the cluster", "kube-gauze-ds");
}

export async function runCli(argv: string[]): Promise<number> {
  let status = 0;
  const program = new Command()
    .name("gauze")
    .description("Kubernetes pod networking you can see through.\nWith CNI_COMMAND set, this executable is the gauze CNI plugin.")
    .version(GAUZE_VERSION, "-v, --version")
    .exitOverride()
    .showHelpAfterError();

  // Each command is registered only when it is the one asked for (all of them for help or an
  // unknown word): registering every command and its options cost 2.5 ms of each start.
  const commands: [string, () => void | Promise<void>][] = [
    ["version", () => {
      program.command("version")
        .description("print gauze's version and the CNI versions the plugin speaks")
        .option("--json", "print JSON")
        .action((opts: { json?: boolean }) => {
          const info = { gauze: GAUZE_VERSION, cniSpec: SPEC_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
          console.log(opts.json ? JSON.stringify(info) : `gauze ${info.gauze} (CNI ${info.cniSpec}; speaks ${info.supportedVersions.join(", ")})`);
        });
    }],
    ["smoke", () => {
      program.command("smoke")
        .description("prove the plugin on this machine: a node namespace, two pods, ping between them, then clean up")
        .option("--json", "print a JSON report")
        .option("--keep", "leave the namespaces in place for a look around")
        .action(async (opts: { json?: boolean; keep?: boolean }) => {
          const { runSmoke } = await import("./smoke.ts");
          status = await runSmoke(opts);
        });
    }],
    ["dissect", () => {
      program.command("dissect")
        .description("decode a pcap/pcapng capture, overlay-aware: each layer with its header length, and what the tunnel costs")
        .argument("<file>", "capture file (pcap or pcapng), or - for stdin")
        .option("--json", "JSON lines, one per packet (with --summary: one JSON document)")
        .option("--summary", "one row per flow with packets and bytes (a tunnel flow with its outer/inner bytes and overhead); totals")
        .option("--vxlan-port <ports>", "UDP ports decoded as VXLAN, comma-separated", "8472,4789")
        .option("--limit <n>", "stop after n packets (after --filter)")
        .option("--filter <expr>", "show only matching packets, e.g. \"inner icmp and vni 1\" (see README)")
        .action(async (file: string, opts: Record<string, string | boolean>) => {
          const { runDissect } = await import("./dissect.ts");
          status = runDissect(file, opts);
        });
    }],
    ["capture", () => {
      program.command("capture")
        .description("capture live with tcpdump and decode as it arrives (same output as dissect)")
        .requiredOption("--iface <name>", "interface to capture on")
        .option("--netns <name|path>", "network namespace of the interface (a name under /run/netns, or a path)")
        .option("--filter <bpf>", "tcpdump capture filter, e.g. \"udp port 8472\"")
        .option("--count <n>", "stop after n packets")
        .option("--duration <seconds>", "stop after this long")
        .option("-w, --write <file>", "also write the raw capture (pcap) to this file")
        .option("--json", "JSON lines, one per packet (with --summary: one JSON document)")
        .option("--summary", "one row per flow (tunnelled or not) at the end instead of each packet")
        .option("--vxlan-port <ports>", "UDP ports decoded as VXLAN, comma-separated", "8472,4789")
        .action(async (opts: Record<string, string>) => {
          const { runCapture } = await import("./dissect.ts");
          status = await runCapture(opts as unknown as import("./dissect.ts").CaptureCliOptions);
        });
    }],
    ["agent", () => {
      const agent = program.command("agent")
        .description("the node agent: lease this node's pod subnet, program the overlay to every other node, install the CNI config")
        .option("--node <name>", "node name (default: $NODE_NAME, else the hostname)")
        .option("--iface <name>", "the node's underlay interface (default: the one the IPv4 default route uses)")
        .option("--mtu <n>", "pod MTU (default: the underlay's MTU minus the backend's overhead; it may only be lower)");
      withStoreOptions(agent)
        .option("--root <dir>", "prefix for the node's paths (run/gauze, etc/cni/net.d, var/lib/cni)", "")
        .option("--no-ip-masq", "do not masquerade pod traffic leaving the pod network")
        .option("--health-addr <addr>", "where /healthz, /readyz and /metrics listen (host:port; 0.0.0.0:9317 to let Prometheus scrape from other hosts)", "127.0.0.1:9317")
        .option("--lease-ttl <duration>", "subnet lease lifetime", "24h")
        .option("--resync <duration>", "full reconcile period (changes are applied at once anyway)", "10s")
        .option("--bridge <name>", "pod bridge the conflist names", "cni0")
        .option("--no-observe", "do not record flows and drops (gauze observe, trace and ui read them from the agent)")
        .option("--observer <mode>", "what flows and drops are observed with: ebpf (tc programs and kfree_skb), ring (a packet ring and tracefs), auto (eBPF where the kernel and capabilities allow it)", "auto")
        .option("--network-policy <mode>", "enforce NetworkPolicy on this node's pods: auto (where the Kubernetes API is reachable: --kubeconfig, or in a cluster), on, off", "auto")
        .option("--policy-established <mode>", "what a policy change does to established connections: keep (they go on, as conntrack allowed them) or recheck (every packet of the opening direction is judged again: a change cuts what it denies)", "keep")
        .option("--datapath <kind>", "how pod packets move: classic (the bridge and the node's routing) or ebpf (redirected by tc programs past both); default: the network config's Datapath, else classic")
        .option("--uninstall", "remove the device, routes, rules, subnet file and conflist, release the lease, and exit")
        .action(async (opts: import("./agent.ts").AgentCliOptions) => {
          const { runAgent } = await import("./agent.ts");
          status = await runAgent(opts);
        });
    }],
    ["manifests", () => {
      program.command("manifests")
        .description("print the Kubernetes manifest that installs gauze (kubectl apply -f -); deploy/kube-gauze.yml is the default")
        .option("--pod-cidr <cidr>", "pod network (the cluster CIDR the controller manager allocates node podCIDRs from)", "10.244.0.0/16")
        .option("--backend <type>", "vxlan, host-gw, vxlan-direct (vxlan with DirectRouting), macvlan or wireguard", "vxlan")
        .option("--ipv6 [cidr]", "dual-stack: EnableIPv6 with this IPv6Network (default fd00:10:244::/56, kind's)")
        .option("--image <ref>", "gauze's image (npm run image builds localhost/gauze:<version>)")
        .option("--store <kind>", "subnet registry: kube (the Kubernetes API) or etcd", "kube")
        .option(ETCD_FLAGS[0]!.flag, `with --store etcd: ${ETCD_FLAGS[0]!.help}`)
        .option("--mtu <n>", "pod MTU (default: the underlay's minus the backend's overhead)")
        .option("--datapath <kind>", "net-conf.json's Datapath: classic (the bridge, the default) or ebpf (pod packets redirected by eBPF)")
        .option("--trace-probes", "let gauze trace --kubeconfig send its probe from a pod (the agent gets CAP_SYS_ADMIN and the host's /run/netns); without it trace follows the pod's own next packet")
        .option("--uninstall", "the DaemonSet that removes gauze from every node instead")
        .action(async (o: import("./deploy.ts").ManifestsCliOptions) => {
          const { manifestsCli } = await import("./deploy.ts");
          status = manifestsCli(o);
        });
    }],
    ["image", () => {
      program.command("image")
        .description("build gauze's container image with podman from this executable (nothing pulled), and say what is in it")
        .option("--tag <ref>", "image tag (default: localhost/gauze:<version>)")
        .option("--podman-root <dir>", "podman storage root (default: podman's own)")
        .option("--json", "JSON report (every file with its size)")
        .action(async (o: import("./deploy.ts").ImageCliOptions) => {
          const { imageCli } = await import("./deploy.ts");
          status = imageCli(o);
        });
    }],
    ["mount-exec", () => {
      program.command("mount-exec", { hidden: true })
        .description("(internal) run a command with directories bound over others in a mount namespace of its own")
        .option("--bind <src:dst>", "bind src over dst (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
        .argument("<cmd...>", "the command, after --")
        .action(async (cmd: string[], o: { bind: string[] }) => {
          const { runWithBinds } = await import("../kernel/mountns.ts");
          const bad = o.bind.find((b) => !/^\/[^:]*:\/[^:]*$/.test(b));
          if (bad !== undefined) {
            process.stderr.write(`gauze mount-exec: --bind ${JSON.stringify(bad)}: give two absolute paths, SRC:DST\n`);
            status = 2;
            return;
          }
          const binds = o.bind.map((b) => ({ src: b.slice(0, b.indexOf(":")), dst: b.slice(b.indexOf(":") + 1) }));
          const r = runWithBinds(binds, cmd);
          process.stdout.write(r.stdout);
          process.stderr.write(r.stderr);
          status = r.status;
        });
    }],
    ["install-cni", () => {
      program.command("install-cni")
        .description("put this executable into the node's CNI bin dir as `gauze`, atomically (a DaemonSet's init container)")
        .option("--bin-dir <dir>", "the node's CNI bin dir (as mounted)", "/opt/cni/bin")
        .option("--json", "JSON report")
        .action(async (o: { binDir: string; json?: boolean }) => {
          const { installCniCli } = await import("./install.ts");
          status = installCniCli(o);
        });
    }],
    ["uninstall", () => {
      const c = program.command("uninstall")
        .description("remove gauze from this node: conflist, plugin, devices, pod veths, bridge, routes, rules, IPAM state, the node's lease")
        .option("--node <name>", "node name (default: $NODE_NAME, else the hostname)")
        .option("--iface <name>", "the node's underlay interface (default: the one the IPv4 default route uses)");
      withStoreOptions(c)
        .option("--root <dir>", "prefix for the node's paths (as the agent's --root)", "")
        .option("--bin-dir <dir>", "the node's CNI bin dir", "/opt/cni/bin")
        .option("--wait", "stay running after uninstalling (the pod of an uninstall DaemonSet), until SIGTERM")
        .option("--json", "JSON report")
        .action(async (o: import("./install.ts").UninstallCliOptions) => {
          const { uninstallCli } = await import("./install.ts");
          status = await uninstallCli(o);
        });
    }],
    ["doctor", () => {
      program.command("doctor")
        .description("find what breaks pod networking on a node, with the evidence and the fix")
        .option("--node <node>", "a lab node (runs inside its namespace)")
        .option("--name <lab>", "the lab of --node (default: the only lab, or $GAUZE_LAB)")
        .option("--host", "this host (the default without --node)")
        .option("--root <dir>", "prefix of the node's paths (as the agent's --root)", "")
        .option("--bin-dir <dir>", "the node's CNI bin dir (default: <root>/opt/cni/bin; in the agent's container the node's is /host/opt/cni/bin)")
        .addOption(new Option("--lab-node <node>", "the lab node this runs for (set by --node)").hideHelp())
        .option("--kubeconfig <path>", "check the cluster through its Kubernetes API: the DaemonSet, podCIDRs, NotReady nodes, and every node's doctor in its agent container (with --host or --node: that node's checks plus the cluster's pods)")
        .option("--context <name>", "the kubeconfig's context to use")
        .option("--gauze-namespace <ns>", "gauze's namespace on the cluster")
        .option("--daemonset <name>", "gauze's DaemonSet on the cluster")
        .option("--json", "JSON report")
        .option("--fix", "repair what is safe to repair, then check again")
        .action(async (o: import("./doctor.ts").DoctorCliOptions) => {
          const { doctorCli } = await import("./doctor.ts");
          status = await doctorCli(o);
        });
    }],
    ["observe", () => {
      const collect = (v: string, prev: string[] = []) => [...prev, v];
      const observe = program.command("observe");
      observe.command("status")
        .description("what each node's observer sees, like hubble status: flows, events seen and lost, packets, drops, features off")
        .option("--name <lab>", "the lab (default: the only lab, or $GAUZE_LAB)")
        .option("--node <node>", "only this node")
        .option("--host", "this host's own agent (a real node) instead of a lab")
        .option("--json", "JSON")
        .action(async (own: { name?: string; node?: string; host?: boolean; json?: boolean }) => {
          // observe's own options come before "status" too (commander hands them to the parent).
          const o = { ...(observe.opts() as { name?: string; node?: string; host?: boolean }), ...own };
          const { observeStatus, formatObserveStatus } = await import("../observe/status.ts");
          const { pickSource } = await import("./source.ts");
          try {
            const r = await observeStatus(await pickSource(o), o.node);
            console.log(o.json ? JSON.stringify(r, null, 2) : formatObserveStatus(r));
            status = r.totals.reachable === r.totals.nodes ? 0 : 1;
          } catch (e) {
            process.stderr.write(`gauze observe status: ${(e as Error).message}\n`);
            status = 2;
          }
        });
      withKubeOptions(observe)
        .description("pod traffic as flows from every node: who talks to whom, where each packet was seen, what the tunnel adds, and where packets were dropped with the kernel's reason")
        .option("--name <lab>", "the lab (default: the only lab, or $GAUZE_LAB)")
        .option("--node <node>", "only this node")
        .option("--host", "this host's own agent (a real node) instead of a lab")
        .option("--pod <pod>", "flows from or to this pod ([namespace/]name)")
        .option("--from-pod <pod>", "flows from this pod")
        .option("--to-pod <pod>", "flows to this pod")
        .option("--protocol <p>", "icmp, tcp or udp")
        .option("--verdict <v>", "forwarded, dropped or audit (an audit-mode NetworkPolicy would drop it)")
        .option("--ip <addr>", "flows from or to this address (repeat or comma-separate for any of several)", collect)
        .option("--port <n>", "flows from or to this port (repeat for any of several)", collect)
        .option("--namespace <ns>", "flows from or to a pod in this namespace (repeat for any of several)", collect)
        .option("--label <selector>", "flows from or to a pod with these labels: app=web,tier!=db,canary,!legacy (commas: all of them; repeat: any selector)", collect)
        .option("--since <when>", "flows from then on: a duration back from now (30s, 5m, 1h30m) or an RFC 3339 time")
        .option("--until <when>", "flows up to then: a duration back from now or an RFC 3339 time (not with --follow)")
        .option("--last <n>", "the last n flow events (merged across nodes)", "20")
        .option("-f, --follow", "then print live events until interrupted")
        .option("-o, --output <format>", "compact or json (JSON lines; field names in docs/observe.md)", "compact")
        .action(async (o: { name?: string; node?: string; host?: boolean; pod?: string; fromPod?: string; toPod?: string; protocol?: string; verdict?: string; last: string; follow?: boolean; output: string; ip?: string[]; port?: string[]; namespace?: string[]; label?: string[]; since?: string; until?: string }) => {
          const { runObserve } = await import("../observe/observe.ts");
          const { parseFilters } = await import("../observe/filters.ts");
          const { pickSource } = await import("./source.ts");
          try {
            const filters = parseFilters(o);
            status = await runObserve(await pickSource(o), { filters,
              ...(o.node ? { node: o.node } : {}), ...(o.pod ? { pod: o.pod } : {}),
              ...(o.fromPod ? { fromPod: o.fromPod } : {}), ...(o.toPod ? { toPod: o.toPod } : {}), ...(o.protocol ? { protocol: o.protocol as "icmp" } : {}),
              ...(o.verdict ? { verdict: o.verdict as "forwarded" } : {}), last: Number(o.last), follow: !!o.follow, output: o.output as "compact",
            }, (l: string) => process.stdout.write(l + "\n"), (l: string) => process.stderr.write(`gauze observe: ${l}\n`));
          } catch (e) {
            process.stderr.write(`gauze observe: ${(e as Error).message}\n`);
            status = 2;
          }
        });
    }],
    ["trace", () => {
      program.command("trace")
        .description("send one probe from a pod and show every hop it crossed on every node, with its size there, and where it stopped with the kernel's reason and the doctor check that explains it")
        .argument("<pod>", "the pod the probe leaves from")
        .argument("<to>", "a pod, or an IP address")
        .option("--name <lab>", "the lab (default: the only lab, or $GAUZE_LAB)")
        .option("--protocol <p>", "icmp, tcp or udp", "icmp")
        .option("--port <n>", "with tcp or udp: the destination port")
        .option("--size <bytes>", "ICMP payload (56: an 84-byte IPv4 packet)", "56")
        .option("--wait <seconds>", "with --kubeconfig (passive: the pod's own next ping or connection is followed): how long to wait for it", "10")
        .option("--json", "JSON report")
        .option("--kubeconfig <path>", "a cluster through its Kubernetes API").option("--context <name>", "the kubeconfig's context")
        .option("--gauze-namespace <ns>", "gauze's namespace on the cluster").option("--daemonset <name>", "gauze's DaemonSet on the cluster")
        .action(async (from: string, to: string, o: { name?: string; protocol: string; port?: string; size: string; wait: string; json?: boolean } & import("./source.ts").KubeFlags) => {
          const { runTrace, formatTrace, traceJson } = await import("../observe/trace.ts");
          const { pickSource } = await import("./source.ts");
          try {
            const waitSeconds = Number(o.wait);
            if (!(waitSeconds >= 1 && waitSeconds <= 300)) throw new Error(`--wait ${o.wait}: give 1 to 300 seconds`);
            const source = await pickSource(o, { interfaces: true });
            // A passive trace says what it waits for even with --json (stderr): the user must start the traffic.
            const progress = o.json && !source.probeUnavailable ? undefined : (line: string) => process.stderr.write(`gauze trace: ${line}\n`);
            const r = await runTrace(source, { from, to, protocol: o.protocol as "icmp", ...(o.port ? { port: Number(o.port) } : {}), size: Number(o.size), waitSeconds, ...(progress ? { progress } : {}) });
            console.log(o.json ? JSON.stringify(traceJson(r), null, 2) : formatTrace(r));
            status = r.replied ? 0 : 1;
          } catch (e) {
            process.stderr.write(`gauze trace: ${(e as Error).message}\n`);
            status = 2;
          }
        });
    }],
    ["agent-api", () => {
      program.command("agent-api", { hidden: true }).description("(internal) one GET to this node's agent API, the body on stdout (what observe --kubeconfig runs in the agent's container through pods/exec)")
        .argument("<method>").argument("<path>")
        .option("--socket <path>", "the agent's API socket (default /run/gauze/agent.sock)")
        .option("--net-conf <path>", "the agent's net-conf.json (default /etc/gauze/net-conf.json)")
        .option("--until-stdin-ends", "stop a live stream when stdin closes")
        .action(async (method: string, path: string, o: import("./agent-api.ts").AgentApiOptions) => {
          const { agentApi } = await import("./agent-api.ts");
          status = await agentApi(method, path, o);
        });
      program.command("agent-api-in-pod", { hidden: true }).description("(internal) run a trace probe inside the network namespace of this node's pod with --ip (trace --kubeconfig, with the manifest's --trace-probes)")
        .requiredOption("--ip <addr>").argument("<argv...>")
        .action(async (argv: string[], o: { ip: string }) => {
          const { inPod } = await import("./agent-api.ts");
          status = inPod(o.ip, argv);
        });
    }],
    ["probe", () => {
      program.command("probe", { hidden: true }).description("(internal) one TCP connect or UDP datagram from a chosen source port, or one ICMP echo, for trace")
        .option("--tcp").option("--udp").option("--icmp").requiredOption("--to <ip>").option("--port <n>").option("--source-port <n>").option("--size <bytes>", "", "56").option("--timeout <ms>", "", "2000")
        .action(async (o: { tcp?: boolean; udp?: boolean; icmp?: boolean; to: string; port?: string; sourcePort?: string; size: string; timeout: string }) => {
          const { probe, probeIcmp } = await import("../observe/probe.ts");
          if (o.icmp) { status = await probeIcmp({ to: o.to, size: Number(o.size), timeoutMs: Number(o.timeout) }); return; }
          status = await probe({ protocol: o.udp ? "udp" : "tcp", to: o.to, port: Number(o.port), sourcePort: Number(o.sourcePort), timeoutMs: Number(o.timeout) });
        });
    }],
    ["ui", () => {
      program.command("ui")
        .description("the web view: nodes, pods and tunnels, live flows on the edges with the overlay's bytes, dropped flows with the kernel's reason, packets layer by layer, doctor per node")
        .option("--name <lab>", "the lab (default: the only lab, or $GAUZE_LAB)")
        .option("--port <n>", "port to listen on", "12000")
        .option("--host <addr>", "address to listen on", "127.0.0.1")
        .option("--bench <file.svg>", "also show this gauze lab bench chart (lab bench --plot)")
        .option("--kubeconfig <path>", "a cluster through its Kubernetes API").option("--context <name>", "the kubeconfig's context")
        .option("--gauze-namespace <ns>", "gauze's namespace on the cluster").option("--daemonset <name>", "gauze's DaemonSet on the cluster")
        .action(async (o: { name?: string; port: string; host: string; bench?: string } & import("./source.ts").KubeFlags) => {
          const { serveUi } = await import("../ui/server.ts");
          const { pickSource } = await import("./source.ts");
          try {
            const ui = await serveUi(await pickSource({ ...(o.name ? { name: o.name } : {}), ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), ...(o.context ? { context: o.context } : {}), ...(o.gauzeNamespace ? { gauzeNamespace: o.gauzeNamespace } : {}), ...(o.daemonset ? { daemonset: o.daemonset } : {}) }), { port: Number(o.port), host: o.host, ...(o.bench ? { benchSvg: o.bench } : {}) }, (l: string) => console.log(l));
            await new Promise<void>((resolve) => {
              const stop = () => { ui.close(); resolve(); };
              process.once("SIGINT", stop);
              process.once("SIGTERM", stop);
            });
          } catch (e) {
            process.stderr.write(`gauze ui: ${(e as Error).message}\n`);
            status = 2;
          }
        });
    }],
    ["store", () => {
      const store = program.command("store", { hidden: true }).description("(internal) subnet registry helpers the lab runs");
      withStoreOptions(store.command("init")).requiredOption("--network <cidr>", "pod network").option("--backend <type>", "vxlan or host-gw", "vxlan").option("--direct-routing", "vxlan's DirectRouting").option("--ipv6-network <cidr>", "dual-stack: EnableIPv6 with this IPv6Network").option("--wait <seconds>", "keep trying this long", "15")
        .action(async (o: import("../store/flags.ts").StoreFlags & { network: string; backend: string; directRouting?: boolean; wait: string }) => {
          const { storeInit } = await import("./store.ts");
          status = await storeInit(o);
        });
      withStoreOptions(store.command("release")).requiredOption("--node <name>", "node whose lease goes")
        .action(async (o: import("../store/flags.ts").StoreFlags & { node: string }) => {
          const { storeRelease } = await import("./store.ts");
          status = await storeRelease(o);
        });
      withStoreOptions(store.command("leases")).action(async (o: import("../store/flags.ts").StoreFlags) => {
        const { storeLeases } = await import("./store.ts");
        status = await storeLeases(o);
      });
    }],
    ["policy", async () => {
      const { registerPolicy } = await import("./policy.ts");
      registerPolicy(program, (code) => { status = code; });
    }],
    ["lab", async () => {
      const { registerLab } = await import("./lab.ts");
      registerLab(program, (code) => { status = code; });
    }],
  ];
  const first = argv[0];
  const asked = commands.find(([name]) => name === first);
  for (const [, register] of asked ? [asked] : commands) await register();

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return typeof code === "number" ? code : 1;
  }
  return status;
}
