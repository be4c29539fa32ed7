// `gauze lab demo`: the journey of someone hand-rolling pod networking, replayed and verified:
// nodes NotReady without a CNI, gauze installed, pods on two nodes, ping and HTTP across nodes,
// and the VXLAN packet-in-packet captured on the wire and decoded with its 50 bytes of overhead.
import { captureDuring } from "./wire.ts";
import { gauzeExecutable, runSync } from "../kernel/spawn.ts";
import { parseCIDR, prefixContains } from "../net/cidr.ts";
import { labDown, labUp } from "./lab.ts";
import { agentStatus } from "./agents.ts";
import { installCni } from "./install.ts";
import { podRun, waitServing } from "./pods.ts";
import { nodeView } from "./view.ts";
import { NOT_INITIALIZED } from "../node/conf-dir.ts";
import { loadLab, labExists } from "./state.ts";

interface Step {
  step: number;
  title: string;
  ok: boolean;
  ms: number;
  facts: string[];
  error?: string;
}

export interface DemoOptions {
  name: string;
  backend: "vxlan" | "host-gw";
  keep: boolean;
  json: boolean;
  /** Install gauze by running this manifest's DaemonSet (kubectl apply) instead of starting agents directly. */
  manifest?: string;
}

const TOTAL = 6;

