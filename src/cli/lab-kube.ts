// `gauze lab apply|delete|label|kubeconfig|probe|policy-test`: the lab's Kubernetes API and its
// NetworkPolicy proof from the command line, plus the helpers the lab's agnhost image runs inside
// pod namespaces (serve-ports, probe-once, probe-many).
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { netnsPath } from "../kernel/netns.ts";
import { gauzeExecutable, runAsync } from "../kernel/spawn.ts";
import { findPod, loadLab, pickLab } from "../lab/state.ts";
import { LAB_HELP, type SetStatus, guard, say } from "./lab-common.ts";



/** "1s", "500ms" or a bare number of milliseconds. */
function parseTimeout(t: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(t.trim());
  const ms = m ? Number(m[1]) * (m[2] === "s" ? 1000 : 1) : NaN;
  if (!(ms >= 10 && ms <= 60_000)) throw new Error(`--timeout ${t}: give 10ms to 60s, e.g. 1s or 500ms`);
  return ms;
}

function parseProtocol(p: string): "tcp" | "udp" | "sctp" {
  const x = p.toLowerCase();
  if (x !== "tcp" && x !== "udp" && x !== "sctp") throw new Error(`--protocol ${p}: use tcp, udp or sctp`);
  return x;
}

function parsePort(p: string): number {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`--port ${p}: give a port from 1 to 65535`);
  return n;
}

