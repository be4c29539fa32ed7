// `gauze policy explain|what-if`: NetworkPolicy questions answered from the Kubernetes API (a
// cluster's, with --kubeconfig, or the lab's own) without touching any node; what-if also reads
// the flows the agents observed recently (the lab's, or this host's with --host).
import type { Command } from "commander";
import type { Protocol } from "../policy/index.ts";

type SetStatus = (code: number) => void;

async function guard(set: SetStatus, fn: () => Promise<number | void>): Promise<void> {
  try {
    set((await fn()) ?? 0);
  } catch (e) {
    process.stderr.write(`gauze policy: ${(e as Error).message}\n`);
    set(1);
  }
}

/** The kubeconfig asked for: --kubeconfig, $KUBECONFIG, else the lab's admin kubeconfig. */
async function kubeconfigFor(o: { kubeconfig?: string; name?: string }): Promise<string> {
  if (o.kubeconfig) return o.kubeconfig;
  if (process.env.KUBECONFIG && !o.name) return process.env.KUBECONFIG;
  const [{ loadLab, pickLab }, { adminKubeconfig }] = await Promise.all([import("../lab/state.ts"), import("../lab/kube/credentials.ts")]);
  const s = loadLab(pickLab(o.name));
  if (!s.kube?.local) throw new Error(`lab ${s.name} has no Kubernetes API (made by an older gauze); give --kubeconfig`);
  return adminKubeconfig(s.name);
}

function protocolOf(p: string): Protocol {
  const x = p.toUpperCase();
  if (x !== "TCP" && x !== "UDP" && x !== "SCTP") throw new Error(`--protocol ${p}: use tcp, udp or sctp`);
  return x;
}

export function registerPolicy(program: Command, set: SetStatus): void {
  const policy = program.command("policy").description("NetworkPolicy questions, answered from the Kubernetes API's current state by the evaluator the agents enforce with");
  policy.command("explain")
    .description("would <from> reach <to> on this port? each policy's part, rule by rule, and the verdict (exit 3 when denied)")
    .argument("<from>", "[namespace/]pod or an IP address")
    .argument("<to>", "[namespace/]pod or an IP address")
    .requiredOption("--port <n>", "destination port")
    .option("--protocol <p>", "tcp, udp or sctp", "tcp")
    .option("--kubeconfig <file>", "the cluster's API (default: $KUBECONFIG, or the lab's)")
    .option("--context <name>", "kubeconfig context")
    .option("--name <lab>", "the lab whose API to ask (default: the only lab)")
    .option("--json", "JSON: the verdict with every rule looked at")
    .action((from: string, to: string, o: { port: string; protocol: string; kubeconfig?: string; context?: string; name?: string; json?: boolean }) => guard(set, async () => {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port ${o.port}: give a port from 0 to 65535`);
      const { explainQuestion, loadWorld } = await import("../observe/policy.ts");
      const w = await loadWorld(await kubeconfigFor(o), o.context);
      const r = explainQuestion(w, from, to, port, protocolOf(o.protocol));
      console.log(o.json ? JSON.stringify({ query: r.query, verdict: r.verdict, invalid: w.invalid }, null, 2) : r.text);
      return r.verdict.allowed ? 0 : 3;
    }));
  policy.command("status")
    .description("is NetworkPolicy in force everywhere? the API's newest generation against each node's agent (exit 0 only when all have it; --wait waits for that)")
    .option("--kubeconfig <file>", "the cluster's API (default: $KUBECONFIG, or the lab's)")
    .option("--context <name>", "kubeconfig context")
    .option("--name <lab>", "the lab (default: the only lab)")
    .option("--host", "this host's agent only")
    .option("--wait <seconds>", "wait up to this long for every node")
    .option("--json", "JSON")
    .action((o: { kubeconfig?: string; context?: string; name?: string; host?: boolean; wait?: string; json?: boolean }) => guard(set, async () => {
      const { policyRollout } = await import("../observe/policy.ts");
      const { pickSource } = await import("./source.ts");
      const kubeconfig = await kubeconfigFor(o);
      const source = await pickSource(o);
      const until = Date.now() + Number(o.wait ?? 0) * 1000;
      let r = await policyRollout(kubeconfig, source.agents(), o.context);
      while (r.programmed < r.nodes.length && Date.now() < until) {
        await new Promise((res) => setTimeout(res, 50));
        r = await policyRollout(kubeconfig, source.agents(), o.context);
      }
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else {
        const lines = [`policy generation ${r.generation} programmed on ${r.programmed}/${r.nodes.length} nodes`];
        for (const n of r.nodes) lines.push(`  ${n.node}: ${n.programmed ? "programmed" : "behind"} (generation ${n.generation ?? "?"}${n.isolatedPods !== undefined ? `, ${n.isolatedPods} isolated pod direction(s)` : ""}${n.invalid ? `, ${n.invalid} policy(ies) failing closed` : ""})${n.error ? `: ${n.error}` : ""}`);
        console.log(lines.join("\n"));
      }
      return r.programmed === r.nodes.length ? 0 : 1;
    }));
  policy.command("what-if")
    .description("replay the flows the agents observed recently against the policies in a file (as if applied) and list every connection whose verdict would change (exit 3 when some would)")
    .requiredOption("-f, --filename <file>", "NetworkPolicies (and Namespaces with new labels) as they would be applied")
    .option("--kubeconfig <file>", "the cluster's API (default: $KUBECONFIG, or the lab's)")
    .option("--context <name>", "kubeconfig context")
    .option("--name <lab>", "the lab whose API and agents to ask (default: the only lab)")
    .option("--host", "the flows of this host's agent")
    .option("--json", "JSON")
    .action((o: { filename: string; kubeconfig?: string; context?: string; name?: string; host?: boolean; json?: boolean }) => guard(set, async () => {
      const { loadWorld, proposedWorld, recentConnections, whatIf } = await import("../observe/policy.ts");
      const { pickSource } = await import("./source.ts");
      const w = await loadWorld(await kubeconfigFor(o), o.context);
      const p = proposedWorld(w.world, o.filename);
      const source = await pickSource(o);
      const seen = await recentConnections(source.agents(), (l) => process.stderr.write(`${l}\n`));
      const r = whatIf(w.world, p.world, seen);
      if (o.json) {
        console.log(JSON.stringify({ proposed: p.changed, problems: p.problems, connectionsChecked: r.checked, changes: r.changes }, null, 2));
      } else {
        const lines = [`${o.filename}: ${p.changed.join(", ")}; ${r.checked} connection(s) observed recently on ${source.label}, ${r.changes.length} would change`];
        for (const c of r.changes) lines.push(`  ${c.from} -> ${c.to} :${c.port}/${c.protocol}  ${c.now.toUpperCase()} -> ${c.proposed.toUpperCase()}  (${c.packets} pkt, last ${new Date(c.lastSeen).toISOString()})\n    ${c.reason}`);
        for (const x of p.problems) lines.push(`  problem: ${x}`);
        console.log(lines.join("\n"));
      }
      return r.changes.length ? 3 : 0;
    }));
}
