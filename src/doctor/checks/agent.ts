// The agent: running, ready, holding a lease that is not about to expire, and a subnet file that
// agrees with the lease.
import { get } from "node:http";
import { readSubnetFile } from "../../node/subnet-file.ts";
import { parseCIDR, prefixContains } from "../../net/cidr.ts";
import { type Check, ok, skip } from "../check.ts";
import { type DoctorContext as DoctorContextRef, fixCommands } from "../context.ts";

function fetchText(url: string, timeoutMs = 1000): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => { body += d.toString(); });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => { req.destroy(); resolve(undefined); });
    req.on("error", () => resolve(undefined));
  });
}

export const agentChecks: Check[] = [
  {
    id: "agent.running", group: "agent", title: "the gauze agent runs on this node",
    async run(ctx: DoctorContextRef) {
      const r = await fetchText(`${ctx.healthUrl}/healthz`);
      if (r?.status === 200) return ok(`${ctx.healthUrl}/healthz answered 200`);
      const repair = ctx.restartAgent;
      return {
        status: "fail", evidence: [`nothing answers on ${ctx.healthUrl}/healthz`, ...(ctx.agent ? [`its last report: pid ${ctx.agent.pid}, ${ctx.agent.ready ? "ready" : `not ready: ${ctx.agent.reason}`}`] : ["no report from it on this node"])],
        fix: ctx.lab ? `${fixCommands(ctx).doctorFix} (restarts it), or ${fixCommands(ctx).startAgent}` : "kubectl get pods -A -o wide | grep gauze (the agent pod for this node), then kubectl logs on it",
        ...(repair ? { repair } : {}),
      };
    },
  },
  {
    id: "agent.ready", group: "agent", title: "the agent is ready (/readyz)",
    async run(ctx) {
      const r = await fetchText(`${ctx.healthUrl}/readyz`);
      if (!r) return skip("agent not running (see agent.running)");
      if (r.status === 200) return ok(`${ctx.healthUrl}/readyz: ${r.body.trim()}`);
      // A reason another check already names is a consequence, not a second fault.
      const consequence = /br_netfilter/.test(r.body);
      return { status: consequence ? "warn" : "fail", evidence: [`/readyz ${r.status}: ${r.body.trim()}`], fix: consequence ? "see kernel.br-netfilter" : "the reason above says what the agent waits for" };
    },
  },
  {
    id: "agent.lease", group: "agent", title: "the node holds a subnet lease that is not about to expire",
    run(ctx) {
      const a = ctx.agent;
      if (!a?.subnet || !a.leaseExpiresAt) return { status: "fail", evidence: ["the agent reports no lease"], fix: `${fixCommands(ctx).agentLog} (it says why it has no subnet: registry unreachable, network full, config missing)` };
      const left = a.leaseExpiresAt - Date.now();
      if (left <= 0) return { status: "fail", evidence: [`lease ${a.subnet} expired at ${new Date(a.leaseExpiresAt).toISOString()}`], fix: `${fixCommands(ctx).restartAgent} (it takes its subnet again while nobody else has it)` };
      if (left < 3_600_000) return { status: "warn", evidence: [`lease ${a.subnet} expires in ${Math.round(left / 60000)} min`], fix: `${fixCommands(ctx).agentLog} (the agent renews at half-life: if it did not, it cannot reach the registry, and its log says why)` };
      return ok(`${a.subnet}, expires in ${(left / 3_600_000).toFixed(1)} h`);
    },
  },
  {
    id: "agent.leases", group: "agent", title: "every lease in the registry is one the agent can program",
    run(ctx) {
      const a = ctx.agent;
      if (!a) return skip("no agent report");
      const bad = a.invalidLeases ?? [];
      if (bad.length === 0) return ok(`${(a.peerLeases ?? []).length} peer lease(s), none refused`);
      return {
        status: "warn", evidence: bad.map((x) => `${x.key} (node ${x.node}, subnet ${x.subnet}): ${x.why}`),
        fix: "these leases are refused and not programmed; the nodes they name are unreachable through gauze until their records are fixed or removed from the registry (etcd: etcdctl del <key>; file store: remove the file)",
      };
    },
  },
  {
    id: "agent.subnet-file", group: "agent", title: "the subnet file exists and agrees with the lease",
    run(ctx) {
      let env;
      try {
        env = readSubnetFile(ctx.paths.subnetFile);
      } catch (e) {
        return { status: "fail", evidence: [(e as Error).message, "ADD fails with code 11 until it exists"], fix: "the agent writes it once it is ready: see agent.running and agent.ready" };
      }
      const a = ctx.agent;
      if (!a?.subnet) return ok(`${ctx.paths.subnetFile}: ${env.subnet} (no lease to compare with)`);
      const gw = parseCIDR(env.subnet);
      const problems: string[] = [];
      if (!gw || !prefixContains(parseCIDR(a.subnet)!.prefix, gw.host)) problems.push(`GAUZE_SUBNET=${env.subnet} is not inside the lease ${a.subnet}`);
      if (a.network && env.network !== a.network) problems.push(`GAUZE_NETWORK=${env.network}, the agent's network is ${a.network}`);
      if (a.podMtu && env.mtu !== a.podMtu) problems.push(`GAUZE_MTU=${env.mtu}, the overlay carries ${a.podMtu}`);
      if (problems.length) return { status: "fail", evidence: problems, fix: `${fixCommands(ctx).restartAgent} (it rewrites the subnet file from its lease)` };
      return ok(`${env.subnet} in ${a.subnet}, MTU ${env.mtu}`);
    },
  },
  {
    id: "agent.network-policy", group: "agent", title: "NetworkPolicy is programmed on this node and every policy parses",
    run(ctx) {
      const a = ctx.agent;
      if (!a) return skip("no agent report");
      const p = a.policy;
      const feature = a.features?.networkPolicy;
      if (!p) return feature && !feature.on ? { status: "warn", evidence: [`NetworkPolicy is not enforced: ${feature.why ?? "off"}`], fix: feature.fix ?? "give the agent a kubeconfig (--kubeconfig)" } : skip("the agent does not enforce NetworkPolicy (--network-policy off, or no Kubernetes API)");
      if (p.error) return { status: "fail", evidence: [`the last programming failed: ${p.error}`, `the rules of generation ${p.generation} stay in force`], fix: `${fixCommands(ctx).agentLog} (it names the transaction nft refused)` };
      if (p.invalid.length) {
        return {
          status: "fail", evidence: p.invalid.map((x) => `${x.policy}: ${x.problems.join("; ")} (fails closed: the pods it selects are isolated and nothing it means to allow is)`),
          fix: `correct these policies (kubectl get networkpolicy -n <namespace> <name> -o yaml): a validating API server would have refused them`,
        };
      }
      return ok(`generation ${p.generation}: ${p.policies} policy(ies), ${p.isolatedPods} of ${p.localPods} local pod direction(s) isolated, ${p.rules} rule(s)${p.lastMs !== undefined ? `, last change in force ${p.lastMs} ms after it arrived` : ""}`);
    },
  },
];
