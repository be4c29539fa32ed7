// `gauze doctor`: on a lab node it runs itself inside that node's namespace (where /proc/sys/net,
// ip and iptables show the node), on a host it runs in place;
// with --kubeconfig (and neither --node nor --host) it checks the cluster and runs every node's
// doctor in its agent container (doctor/cluster.ts).
import { gauzeExecutable, runInteractive } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import { loadLab, findNode, pickLab } from "../lab/state.ts";
import { formatReport, runDoctor } from "../doctor/run.ts";

export interface DoctorCliOptions {
  node?: string;
  name?: string;
  host?: boolean;
  root?: string;
  binDir?: string;
  labNode?: string;
  json?: boolean;
  fix?: boolean;
  kubeconfig?: string;
  context?: string;
  gauzeNamespace?: string;
  daemonset?: string;
}

export async function doctorCli(o: DoctorCliOptions): Promise<number> {
  try {
    return await doctor(o);
  } catch (e) {
    process.stderr.write(`gauze doctor: ${(e as Error).message}\n`);
    return 2;
  }
}

async function doctor(o: DoctorCliOptions): Promise<number> {
  if ((o.kubeconfig || o.context) && !o.node && !o.host && !o.labNode) {
    const { clusterSource } = await import("../observe/cluster-source.ts");
    const { clusterOptions } = await import("./source.ts");
    const { clusterDoctor, formatClusterReport } = await import("../doctor/cluster.ts");
    const src = await clusterSource(clusterOptions(o));
    try {
      const r = await clusterDoctor(src, o.json ? undefined : (line) => process.stderr.write(`gauze doctor: ${line}\n`));
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + "\n" : formatClusterReport(r, !!process.stdout.isTTY || process.env.GAUZE_COLOR === "1"));
      return r.ok ? 0 : 1;
    } finally {
      src.close();
    }
  }
  if (o.node && !o.host) {
    const s = loadLab(pickLab(o.name));
    const n = findNode(s, o.node);
    const argv = [gauzeExecutable(), "doctor", "--host", "--root", n.root, "--name", s.name, "--lab-node", n.name, ...(o.json ? ["--json"] : []), ...(o.fix ? ["--fix"] : []), ...(o.kubeconfig ? ["--kubeconfig", o.kubeconfig] : [])];
    return runInteractive(argv, { netns: netnsPath(n.netns), env: { ...process.env, ...(process.stdout.isTTY ? { GAUZE_COLOR: "1" } : {}) } });
  }
  const lab = o.labNode && o.name ? { lab: o.name, node: o.labNode } : undefined;
  // On a lab node, --fix may start the node's agent again (the lab knows how; doctor does not).
  const restartAgent = lab ? async () => {
    const { agentStart } = await import("../lab/agents.ts");
    await agentStart(lab.lab, lab.node);
    return `started the agent on ${lab.node}`;
  } : undefined;
  // Progress on stderr for people (a slow check is named while it runs); JSON stays quiet.
  const progress = o.json ? undefined : (line: string) => process.stderr.write(`gauze doctor: ${line}\n`);
  const report = await runDoctor({ root: o.root ?? "", ...(o.binDir ? { binDir: o.binDir } : {}), ...(lab ?? {}), ...(restartAgent ? { restartAgent } : {}), ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), fix: !!o.fix, ...(progress ? { progress } : {}) });
  process.stdout.write(o.json ? JSON.stringify(report, null, 2) + "\n" : formatReport(report, !!process.stdout.isTTY || process.env.GAUZE_COLOR === "1"));
  return report.ok ? 0 : 1;
}
