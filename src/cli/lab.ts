// `gauze lab ...`: the CLI side of src/lab.
import type { Command } from "commander";
import { runInteractive } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import { ETCD_FLAGS, type EtcdAuthFlags } from "../store/flags.ts";
import { LAB_BACKENDS, type LabBackend, findNode, listLabs, loadLab, pickLab, type LabState } from "../lab/state.ts";
import { labDown, labUp } from "../lab/lab.ts";
import { nodeAdd, nodeRm } from "../lab/nodes.ts";
import { podRm, podRun, refresh, waitServing } from "../lab/pods.ts";
import { agentStop, agentStart } from "../lab/agents.ts";
import { nodeView } from "../lab/view.ts";
import { registerLabKube } from "./lab-kube.ts";
import { registerLabLogs } from "./lab-logs.ts";
import { FAULTS } from "../lab/faults.ts";
import { LAB_HELP, type SetStatus, guard, say } from "./lab-common.ts";



/** The etcd client flags `lab up --etcd-endpoints` passes on to its agents. */
const ETCD_AUTH = ETCD_FLAGS.filter((d): d is (typeof ETCD_FLAGS)[number] & { key: keyof EtcdAuthFlags } => d.key !== "etcdEndpoints" && d.key !== "etcdPrefix");



export function statusReport(s: LabState) {
  return {
    name: s.name, podCidr: s.podCidr, ...(s.podCidr6 ? { podCidr6: s.podCidr6 } : {}), backend: s.backend, store: s.store?.kind ?? "file", cniInstalled: s.cniInstalled,
    ...(s.manifest ? { manifest: { file: s.manifest.file, daemonSet: `${s.manifest.namespace}/${s.manifest.daemonSet}`, image: s.manifest.image } } : {}),
    nodes: s.nodes.map((n) => nodeView(s, n)),
    pods: s.pods.map((p) => ({ name: p.name, node: p.node, image: p.image, phase: p.phase, ip: p.ip ?? null, ...(p.ip6 ? { ip6: p.ip6 } : {}), ...(p.reason ? { reason: p.reason } : {}) })),
  };
}

function printStatus(s: LabState): void {
  const r = statusReport(s);
  const out: string[] = [`lab ${r.name}: pod network ${r.podCidr}${r.podCidr6 ? ` and ${r.podCidr6}` : ""}, backend ${r.backend}, registry ${r.store}${r.cniInstalled ? "" : ", no CNI installed"}`];
  if (r.manifest) out.push(`gauze from ${r.manifest.file}: DaemonSet ${r.manifest.daemonSet}, image ${r.manifest.image}`);
  out.push("");
  out.push("NODE".padEnd(28) + "STATUS    " + "NODE IP".padEnd(14) + "SUBNET".padEnd(17) + "VTEP MAC");
  for (const n of r.nodes) {
    out.push(n.name.padEnd(28) + (n.ready ? "Ready" : "NotReady").padEnd(10) + n.ip.padEnd(14) + (n.subnet ?? "-").padEnd(17) + (n.vtepMac ?? "-"));
    if (n.subnet6) out.push(`  IPv6: node ${n.ip6}, subnet ${n.subnet6}`);
    if (n.reason) out.push(`  ${n.reason}`);
    if (n.agent && !n.agent.ready) out.push(`  agent: ${n.agent.running ? "running" : "not running"}${n.agent.reason ? `: ${n.agent.reason}` : ""}`);
    if (n.pod) out.push(`  pod ${n.pod.name} (${n.pod.image}): ${n.pod.running ? (n.pod.ready ? "Running, ready" : `Running, not ready: ${n.pod.reason}`) : "not running"}`);
  }
  out.push("", "POD".padEnd(20) + "NODE".padEnd(28) + "IMAGE".padEnd(10) + "STATUS".padEnd(19) + "IP");
  for (const p of r.pods) {
    out.push(p.name.padEnd(20) + p.node.padEnd(28) + p.image.padEnd(10) + p.phase.padEnd(19) + (p.ip ?? "-") + (p.ip6 ? ` ${p.ip6}` : ""));
    if (p.reason) out.push(`  ${p.reason}`);
  }
  if (r.pods.length === 0) out.push("(no pods)");
  console.log(out.join("\n"));
}