export async function runDemo(o: DemoOptions): Promise<number> {
  const started = performance.now();
  const steps: Step[] = [];
  const out = (line: string) => (o.json ? process.stderr : process.stdout).write(line + "\n");
  if (labExists(o.name)) throw new Error(`lab ${o.name} exists already: gauze lab down --name ${o.name}, or gauze lab demo --name <other>`);

  async function step(title: string, fn: (facts: string[]) => Promise<void>): Promise<boolean> {
    // The summary is always the last of TOTAL, also when a failure stopped the steps before it.
    const s: Step = { step: title === "Summary" ? TOTAL : steps.length + 1, title, ok: false, ms: 0, facts: [] };
    steps.push(s);
    out(`[${s.step}/${TOTAL}] ${title}`);
    const t0 = performance.now();
    try {
      await fn(s.facts);
      s.ok = true;
    } catch (e) {
      s.error = (e as Error).message;
    }
    s.ms = Math.round(performance.now() - t0);
    for (const f of s.facts) out(`      ${f}`);
    out(s.ok ? `      ok (${s.ms} ms)` : `      FAILED: ${s.error}`);
    return s.ok;
  }
  const check = (cond: boolean, what: string) => { if (!cond) throw new Error(what); };

  const cp = `${o.name}-control-plane`;
  const wk = `${o.name}-worker`;
  let client = { ip: "", subnet: "" };
  let server = { ip: "", subnet: "" };
  let nodeIps: Record<string, string> = {};
  try {
    let ok = await step("A 2-node cluster without a CNI: both nodes NotReady", async (facts) => {
      const s = await labUp({ name: o.name, nodes: 2, podCidr: "10.244.0.0/16", backend: o.backend, cni: false, ...(o.manifest ? { manifest: o.manifest } : {}), progress: (l) => facts.push(l) });
      nodeIps = Object.fromEntries(s.nodes.map((n) => [n.name, n.ip]));
      for (const n of s.nodes) {
        const v = nodeView(s, n);
        facts.push(`${n.name}: ${v.ready ? "Ready" : "NotReady"}: ${v.reason ?? ""}`);
        check(!v.ready && (v.reason ?? "").startsWith(NOT_INITIALIZED), `${n.name} should be NotReady with "${NOT_INITIALIZED}"`);
      }
    });
    ok &&= await step(o.manifest ? `Install gauze: kubectl apply -f ${o.manifest}: the DaemonSet's pods lease subnets and install the conflist: nodes Ready` : "Install gauze: agents lease subnets and install the conflist: nodes Ready", async (facts) => {
      const s = loadLab(o.name);
      await installCni(s, (l) => facts.push(l));
      for (const n of s.nodes) {
        const v = nodeView(s, n);
        const a = agentStatus(n);
        facts.push(`${n.name}: ${v.ready ? "Ready" : "NotReady"}, subnet ${a?.subnet}, ${a?.device} ${a?.vtepMac ?? ""} MTU ${a?.podMtu}`);
        check(v.ready, `${n.name} is not Ready: ${v.reason}`);
      }
    });
    ok &&= await step("Pods: netshoot on the control-plane, nginx on the worker", async (facts) => {
      const c = await podRun(o.name, "netshoot", cp, "netshoot");
      const n = await podRun(o.name, "nginx", wk, "nginx");
      for (const p of [c, n]) {
        facts.push(`${p.name} on ${p.node}: ${p.phase} ${p.ip ?? ""}${p.reason ? ` (${p.reason})` : ""}`);
        check(p.phase === "Running" && !!p.ip, `${p.name} is ${p.phase}: ${p.reason}`);
      }
      await waitServing(n);
      const s = loadLab(o.name);
      client = { ip: c.ip!, subnet: agentStatus(s.nodes[0]!)?.subnet ?? "" };
      server = { ip: n.ip!, subnet: agentStatus(s.nodes[1]!)?.subnet ?? "" };
      check(prefixContains(parseCIDR(client.subnet)!.prefix, parseCIDR(`${client.ip}/32`)!.host), `${client.ip} is not in ${cp}'s subnet ${client.subnet}`);
      check(prefixContains(parseCIDR(server.subnet)!.prefix, parseCIDR(`${server.ip}/32`)!.host), `${server.ip} is not in ${wk}'s subnet ${server.subnet}`);
      check(client.subnet !== server.subnet, "both pods got addresses from one subnet");
      facts.push(`different node subnets: ${client.subnet} and ${server.subnet}`);
    });
    const podNs = `/run/netns/gz-${o.name}-pod-netshoot`;
    ok &&= await step("Traffic across nodes: ping and HTTP GET from netshoot to nginx", async (facts) => {
      const ping = runSync(["ping", "-c", "3", "-i", "0.2", "-W", "1", server.ip], { netns: podNs });
      const summary = ping.stdout.trim().split("\n").slice(-2).join("; ");
      facts.push(`ping ${server.ip}: ${summary}`);
      check(ping.status === 0, `ping failed: ${summary || ping.stderr.trim()}`);
      const http = runSync([gauzeExecutable(), "lab", "http-get", `http://${server.ip}/`], { netns: podNs });
      facts.push(`GET http://${server.ip}/ -> ${http.stdout.trim()}`);
      check(http.status === 0 && http.stdout.startsWith("200 hello from nginx"), `HTTP GET failed: ${http.stdout}${http.stderr}`);
    });
    ok &&= await step(o.backend === "vxlan" ? "The packet on the wire: capture UDP 8472 on the control-plane's eth0 and decode it" : "The packet on the wire: host-gw sends it bare, no encapsulation", async (facts) => {
      const bpf = o.backend === "vxlan" ? "udp port 8472" : "icmp";
      const { packets, text } = await captureDuring({ netns: `gz-${cp}`, iface: "eth0", bpf, count: 2, durationSec: 5 }, () => {
        const ping = runSync(["ping", "-c", "1", "-s", "56", "-W", "1", server.ip], { netns: podNs });
        check(ping.status === 0, "the ping during the capture got no answer");
      });
      check(packets.length >= 1, "no packet captured");
      const p = packets[0]!;
      for (const t of text.filter((l) => l.trim() && !l.startsWith("note:") && !l.startsWith("  fill") && !l.startsWith("  computed")).slice(0, 9)) facts.push(t);
      if (o.backend === "vxlan") {
        const outerIp = p.layers.find((l) => l.layer === "ipv4" && l.depth === 0)!;
        const udp = p.layers.find((l) => l.layer === "udp" && l.depth === 0)!;
        const innerIp = p.layers.find((l) => l.layer === "ipv4" && l.depth === 1);
        const icmp = p.layers.find((l) => l.layer === "icmp" && l.depth === 1);
        check(outerIp.source === nodeIps[cp] && outerIp.destination === nodeIps[wk], `outer IP ${outerIp.source} > ${outerIp.destination}, expected the node IPs ${nodeIps[cp]} > ${nodeIps[wk]}`);
        check(udp.destinationPort === 8472, `outer UDP to port ${udp.destinationPort}, expected 8472`);
        check(!!innerIp && innerIp.source === client.ip && innerIp.destination === server.ip, `inner IP ${innerIp?.source} > ${innerIp?.destination}, expected the pod IPs ${client.ip} > ${server.ip}`);
        check(!!icmp && icmp.type === 8, "the inner packet is not an ICMP echo request");
        check(p.tunnel?.vni === 1, `VNI ${p.tunnel?.vni}, expected 1`);
        check(p.tunnel?.outerIpLen === 134 && p.tunnel.innerIpLen === 84 && p.tunnel.overheadBytes === 50,
          `sizes outer IP ${p.tunnel?.outerIpLen}, inner IP ${p.tunnel?.innerIpLen}, encapsulation ${p.tunnel?.overheadBytes}; expected 134, 84, 50`);
        facts.push("verified: outer UDP between node IPs to 8472, inner ICMP between pod IPs, VNI 1; outer IP 134 bytes, inner IP 84, encapsulation 50 (IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14)");
      } else {
        const ip = p.layers.find((l) => l.layer === "ipv4")!;
        check(!p.tunnel && ip.source === client.ip && ip.destination === server.ip && ip.totalLen === 84, `expected a bare 84-byte ICMP packet between the pod IPs, got ${JSON.stringify(ip)}`);
        facts.push("verified: the pod's packet itself on the wire, IP 84 bytes: 0 bytes of overhead");
      }
    });
  } finally {
    const failed = steps.filter((s) => !s.ok);
    const ms = Math.round(performance.now() - started);
    await step("Summary", async (facts) => {
      // Counted against the steps announced ([n/TOTAL]): the ones a failure kept from running are said too.
      const checks = TOTAL - 1, ran = steps.length - 1, notRun = checks - ran;
      facts.push(`${ran - failed.length} of ${checks} steps passed${failed.length ? `, ${failed.length} failed` : ""}${notRun ? `, ${notRun} not run after the failure` : ""} in ${(ms / 1000).toFixed(1)} s`);
      if (!o.keep) {
        await labDown(o.name, (l) => facts.push(l));
      } else {
        facts.push(`lab kept: gauze lab status --name ${o.name}; gauze lab exec netshoot -- ping ${server.ip || "<ip>"}; gauze lab down --name ${o.name}`);
      }
      if (failed.length) throw new Error(`failed: ${failed.map((s) => s.title).join("; ")}`);
    });
  }
  const ok = steps.every((s) => s.ok);
  if (o.json) console.log(JSON.stringify({ lab: o.name, backend: o.backend, ok, ms: Math.round(performance.now() - started), steps }, null, 2));
  return ok ? 0 : 1;
}