export function registerLabKube(lab: Command, set: SetStatus): void {
  lab.command("kubeconfig")
    .description("the path of the lab API's admin kubeconfig (kubectl --kubeconfig $(gauze lab kubeconfig) get pods -A)")
    .option("--name <lab>", LAB_HELP)
    .option("--as <user>", "another user's kubeconfig: observer (bound to gauze-observer) or viewer (reads, no pods/exec)")
    .option("--json", "JSON")
    .action((o: { name?: string; json?: boolean; as?: string }) => guard(set, async () => {
      const { adminKubeconfig, userKubeconfig, LAB_USERS } = await import("../lab/kube/credentials.ts");
      const s = loadLab(pickLab(o.name));
      if (!s.kube?.local) throw new Error(`lab ${s.name} has no Kubernetes API (made by an older gauze): gauze lab down --name ${s.name} && gauze lab up --name ${s.name}`);
      if (o.as !== undefined && !(LAB_USERS as readonly string[]).includes(o.as)) throw new Error(`--as ${o.as}: the lab's users are ${LAB_USERS.join(", ")} (and the admin, without --as)`);
      const path = o.as ? userKubeconfig(s.name, o.as as (typeof LAB_USERS)[number]) : adminKubeconfig(s.name);
      if (!existsSync(path)) throw new Error(`lab ${s.name} has no ${o.as} kubeconfig (made by an older gauze): gauze lab down --name ${s.name} && gauze lab up --name ${s.name}`);
      console.log(o.json ? JSON.stringify({ kubeconfig: path, server: s.kube.local }) : path);
    }));

  lab.command("apply")
    .description("create or update Namespaces, Pods' labels and NetworkPolicies from a YAML or JSON file in the lab's API (kubectl apply -f)")
    .requiredOption("-f, --filename <file>", "the file (several documents, or a List)")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((o: { filename: string; name?: string; json?: boolean }) => guard(set, async () => {
      const { applyObjects, readObjects } = await import("../lab/kube/apply.ts");
      const r = await applyObjects(pickLab(o.name), readObjects(o.filename));
      console.log(o.json ? JSON.stringify(r) : r.map((x) => `${x.kind.toLowerCase()}/${x.name}${x.namespace ? ` in ${x.namespace}` : ""} ${x.action}`).join("\n"));
    }));

  lab.command("delete")
    .description("delete what a YAML or JSON file names from the lab's API (kubectl delete -f)")
    .requiredOption("-f, --filename <file>", "the file")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((o: { filename: string; name?: string; json?: boolean }) => guard(set, async () => {
      const { deleteObjects, readObjects } = await import("../lab/kube/apply.ts");
      const r = await deleteObjects(pickLab(o.name), readObjects(o.filename));
      console.log(o.json ? JSON.stringify(r) : r.map((x) => `${x.kind.toLowerCase()}/${x.name}${x.namespace ? ` in ${x.namespace}` : ""} ${x.action}`).join("\n"));
    }));

  lab.command("label")
    .description("change a pod's or a namespace's labels live (kubectl label): key=value sets, key- removes")
    .argument("<kind>", "pod or ns")
    .argument("<target>", "[namespace/]pod, or the namespace")
    .argument("<labels...>", "key=value or key-")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((kind: string, target: string, words: string[], o: { name?: string; json?: boolean }) => guard(set, async () => {
      const { labelObject, parseLabelChanges } = await import("../lab/kube/apply.ts");
      const r = await labelObject(pickLab(o.name), kind, target, parseLabelChanges(words));
      console.log(o.json ? JSON.stringify(r) : `${r.kind.toLowerCase()}/${r.namespace ? `${r.namespace}/` : ""}${r.name} labeled: ${Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(",") || "(no labels)"}`);
    }));

  lab.command("probe")
    .description("one connection attempt from a pod to a pod or an address: connected, refused or timeout (exit 0 only when connected)")
    .argument("<from>", "[namespace/]pod")
    .argument("<to>", "[namespace/]pod or an IP address")
    .requiredOption("--port <n>", "destination port")
    .option("--protocol <p>", "tcp, udp or sctp (an INIT through a raw socket: this kernel has no SCTP sockets)", "tcp")
    .option("--timeout <t>", "how long to wait (1s, 500ms)", "1s")
    .option("--ipv6", "to the pod's IPv6 address")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((from: string, to: string, o: { port: string; protocol: string; timeout: string; ipv6?: boolean; name?: string; json?: boolean }) => guard(set, async () => {
      const s = loadLab(pickLab(o.name));
      const src = findPod(s, from);
      const port = parsePort(o.port), protocol = parseProtocol(o.protocol), timeoutMs = parseTimeout(o.timeout);
      const { parseIP } = await import("../net/cidr.ts");
      const dstPod = parseIP(to) ? undefined : findPod(s, to);
      const ip = dstPod ? (o.ipv6 ? dstPod.ip6 : dstPod.ip) : to;
      if (!ip) throw new Error(`pod ${to} has no ${o.ipv6 ? "IPv6 " : ""}address yet (gauze lab status)`);
      const r = await runAsync([gauzeExecutable(), "lab", "probe-many", "--to", ip, "--port", String(port), "--protocol", protocol, "--timeout", String(timeoutMs)], { netns: netnsPath(src.netns), timeoutMs: timeoutMs + 10_000 });
      if (r.status !== 0) throw new Error(r.stderr.trim() || `probe failed (exit ${r.status})`);
      const [res] = JSON.parse(r.stdout) as { result: string; ms: number }[];
      const out = { from, to, ip, port, protocol, result: res!.result, ms: res!.ms };
      console.log(o.json ? JSON.stringify(out) : `${from} -> ${to}${dstPod ? ` (${ip})` : ""} :${port}/${protocol}: ${res!.result}${res!.result === "timeout" ? ` after ${timeoutMs} ms` : ` in ${res!.ms} ms`}`);
      return res!.result === "connected" ? 0 : 1;
    }));

  lab.command("policy-test")
    .description("the upstream NetworkPolicy suite's model in this lab (namespaces x, y, z; agnhost pods a, b, c): each case's policies applied, every node's rules waited for, 81 probes per port and protocol, expected and observed matrices compared")
    .option("--case <ids>", "only these cases (comma-separated; default: all 48)")
    .option("--list", "list the cases and stop")
    .option("--ipv6", "probe the pods' IPv6 addresses (a --ipv6 lab)")
    .option("--timeout <t>", "how long a probe waits for an answer", "1s")
    .option("--verbose", "print the matrices of passing checks too")
    .option("--name <lab>", LAB_HELP)
    .option("--json", "JSON")
    .action((o: { case?: string; list?: boolean; ipv6?: boolean; timeout: string; verbose?: boolean; name?: string; json?: boolean }) => guard(set, async () => {
      const { formatCase, pickCases, policyTest } = await import("../lab/policy-test.ts");
      if (o.list) {
        const cases = pickCases();
        console.log(o.json ? JSON.stringify(cases.map((c) => ({ id: c.id, category: c.category, suite: c.suite, upstream: c.upstream }))) : cases.map((c) => `${c.id.padEnd(44)} ${c.category.padEnd(13)} ${c.upstream}`).join("\n"));
        return;
      }
      const ids = o.case?.split(",").map((x) => x.trim()).filter(Boolean);
      pickCases(ids); // unknown ids are an error before anything is made
      const t0 = performance.now();
      const results = await policyTest(pickLab(o.name), { ...(ids ? { cases: ids } : {}), family: o.ipv6 ? 6 : 4, timeoutMs: parseTimeout(o.timeout), progress: say(!!o.json) },
        (r) => { if (!o.json) console.log(formatCase(r, !!o.verbose)); });
      const passed = results.filter((r) => r.ok).length;
      if (o.json) console.log(JSON.stringify({ passed, failed: results.length - passed, seconds: +((performance.now() - t0) / 1000).toFixed(1), cases: results }, null, 2));
      else console.log(`\n${passed} of ${results.length} case(s) passed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      return passed === results.length ? 0 : 1;
    }));

  // The agnhost image and its probes, run inside a pod's namespace.
  lab.command("serve-ports", { hidden: true }).requiredOption("--ports <list>", "name:port/PROTO,...").option("--pod <name>", "who answers", "pod")
    .action((o: { ports: string; pod: string }) => guard(set, async () => {
      const [{ servePorts }, { parsePorts }] = await Promise.all([import("../lab/ports.ts"), import("../lab/pods.ts")]);
      await servePorts(parsePorts(o.ports), o.pod);
    }));
  lab.command("probe-once", { hidden: true }).requiredOption("--to <ip>").requiredOption("--port <n>").option("--protocol <p>", "tcp, udp or sctp", "tcp").option("--timeout <ms>", "ms", "1000")
    .action((o: { to: string; port: string; protocol: string; timeout: string }) => guard(set, async () => {
      const { probeOnce } = await import("../lab/ports.ts");
      const r = await probeOnce(o.to, parsePort(o.port), parseProtocol(o.protocol), Number(o.timeout));
      console.log(JSON.stringify(r));
      return r.result === "connected" ? 0 : 1;
    }));
  lab.command("probe-many", { hidden: true }).requiredOption("--to <ips>", "comma-separated").requiredOption("--port <n>").option("--protocol <p>", "tcp, udp or sctp", "tcp").option("--timeout <ms>", "ms", "1000")
    .action((o: { to: string; port: string; protocol: string; timeout: string }) => guard(set, async () => {
      const { probeOnce } = await import("../lab/ports.ts");
      const port = parsePort(o.port), protocol = parseProtocol(o.protocol);
      const results = await Promise.all(o.to.split(",").filter(Boolean).map((ip) => probeOnce(ip, port, protocol, Number(o.timeout))));
      console.log(JSON.stringify(results));
    }));
}