export function registerLab(program: Command, set: SetStatus): void {
  const lab = program.command("lab").description("a Kubernetes-like cluster made of network namespaces on this host");
  registerLabKube(lab, set);
  registerLabLogs(lab, set);

  const up = lab.command("up")
    .description("create a lab cluster (nodes <name>-control-plane, <name>-worker, ...) and install gauze on it")
    .option("--name <name>", "lab name", "demo")
    .option("--nodes <n>", "number of nodes", "2")
    .option("--pod-cidr <cidr>", "pod network", "10.244.0.0/16")
    .option("--backend <type>", "vxlan, host-gw, vxlan-direct (vxlan with DirectRouting), macvlan (pods on the underlay; pod network 172.18.128.0/17) or wireguard (encrypted; userspace wireguard-go where the kernel has no module)", "vxlan")
    .option("--underlay-subnets <n>", "1, or 2: nodes alternate between two routed underlay subnets (DirectRouting tunnels only to the other one)", "1")
    .option("--ipv6", "dual-stack: an IPv6 pod network (fd47:10:244::/56) next to the IPv4 one, over IPv6 on the underlay (vxlan, vxlan-direct, host-gw)")
    .option("--no-cni", "leave the nodes without a CNI (NotReady), as a fresh kubeadm cluster is")
    .option("--no-observe", "agents without flow recording (gauze observe, trace and ui then have nothing to show; for comparisons)")
    .option("--policy-recheck", "agents judge established connections again after a NetworkPolicy change (gauze agent --policy-established recheck)")
    .option("--observer <mode>", "what the agents observe with: auto (eBPF where the kernel allows it), ebpf, or ring (the packet ring and tracefs)")
    .option("--datapath <kind>", "how pod packets move: classic (the bridge and the node's routing) or ebpf (redirected by tc programs past both)")
    .option("--store <kind>", "subnet registry: file (embedded) or etcd (a real etcd server the lab starts)", "file")
    .option("--etcd-endpoints <urls>", "use this etcd instead of starting one (reachable from the nodes)")
    .option("--manifest <file>", "install gauze by running this manifest's DaemonSet on every node with podman, as a kubelet would (e.g. deploy/kube-gauze.yml); the lab serves the Kubernetes API")
    .option("--json", "print the lab's status as JSON");
  for (const d of ETCD_AUTH) up.option(d.flag, `with --etcd-endpoints: ${d.help}`);
  up.action((o: { name: string; nodes: string; podCidr: string; backend: string; underlaySubnets: string; ipv6?: boolean; observe?: boolean; policyRecheck?: boolean; observer?: string; datapath?: string; cni: boolean; store: string; manifest?: string; etcdEndpoints?: string; json?: boolean } & EtcdAuthFlags) => guard(set, async () => {
      if (!(LAB_BACKENDS as readonly string[]).includes(o.backend)) throw new Error(`--backend ${o.backend}: use ${LAB_BACKENDS.join(", ")}`);
      if (o.underlaySubnets !== "1" && o.underlaySubnets !== "2") throw new Error(`--underlay-subnets ${o.underlaySubnets}: use 1 or 2`);
      if (o.store !== "file" && o.store !== "etcd") throw new Error(`--store ${o.store}: use file or etcd`);
      if (o.observer !== undefined && !["auto", "ebpf", "ring"].includes(o.observer)) throw new Error(`--observer ${o.observer}: use auto, ebpf or ring`);
      if (o.datapath !== undefined && o.datapath !== "classic" && o.datapath !== "ebpf") throw new Error(`--datapath ${o.datapath}: use classic or ebpf`);
      const s = await labUp({ ...(o.observer ? { observer: o.observer as "auto" } : {}), ...(o.datapath ? { datapath: o.datapath as "ebpf" } : {}), name: o.name, nodes: Number(o.nodes), podCidr: o.podCidr, backend: o.backend as LabBackend, underlaySubnets: o.underlaySubnets === "2" ? 2 : 1, ...(o.ipv6 ? { ipv6: true } : {}), ...(o.observe === false ? { noObserve: true } : {}), ...(o.policyRecheck ? { policyRecheck: true } : {}), cni: o.cni, store: o.store, ...(o.etcdEndpoints ? { etcdEndpoints: o.etcdEndpoints } : {}),
        etcdAuth: Object.fromEntries(ETCD_AUTH.map((d) => [d.key, o[d.key]]).filter(([, v]) => v)) as EtcdAuthFlags,
        ...(o.manifest ? { manifest: o.manifest } : {}), progress: say(!!o.json) });
      if (o.json) console.log(JSON.stringify(statusReport(s), null, 2));
      else printStatus(s);
    }));

  lab.command("bench")
    .description("the overlay tax per backend: pod-to-pod TCP throughput, CPU per Gbit/s, RTT, and the bytes each path adds on the wire, measured on fresh labs in one run")
    .option("--backends <list>", "none (the underlay itself), host-gw, vxlan, vxlan-direct (DirectRouting, one subnet), macvlan, wireguard, flannel-style (the anchor: flannel's VXLAN made by hand); none-v6 and vxlan-v6: the same over IPv6 (dual-stack lab), what IPv6 adds; host-gw-ebpf, vxlan-ebpf: with --datapath ebpf; same-node, same-node-ebpf: two pods on one node; none-aa: the underlay again, an A/A twin (the run's noise band)", "none,host-gw,vxlan,vxlan-direct,macvlan,wireguard,flannel-style,none-v6,vxlan-v6")
    .option("--streams <list>", "iperf3 parallel streams", "1,4")
    .option("--seconds <n>", "length of each iperf3 run", "3")
    .option("--rounds <n>", "rounds, interleaved across backends (medians reported)", "3")
    .option("--plot <file.svg>", "also draw the results as an SVG chart")
    .option("--name <prefix>", "what the run's labs are named: <prefix>-vx, <prefix>-hg, ... (two runs on one host need two prefixes)", "gzb")
    .option("--json", "JSON report")
    .action((o: { backends: string; streams: string; seconds: string; rounds: string; plot?: string; name: string; json?: boolean }) => guard(set, async () => {
      if (!/^[a-z0-9][a-z0-9-]{0,16}$/.test(o.name)) throw new Error(`--name ${JSON.stringify(o.name)}: 1-17 lowercase letters, digits and '-' (the labs add -vx, -hg, ...)`);
      const { BENCH_BACKENDS, runBench, formatBench } = await import("../lab/bench/bench.ts");
      const backends = o.backends.split(",").map((b) => b.trim()).filter(Boolean);
      const unknown = backends.filter((b) => !(BENCH_BACKENDS as readonly string[]).includes(b));
      if (unknown.length) throw new Error(`--backends: ${unknown.join(", ")} unknown; use ${BENCH_BACKENDS.join(", ")}`);
      const streams = o.streams.split(",").map(Number);
      if (streams.some((n) => !Number.isInteger(n) || n < 1 || n > 64)) throw new Error(`--streams ${o.streams}: give numbers from 1 to 64, e.g. 1,4`);
      const seconds = Number(o.seconds);
      const rounds = Number(o.rounds);
      if (!(seconds >= 1 && seconds <= 60) || !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 20)) throw new Error("--seconds 1..60 and --rounds 1..20");
      const r = await runBench({ backends: backends as import("../lab/bench/bench.ts").BenchBackend[], streams, seconds, rounds, prefix: o.name, progress: say(!!o.json) });
      if (o.plot) {
        const { renderBenchSvg } = await import("../lab/bench/chart.ts");
        const { writeFileSync } = await import("node:fs");
        writeFileSync(o.plot, renderBenchSvg(r));
      }
      console.log(o.json ? JSON.stringify(r, null, 2) : formatBench(r) + (o.plot ? `\n\nchart: ${o.plot}` : ""));
      return r.results.every((x) => x.ok) ? 0 : 1;
    }));

  lab.command("backend")
    .description("switch the lab's backend: the network config changes, then each node's agent restarts and moves over (old devices and routes removed)")
    .argument("<type>", LAB_BACKENDS.join(", "))
    .option("--name <lab>", LAB_HELP)
    .action((type: string, o: { name?: string }) => guard(set, async () => {
      const { labSetBackend } = await import("../lab/install.ts");
      if (!(LAB_BACKENDS as readonly string[]).includes(type)) throw new Error(`backend ${type}: use ${LAB_BACKENDS.join(", ")}`);
      await labSetBackend(pickLab(o.name), type as LabBackend, say(false));
    }));

  lab.command("datapath")
    .description("switch the lab's datapath on running nodes: each node's agent restarts on it (ebpf attaches to the pods already there; classic removes every eBPF program, map and pin)")
    .argument("<kind>", "classic or ebpf")
    .option("--name <lab>", LAB_HELP)
    .action((kind: string, o: { name?: string }) => guard(set, async () => {
      if (kind !== "classic" && kind !== "ebpf") throw new Error(`datapath ${kind}: use classic (the bridge and the node's routing) or ebpf (pod packets redirected by tc programs)`);
      const { labSetDatapath } = await import("../lab/install.ts");
      await labSetDatapath(pickLab(o.name), kind, say(false));
    }));

  lab.command("rollout")
    .description("manifest mode: change the DaemonSet's image and replace its pods one node at a time, each waited for until ready (kubectl set image)")
    .requiredOption("--image <ref>", "the new image (localhost/gauze:<tag> is built from this executable when podman does not have it)")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((o: { image: string; name?: string; json?: boolean }) => guard(set, async () => {
      const { labRollout } = await import("../lab/install.ts");
      const r = await labRollout(pickLab(o.name), o.image, say(!!o.json));
      if (o.json) console.log(JSON.stringify({ image: o.image, nodes: r }));
    }));
  lab.command("apiserver", { hidden: true }).option("--name <lab>", LAB_HELP)
    .action((o: { name?: string }) => guard(set, async () => { const { runApiServer } = await import("../lab/kube/cluster.ts"); await runApiServer(pickLab(o.name)); }));

  lab.command("down")
    .description("remove a lab: namespaces, links, processes, rules and files; --all removes every lab")
    .option("--name <name>", LAB_HELP)
    .option("--all", "every lab on this host")
    .option("--json", "JSON: the labs removed")
    .action((o: { name?: string; all?: boolean; json?: boolean }) => guard(set, async () => {
      const names = o.all ? listLabs() : [pickLab(o.name)];
      if (!o.all) loadLab(names[0]!); // a clear error for a lab that does not exist
      for (const n of names) await labDown(n, say(!!o.json));
      if (o.json) console.log(JSON.stringify({ removed: names }));
      else if (o.all && names.length === 0) process.stderr.write("no labs\n");
    }));

  lab.command("list")
    .description("the labs on this host")
    .option("--json", "JSON")
    .action((o: { json?: boolean }) => guard(set, async () => {
      const names = listLabs();
      if (o.json) console.log(JSON.stringify(names.map((n) => { const s = loadLab(n); return { name: n, nodes: s.nodes.length, pods: s.pods.length, backend: s.backend }; })));
      else console.log(names.length ? names.join("\n") : "no labs (gauze lab up creates one)");
    }));

  lab.command("status")
    .description("nodes (Ready/NotReady with the reason, IP, subnet, VTEP MAC) and pods (node, IP, phase)")
    .option("--name <name>", LAB_HELP)
    .option("--json", "JSON")
    .action((o: { name?: string; json?: boolean }) => guard(set, async () => {
      const s = await refresh(pickLab(o.name));
      if (o.json) console.log(JSON.stringify(statusReport(s), null, 2));
      else printStatus(s);
    }));

  const pod = lab.command("pod").description("pods");
  pod.command("run")
    .description("run a pod on a node: the node's runtime stand-in calls the CNI (ADD), as kubelet and containerd do")
    .argument("<pod>", "[namespace/]name")
    .requiredOption("--node <node>", "node to run on (full name, or e.g. worker)")
    .option("--image <image>", "nginx (HTTP on :80), agnhost (serves every --ports entry on TCP and UDP, SCTP through a raw socket, as the upstream NetworkPolicy suite's pods) or netshoot (a pod to exec into)", "netshoot")
    .option("--namespace <ns>", "the pod's Kubernetes namespace (made when missing)")
    .option("--labels <k=v,...>", "the pod's labels (NetworkPolicy selects by them; gauze lab label changes them live)")
    .option("--ports <list>", "the container's ports, name:port/PROTOCOL,... (agnhost default: serve-80-tcp:80/TCP,serve-80-udp:80/UDP,serve-81-tcp:81/TCP,serve-81-udp:81/UDP)")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((ref: string, o: { node: string; image: string; namespace?: string; labels?: string; ports?: string; name?: string; json?: boolean }) => guard(set, async () => {
      const { LAB_IMAGES, splitPodRef } = await import("../lab/state.ts");
      const { parseLabels, parsePorts } = await import("../lab/pods.ts");
      if (!(LAB_IMAGES as readonly string[]).includes(o.image)) throw new Error(`--image ${o.image}: use ${LAB_IMAGES.join(", ")}`);
      const split = ref.includes("/") ? splitPodRef(ref) : { namespace: o.namespace ?? "default", name: ref };
      if (o.namespace && ref.includes("/") && split.namespace !== o.namespace) throw new Error(`${ref} and --namespace ${o.namespace} disagree: give one`);
      const p = await podRun(pickLab(o.name), split.name, o.node, o.image as "nginx", {
        namespace: split.namespace, ...(o.labels ? { labels: parseLabels(o.labels) } : {}), ...(o.ports ? { ports: parsePorts(o.ports) } : {}),
      });
      if (p.phase === "Running" && p.image !== "netshoot") await waitServing(p);
      const who = split.namespace === "default" ? p.name : `${split.namespace}/${p.name}`;
      if (o.json) console.log(JSON.stringify({ name: p.name, namespace: split.namespace, node: p.node, phase: p.phase, ip: p.ip ?? null, ...(p.ip6 ? { ip6: p.ip6 } : {}), ...(p.labels ? { labels: p.labels } : {}), ...(p.reason ? { reason: p.reason } : {}) }));
      else console.log(`${who} on ${p.node}: ${p.phase}${p.ip ? ` ${p.ip}` : ""}${p.ip6 ? ` ${p.ip6}` : ""}${p.reason ? `\n  ${p.reason}` : ""}`);
      return p.phase === "Running" ? 0 : 1;
    }));
  pod.command("rm")
    .description("delete a pod: the runtime's CNI DEL, its address released")
    .argument("<pod>", "[namespace/]name")
    .option("--name <lab>", LAB_HELP)
    .action((name: string, o: { name?: string }) => guard(set, async () => {
      const l = pickLab(o.name);
      await podRm(l, name);
      console.log(`pod ${name} deleted from lab ${l}`);
    }));

  const node = lab.command("node").description("nodes joining and leaving");
  // `node add <node>` as `node rm <node>`; --node stays for the scripts that used it.
  node.command("add")
    .description("join a new node: its namespace on the underlay, its agent, Ready once it leased a subnet")
    .argument("[node]", "node name (default: <lab>-worker<N>)")
    .option("--node <name>", "the same as the argument (older spelling)")
    .option("--name <lab>", LAB_HELP).option("--json", "JSON")
    .action((arg: string | undefined, o: { name?: string; node?: string; json?: boolean }) => guard(set, async () => {
      if (arg && o.node && arg !== o.node) throw new Error(`node ${arg} and --node ${o.node} disagree: give one`);
      const n = await nodeAdd(pickLab(o.name), say(!!o.json), arg ?? o.node);
      if (o.json) console.log(JSON.stringify({ name: n.name, ip: n.ip })); // (its progress already said "node ... joined")
    }));
  node.command("rm")
    .description("remove a node: its pods, its agent (its lease released), its namespace")
    .argument("<node>").option("--name <lab>", LAB_HELP)
    .action((n: string, o: { name?: string }) => guard(set, async () => {
      const l = pickLab(o.name);
      const s = loadLab(l);
      const full = findNode(s, n).name;
      const pods = s.pods.filter((p) => p.node === full).map((p) => p.name);
      await nodeRm(l, n);
      console.log(`node ${full} removed from lab ${l}${pods.length ? `, and its ${pods.length === 1 ? "pod" : "pods"} with it: ${pods.join(", ")}` : " (it ran no pods)"}`);
    }));
  node.command("stop-agent").argument("<node>").option("--name <lab>", LAB_HELP).option("--kill", "SIGKILL instead of SIGTERM")
    .description("stop the node's agent (its lease and dataplane stay)")
    .action((n: string, o: { name?: string; kill?: boolean }) => guard(set, async () => {
      await agentStop(pickLab(o.name), n, o.kill ? "SIGKILL" : "SIGTERM");
      console.log(`agent on ${findNode(loadLab(pickLab(o.name)), n).name} stopped${o.kill ? " (SIGKILL)" : ""}; its dataplane stays`);
    }));
  const etcd = lab.command("etcd").description("the lab's own etcd (lab up --store etcd)");
  etcd.command("stop").description("stop the lab's etcd (an outage: agents keep the dataplane, report not ready)").option("--name <lab>", LAB_HELP)
    .action((o: { name?: string }) => guard(set, async () => { const { etcdStop } = await import("../lab/registry.ts"); const l = pickLab(o.name); await etcdStop(l); console.log(`etcd of lab ${l} stopped: gauze lab etcd start --name ${l} brings it back`); }));
  etcd.command("start").description("start the lab's etcd again (agents reconcile and report ready)").option("--name <lab>", LAB_HELP)
    .action((o: { name?: string }) => guard(set, async () => { const { etcdStart } = await import("../lab/registry.ts"); const l = pickLab(o.name); await etcdStart(l); console.log(`etcd of lab ${l} started`); }));
  node.command("start-agent").description("start the node's agent again (it adopts its lease and dataplane)").argument("<node>").option("--name <lab>", LAB_HELP)
    .option("--observe <on|off>", "off: this node's agent runs without observing from now on (an earlier agent's eBPF programs are removed); on: as the lab says")
    .action((n: string, o: { name?: string; observe?: string }) => guard(set, async () => {
      if (o.observe !== undefined && o.observe !== "on" && o.observe !== "off") throw new Error(`--observe ${o.observe}: use on or off`);
      await agentStart(pickLab(o.name), n, o.observe as "on" | "off" | undefined);
      console.log(`agent on ${findNode(loadLab(pickLab(o.name)), n).name} started`);
    }));

  lab.command("install")
    .description("install gauze on a lab made with --no-cni (kubectl apply of the DaemonSet)")
    .option("--name <lab>", LAB_HELP)
    .action((o: { name?: string }) => guard(set, async () => { const { labInstall } = await import("../lab/install.ts"); await labInstall(pickLab(o.name), say(false)); }));
  lab.command("uninstall")
    .description("run gauze uninstall on every node (or --node): the nodes are left as before the install")
    .option("--name <lab>", LAB_HELP)
    .option("--node <node>", "only this node")
    .action((o: { name?: string; node?: string }) => guard(set, async () => { const { labUninstall } = await import("../lab/install.ts"); await labUninstall(pickLab(o.name), say(false), o.node); }));

  lab.command("exec")
    .description("run a command in a pod's or node's network namespace")
    .argument("<target>", "pod or node name")
    .argument("<cmd...>", "command (after --)")
    .option("--name <lab>", LAB_HELP)
    .action((target: string, cmd: string[], o: { name?: string }) => guard(set, async () => {
      const s = loadLab(pickLab(o.name));
      const ns = s.pods.find((p) => p.name === target || `${p.namespace ?? "default"}/${p.name}` === target)?.netns
        ?? s.nodes.find((n) => n.name === target || n.name === `${s.name}-${target}`)?.netns;
      if (!ns) throw new Error(`no pod or node named ${target} in lab ${s.name} (pods: ${s.pods.map((p) => p.name).join(", ") || "none"}; nodes: ${s.nodes.map((n) => n.name).join(", ")})`);
      return runInteractive(cmd, { netns: netnsPath(ns) });
    }));

  lab.command("capture")
    .description("tcpdump on a node's interface (eth0 unless --iface), decoded by gauze (see gauze capture)")
    .argument("<node>")
    .option("--name <lab>", LAB_HELP)
    .option("--iface <name>", "the node's interface: eth0 (the underlay), cni0 (the pod bridge), gauze.1 (VXLAN, inner packets), a pod's veth", "eth0")
    .option("--filter <bpf>", "tcpdump's capture filter, e.g. \"udp port 8472\", \"host 10.244.1.2 and tcp port 80\" (Wireshark's tcp.port == 80, ip.addr == A read too)")
    .option("--count <n>", "stop after n packets")
    .option("--duration <seconds>", "stop after this long")
    .option("-w, --write <file>", "also write the pcap")
    .option("--json", "JSON lines").option("--summary", "one row per flow (tunnelled or not) at the end instead of each packet")
    .action((n: string, o: { name?: string; iface: string; filter?: string; count?: string; duration?: string; write?: string; json?: boolean; summary?: boolean }) => guard(set, async () => {
      const s = loadLab(pickLab(o.name));
      const { runCapture } = await import("./dissect.ts");
      return runCapture({ iface: o.iface, netns: findNode(s, n).netns, ...(o.filter ? { filter: o.filter } : {}), ...(o.count ? { count: o.count } : {}), ...(o.duration ? { duration: o.duration } : {}), ...(o.write ? { write: o.write } : {}), ...(o.json ? { json: true } : {}), ...(o.summary ? { summary: true } : {}) });
    }));

  lab.command("break")
    .description("inject a known failure into a lab node (the faults are listed below; gauze doctor finds each, gauze lab fix undoes it)")
    .argument("<fault>", "no-br-netfilter, no-cni-config, missing-plugin, ip-forward-off, mtu-mismatch, stale-fdb, agent-down, forward-drop, vxlan-port-blocked")
    .addHelpText("after", () => `\nFaults:\n${Object.entries(FAULTS).map(([f, what]) => `  ${f.padEnd(20)} ${what}`).join("\n")}\n`)
    .option("--node <node>", "node to break", "control-plane")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((fault: string, o: { node: string; name?: string; json?: boolean }) => guard(set, async () => {
      const { breakNode, FAULTS } = await import("../lab/faults.ts");
      const name = pickLab(o.name);
      const r = await breakNode(name, fault, o.node);
      if (o.json) console.log(JSON.stringify({ fault: r.fault, node: r.node, what: FAULTS[r.fault] }));
      else console.log(`broke ${r.node}: ${FAULTS[r.fault]} (gauze doctor --node ${r.node} --name ${name}; gauze lab fix --node ${r.node} --name ${name})`);
    }));
  lab.command("fix")
    .description("undo the faults gauze lab break injected (on one node with --node)")
    .option("--node <node>", "only this node's faults (default: every node's)")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((o: { node?: string; name?: string; json?: boolean }) => guard(set, async () => {
      const { fixAll } = await import("../lab/faults.ts");
      const done = await fixAll(pickLab(o.name), o.node);
      if (o.json) console.log(JSON.stringify({ undone: done.map((r) => ({ fault: r.fault, node: r.node })) }));
      else console.log(done.length ? done.map((r) => `undid ${r.fault} on ${r.node}`).join("\n") : "nothing to undo");
    }));

  lab.command("demo")
    .description("the journey from NotReady nodes to a decoded VXLAN packet, narrated and verified")
    .option("--name <name>", "lab name", "demo")
    .option("--backend <type>", "vxlan or host-gw", "vxlan")
    .option("--keep", "leave the lab running afterwards")
    .option("--manifest <file>", "install gauze from this manifest (deploy/kube-gauze.yml), its pods run with podman as a kubelet would")
    .option("--json", "print the report as JSON")
    .action((o: { name: string; backend: string; keep?: boolean; json?: boolean; manifest?: string }) => guard(set, async () => {
      const { runDemo } = await import("../lab/demo.ts");
      return runDemo({ name: o.name, backend: o.backend === "host-gw" ? "host-gw" : "vxlan", keep: !!o.keep, json: !!o.json, ...(o.manifest ? { manifest: o.manifest } : {}) });
    }));

  // Helpers the lab runs inside pod namespaces (the lab's "images").
  lab.command("serve-http", { hidden: true }).option("--port <n>", "port", "80").option("--pod <name>", "pod name", "pod")
    .action(async (o: { port: string; pod: string }) => {
      const { serveHttp } = await import("../lab/http.ts");
      await serveHttp(Number(o.port), o.pod);
    });
  lab.command("udp-flood", { hidden: true }).description("(a pod's image) datagrams to random ports, bounded").requiredOption("--to <ip>").option("--rate <n>", "datagrams a second", "10000")
    .option("--seconds <n>", "how long", "10").option("--port <n>", "one port instead of random ones")
    .action((o: { to: string; rate: string; seconds: string; port?: string }) => guard(set, async () => {
      const { udpFlood } = await import("../lab/traffic.ts");
      const rate = Number(o.rate), seconds = Number(o.seconds);
      if (!(rate > 0 && rate <= 200_000 && seconds > 0 && seconds <= 600)) throw new Error("--rate 1..200000 and --seconds 1..600");
      console.log(JSON.stringify(await udpFlood({ to: o.to, rate, seconds, ...(o.port ? { port: Number(o.port) } : {}) })));
    }));
  lab.command("http-probe", { hidden: true }).description("(a node's image) time GETs of a URL").argument("<url>").option("--every <ms>", "interval", "20").option("--seconds <n>", "how long", "10")
    .action((url: string, o: { every: string; seconds: string }) => guard(set, async () => {
      const { httpProbe } = await import("../lab/traffic.ts");
      console.log(JSON.stringify(await httpProbe(url, Number(o.every), Number(o.seconds))));
    }));
  lab.command("http-get", { hidden: true }).argument("<url>").option("--timeout <ms>", "timeout", "2000")
    .action((url: string, o: { timeout: string }) => guard(set, async () => {
      const { httpGet } = await import("../lab/http.ts");
      const r = await httpGet(url, Number(o.timeout));
      process.stdout.write(`${r.status} ${r.body}`);
      return r.status === 200 ? 0 : 1;
    }));
}
