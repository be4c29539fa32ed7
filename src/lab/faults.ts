// `gauze lab break <fault>` and `gauze lab fix`: the ways pod networking fails in real clusters,
// injected into a healthy lab node so that their symptoms (and doctor's findings) can be seen.
// Each break records how to undo it; `lab fix` undoes them all (doctor --fix may have already).
import { existsSync, linkSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { netnsPath } from "../kernel/netns.ts";
import { ensureSysctl } from "../kernel/sysctl.ts";
import { iptables } from "../kernel/iptables.ts";
import { replaceFdb, setLink, withRtnl } from "../kernel/netlink/index.ts";
import { CONFLIST_NAME } from "../node/paths.ts";
import { ensureMasquerade } from "../agent/masquerade.ts";
import { type Fault, type FaultRecord, type LabNode, type LabState, findNode, labDir, withLab } from "./state.ts";
import { agentStatus, startAgent } from "./agents.ts";
import { agentRunning, stopAgentProcess } from "./processes.ts";
import { gauzeExecutable } from "../kernel/spawn.ts";

export const FAULTS: Record<Fault, string> = {
  "no-br-netfilter": "bridge-nf-call-iptables off (stands in for a missing br_netfilter module, which this kernel has built in)",
  "no-cni-config": "the conflist is gone from net.d",
  "missing-plugin": "the gauze plugin is gone from the CNI bin dir",
  "ip-forward-off": "IPv4 forwarding off on the node",
  "mtu-mismatch": "the node's switch port carries 1400 bytes while the node sends 1500",
  "stale-fdb": "the agent is stopped (an upgrade, a crash) and the FDB entries for the other nodes point to a node IP that no longer exists (a running agent puts them back within a second)",
  "agent-down": "the agent is killed",
  "forward-drop": "FORWARD policy DROP without gauze's accept chain (what Docker does)",
  "vxlan-port-blocked": "the node drops UDP 8472 in INPUT (a firewall or security group)",
};

const BREAK_COMMENT = "gauze-lab-break";

function sysctl(n: LabNode, key: string, value: string): void {
  ensureSysctl(key, value, netnsPath(n.netns));
}

function iptablesIn(n: LabNode, args: string[]): string {
  return iptables(args, { netns: netnsPath(n.netns) });
}

/** The MTU of a node's port on the lab's switch (its veth end in the underlay namespace). */
function setSwitchPortMtu(s: LabState, n: LabNode, mtu: number): void {
  withRtnl({ netns: netnsPath(s.underlayNs) }, (nl) => {
    const port = nl.link(`gzu${n.idx}`);
    if (!port) throw new Error(`${n.name} has no port gzu${n.idx} on the underlay`);
    nl.run([setLink(port, { mtu })]);
  });
}

/** Points the VXLAN FDB entries of these MACs at `dst` on a node. */
function setFdb(n: LabNode, entries: [mac: string, dst: string][]): void {
  withRtnl({ netns: netnsPath(n.netns) }, (nl) => {
    const dev = nl.link("gauze.1");
    if (!dev) throw new Error(`${n.name} has no gauze.1`);
    nl.run(entries.map(([mac, dst]) => replaceFdb(dev, mac, dst)));
  });
}

async function apply(s: LabState, n: LabNode, f: Fault): Promise<FaultRecord> {
  const rec: FaultRecord = { fault: f, node: n.name };
  switch (f) {
    case "no-br-netfilter": sysctl(n, "net.bridge.bridge-nf-call-iptables", "0"); break;
    case "ip-forward-off": sysctl(n, "net.ipv4.ip_forward", "0"); break;
    case "no-cni-config": {
      const aside = join(labDir(s.name), "broken", n.name);
      mkdirSync(aside, { recursive: true });
      renameSync(join(n.root, "etc/cni/net.d", CONFLIST_NAME), join(aside, CONFLIST_NAME));
      break;
    }
    case "missing-plugin": rmSync(join(n.root, "opt/cni/bin/gauze")); break;
    case "mtu-mismatch": setSwitchPortMtu(s, n, 1400); break;
    case "stale-fdb": {
      const peers = (agentStatus(n)?.peerLeases ?? []).filter((p) => p.vtepMac);
      if (peers.length === 0) throw new Error(`${n.name} has no peer to break`);
      const ghost = "172.18.255.250"; // inside the lab's underlay: no node has it
      // A running agent repairs hand-made drift at once (it watches the kernel): stop it first,
      // as an upgrade or a crash would, so the stale entries stay for doctor to find.
      await stopAgentProcess(n, 1000);
      n.agentPid = undefined;
      setFdb(n, peers.map((p) => [p.vtepMac!, ghost]));
      rec.detail = Object.fromEntries(peers.map((p) => [p.vtepMac!, p.publicIp]));
      break;
    }
    case "agent-down": await stopAgentProcess(n, 500, "SIGKILL"); n.agentPid = undefined; break;
    case "forward-drop": {
      iptablesIn(n, ["-P", "FORWARD", "DROP"]);
      // Delete gauze's jumps by rule number (highest first), no shell and no re-quoting.
      const appended = iptablesIn(n, ["-S", "FORWARD"]).split("\n").filter((l) => l.startsWith("-A "));
      const numbers = appended.map((l, i) => (l.includes("-j GAUZE-FWD") ? i + 1 : 0)).filter(Boolean).reverse();
      for (const num of numbers) iptablesIn(n, ["-D", "FORWARD", String(num)]);
      break;
    }
    case "vxlan-port-blocked":
      iptablesIn(n, ["-I", "INPUT", "-p", "udp", "--dport", "8472", "-m", "comment", "--comment", BREAK_COMMENT, "-j", "DROP"]);
      break;
  }
  return rec;
}

/** Undoes one fault; quiet when doctor --fix (or anything else) already did. */
async function undo(s: LabState, r: FaultRecord): Promise<void> {
  const n = s.nodes.find((x) => x.name === r.node);
  if (!n) return;
  const quiet = (fn: () => unknown) => { try { fn(); } catch { /* already undone */ } };
  switch (r.fault) {
    case "no-br-netfilter": quiet(() => sysctl(n, "net.bridge.bridge-nf-call-iptables", "1")); break;
    case "ip-forward-off": quiet(() => sysctl(n, "net.ipv4.ip_forward", "1")); break;
    case "no-cni-config": {
      const aside = join(labDir(s.name), "broken", n.name, CONFLIST_NAME);
      const back = join(n.root, "etc/cni/net.d", CONFLIST_NAME);
      if (existsSync(aside)) { if (existsSync(back)) rmSync(aside); else renameSync(aside, back); }
      break;
    }
    case "missing-plugin": {
      const p = join(n.root, "opt/cni/bin/gauze");
      if (!existsSync(p)) linkSync(gauzeExecutable(), p);
      break;
    }
    case "mtu-mismatch": quiet(() => setSwitchPortMtu(s, n, 1500)); break;
    case "stale-fdb":
      quiet(() => setFdb(n, Object.entries(r.detail ?? {})));
      if (!agentRunning(n)) startAgent(s, n);
      break;
    case "agent-down":
      if (!agentRunning(n)) startAgent(s, n);
      break;
    case "forward-drop":
      quiet(() => iptablesIn(n, ["-P", "FORWARD", "ACCEPT"]));
      ensureMasquerade(s.podCidr, true, agentStatus(n)?.bridge ?? "cni0", netnsPath(n.netns));
      break;
    case "vxlan-port-blocked":
      quiet(() => iptablesIn(n, ["-D", "INPUT", "-p", "udp", "--dport", "8472", "-m", "comment", "--comment", BREAK_COMMENT, "-j", "DROP"]));
      break;
  }
}

export async function breakNode(lab: string, fault: string, node: string): Promise<FaultRecord> {
  if (!(fault in FAULTS)) throw new Error(`unknown fault ${JSON.stringify(fault)}: one of ${Object.keys(FAULTS).join(", ")}`);
  return withLab(lab, async (s) => {
    const n = findNode(s, node);
    const rec = await apply(s, n, fault as Fault);
    (s.faults ??= []).push(rec);
    return rec;
  });
}

/** Undoes the recorded faults, newest first: every node's, or only `node`'s. */
export async function fixAll(lab: string, node?: string): Promise<FaultRecord[]> {
  return withLab(lab, async (s) => {
    const name = node ? findNode(s, node).name : undefined;
    const done = [...(s.faults ?? [])].reverse().filter((r) => !name || r.node === name);
    for (const r of done) await undo(s, r);
    s.faults = (s.faults ?? []).filter((r) => !done.includes(r));
    return done;
  });
}
