// The lab runs the manifest (deploy/kube-gauze.yml) as kubelets would: the DaemonSet's pods run
// with podman inside each node's namespace, from gauze's image, with the manifest's command,
// args, env, capabilities and hostPath volumes; the agents talk to the lab's Kubernetes API
// with their service-account token, under the manifest's RBAC. Nodes turn Ready only through
// those pods; a rolling update replaces them one node at a time while pods keep talking; the
// uninstall DaemonSet leaves the nodes clean; lab down leaves no container, storage or mount.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GAUZE, ROOT, World, must, sh } from "./helpers.ts";

const w = new World("mf");
const name = `t${process.pid % 1000}mf`;
const changed = `t${process.pid % 1000}mc`;
const MANIFEST = join(ROOT, "deploy", "kube-gauze.yml");
after(() => { for (const l of [name, changed]) sh([GAUZE, "lab", "down", "--name", l]); });

interface Status {
  manifest?: { image: string };
  nodes: { name: string; ready: boolean; reason?: string; subnet?: string; pod?: { name: string; image: string; running: boolean; ready: boolean; reason: string } }[];
  pods: { name: string; ip: string }[];
}
const status = (lab: string) => JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as Status;
const labDir = (lab: string) => `/var/lib/gauze/lab/${lab}`;
const podman = (lab: string, ...args: string[]) => must(["podman", "--root", `${labDir(lab)}/podman/root`, "--runroot", `${labDir(lab)}/podman/run`, "--storage-driver", "vfs", ...args], { env: { ...process.env, CONTAINERS_CONF: `${labDir(lab)}/podman/containers.conf` } });

test("lab up --manifest: NotReady until the DaemonSet's pods run; then agents in containers with NET_ADMIN, NET_RAW, BPF and PERFMON only make pods talk, and observe them with eBPF", { timeout: 180_000 }, async () => {
  sh([GAUZE, "lab", "down", "--name", name]);
  must([GAUZE, "lab", "up", "--name", name, "--nodes", "3", "--manifest", MANIFEST, "--no-cni"]);
  let st = status(name);
  assert.ok(st.nodes.every((n) => !n.ready && /cni plugin not initialized/.test(n.reason ?? "")), "NotReady before the DaemonSet runs");
  must([GAUZE, "lab", "install", "--name", name]);
  st = status(name);
  for (const n of st.nodes) {
    assert.ok(n.ready, `${n.name} Ready: ${n.reason}`);
    assert.ok(n.pod?.running && n.pod.ready, `${n.name}: its pod runs and passes its readiness probe`);
    assert.equal(n.pod!.name, `kube-gauze-ds-${n.name}`);
  }
  // The container as the manifest says: the agent's command, NODE_NAME, capabilities, mounts.
  const c = (JSON.parse(podman(name, "inspect", `gz-${name}-${name}-worker-gauze`)) as { Config: { Env: string[]; Entrypoint: string | string[] }; Args: string[]; EffectiveCaps: string[]; Mounts: { Destination: string }[] }[])[0]!;
  assert.ok(c.Config.Env.includes(`NODE_NAME=${name}-worker`));
  assert.deepEqual([...c.EffectiveCaps].sort(), ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_PERFMON"]);
  assert.deepEqual(c.Mounts.map((m) => m.Destination).sort(), ["/etc/cni/net.d", "/etc/gauze", "/host/opt/cni/bin", "/run/gauze", "/run/xtables.lock", "/sys/fs/bpf", "/sys/kernel/tracing", "/var/run/secrets/kubernetes.io/serviceaccount"]);
  // The plugin the init container installed, the conflist the agent wrote, into the node's own tree.
  assert.ok(existsSync(`${labDir(name)}/nodes/${name}-worker/opt/cni/bin/gauze`));
  assert.ok(existsSync(`${labDir(name)}/nodes/${name}-worker/etc/cni/net.d/10-gauze.conflist`));
  // The agents' leases are Node annotations in the lab's API, each on the podCIDR it assigned.
  const nodes = (JSON.parse(readFileSync(`${labDir(name)}/kube/nodes.json`, "utf8")) as { nodes: { metadata: { name: string; annotations: Record<string, string> }; spec: { podCIDR: string } }[] }).nodes;
  for (const n of st.nodes) {
    const k = nodes.find((x) => x.metadata.name === n.name)!;
    assert.equal(k.spec.podCIDR, n.subnet);
    assert.match(k.metadata.annotations["gauze.dev/public-ip"] ?? "", /^172\.18\.0\.\d+$/);
  }
  must([GAUZE, "lab", "pod", "run", "a", "--node", "control-plane", "--name", name]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", `${name}-worker2`, "--name", name]);
  const b = status(name).pods.find((p) => p.name === "b")!.ip;
  assert.equal(sh([GAUZE, "lab", "exec", "a", "--name", name, "--", "ping", "-c", "2", "-W", "1", b]).status, 0);
  // The agents in their containers observe too, with eBPF and exactly those capabilities (tc
  // programs and kfree_skb; the node's /run/gauze for the API; pins in the host's bpffs), and see
  // drops with the kernel's reason: a FORWARD drop is named.
  await new Promise((r) => setTimeout(r, 1200));
  for (const n of st.nodes) {
    const m = must(["nsenter", `--net=/run/netns/gz-${n.name}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]);
    assert.match(m, /gauze_agent_feature_enabled\{feature="ebpf",node="[^"]+"\} 1/, `${n.name} observes with eBPF`);
    assert.ok(existsSync(`/sys/fs/bpf/gauze/${n.name}/observe/flows`), `${n.name}: its flow table pinned in the host's bpffs`);
  }
  const flows = must([GAUZE, "observe", "--name", name, "-o", "json", "--last", "200", "--from-pod", "a"]).trim().split("\n").map((l) => JSON.parse(l) as { node: string; observationPoint: string });
  assert.ok(flows.some((f) => f.node === `${name}-worker2` && f.observationPoint === "to-pod"), "the far node's agent saw the ping arrive");
  must([GAUZE, "lab", "break", "forward-drop", "--node", `${name}-worker2`, "--name", name]);
  try {
    sh([GAUZE, "lab", "exec", "a", "--name", name, "--", "ping", "-c", "1", "-W", "1", b]);
    await new Promise((r) => setTimeout(r, 1200));
    const drops = must([GAUZE, "observe", "--name", name, "-o", "json", "--last", "50", "--verdict", "dropped"]);
    assert.match(drops, /"dropReason":"NETFILTER_DROP"/);
  } finally {
    must([GAUZE, "lab", "fix", "--name", name]);
  }
});

test("the lab's credentials are root's alone: the control plane's directory 0700, keys, ServiceAccount tokens and grants 0600", () => {
  const kube = `${labDir(name)}/kube`;
  const mode = (p: string) => statSync(p).mode & 0o777;
  assert.equal(mode(kube), 0o700);
  for (const f of ["grants.json", "ca.key", "server.key"]) assert.equal(mode(`${kube}/${f}`), 0o600, f);
  const sa = `${kube}/serviceaccounts`;
  const tokens = readdirSync(sa).flatMap((ns) => readdirSync(`${sa}/${ns}`).map((a) => `${sa}/${ns}/${a}`));
  assert.ok(tokens.length > 0);
  for (const d of tokens) {
    assert.equal(mode(d), 0o700, d);
    assert.equal(mode(`${d}/token`), 0o600, `${d}/token`);
  }
});

test("a rolling update to a new image tag replaces the pods one node at a time; a ping across nodes loses nothing beyond 1 s", { timeout: 180_000 }, async () => {
  const b = status(name).pods.find((p) => p.name === "b")!.ip;
  const pinger = spawn("nsenter", [`--net=/run/netns/gz-${name}-pod-a`, "ping", "-n", "-i", "0.1", "-W", "1", b]);
  let out = "";
  pinger.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  await new Promise((r) => setTimeout(r, 500));
  const r = JSON.parse(must([GAUZE, "lab", "rollout", "--name", name, "--image", "localhost/gauze:0.1.0-next", "--json"])) as { nodes: { node: string; ms: number }[] };
  await new Promise((res) => setTimeout(res, 1000));
  pinger.kill("SIGINT");
  await new Promise((res) => pinger.on("close", res));
  assert.deepEqual(r.nodes.map((x) => x.node), [`${name}-control-plane`, `${name}-worker`, `${name}-worker2`], "one node after another, in order");
  const st = status(name);
  assert.equal(st.manifest?.image, "localhost/gauze:0.1.0-next");
  assert.ok(st.nodes.every((n) => n.pod?.image === "localhost/gauze:0.1.0-next" && n.pod.ready));
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  assert.ok(m, out);
  const lost = Number(m[1]) - Number(m[2]);
  assert.ok(Number(m[1]) > 20, `pings were sent throughout (${m[1]})`);
  assert.ok(lost <= 10, `${lost} pings lost at 0.1 s apart: more than 1 s`);
});

test("the uninstall DaemonSet leaves every node without gauze: no device, bridge, rules, plugin, conflist or lease", { timeout: 120_000 }, () => {
  must([GAUZE, "lab", "uninstall", "--name", name]);
  const st = status(name);
  for (const n of st.nodes) {
    assert.ok(!n.ready && /cni plugin not initialized/.test(n.reason ?? ""), `${n.name} NotReady again`);
    const links = (JSON.parse(must(["ip", "-n", `gz-${n.name}`, "-j", "link", "show"])) as { ifname: string }[]).map((l) => l.ifname).sort();
    assert.deepEqual(links, ["eth0", "lo"], `${n.name}: only what the node had`);
    assert.equal(must(["nsenter", `--net=/run/netns/gz-${n.name}`, "iptables-save"]).includes("GAUZE"), false);
    assert.equal(existsSync(`${labDir(name)}/nodes/${n.name}/opt/cni/bin/gauze`), false);
    assert.equal(existsSync(`${labDir(name)}/nodes/${n.name}/etc/cni/net.d/10-gauze.conflist`), false);
    assert.equal(existsSync(`/sys/fs/bpf/gauze/${n.name}/observe`), false, `${n.name}: no eBPF pin of the observer left`);
  }
  const nodes = (JSON.parse(readFileSync(`${labDir(name)}/kube/nodes.json`, "utf8")) as { nodes: { metadata: { annotations: Record<string, string> } }[] }).nodes;
  assert.ok(nodes.every((n) => !Object.keys(n.metadata.annotations).some((k) => k.startsWith("gauze.dev/"))), "the leases (annotations) are released");
  assert.equal(podman(name, "ps", "-a", "--format", "{{.Names}}").trim(), "", "no container left");
});

test("lab down leaves no container, image storage, mount or namespace of the lab", () => {
  must([GAUZE, "lab", "down", "--name", name]);
  assert.equal(existsSync(labDir(name)), false);
  assert.equal(readFileSync("/proc/self/mountinfo", "utf8").includes(labDir(name)), false, "no mount under the lab's tree");
  assert.equal(sh(["podman", "ps", "-a", "--filter", `label=gauze.lab=${name}`, "--format", "{{.Names}}"]).stdout.trim(), "", "nothing in podman's own storage either");
  assert.ok(!must(["ip", "netns", "list"]).includes(`gz-${name}-`));
});

test("change the manifest and the lab runs the change: --mtu 1400 in the agent's args gives pods MTU 1400", { timeout: 120_000 }, () => {
  const dir = w.tempDir();
  const file = join(dir, "kube-gauze-mtu.yml");
  writeFileSync(file, readFileSync(MANIFEST, "utf8").replace("            - --health-addr\n", "            - --mtu\n            - \"1400\"\n            - --health-addr\n"));
  assert.ok(readFileSync(file, "utf8").includes("--mtu"));
  sh([GAUZE, "lab", "down", "--name", changed]);
  must([GAUZE, "lab", "up", "--name", changed, "--manifest", file]);
  must([GAUZE, "lab", "pod", "run", "p", "--node", "worker", "--name", changed]);
  const link = JSON.parse(must(["ip", "-n", `gz-${changed}-pod-p`, "-j", "link", "show", "eth0"])) as { mtu: number }[];
  assert.equal(link[0]!.mtu, 1400);
  // A manifest the lab cannot run is refused before anything is made.
  const bad = join(dir, "etcd.yml");
  writeFileSync(bad, must([GAUZE, "manifests", "--store", "etcd", "--etcd-endpoints", "http://172.18.0.1:2379"]));
  const r = sh([GAUZE, "lab", "up", "--name", `${changed}x`, "--manifest", bad]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /uses --store etcd; the lab serves the Kubernetes API, so it runs manifests with --store kube/);
  assert.equal(existsSync(labDir(`${changed}x`)), false);
});

test("lab demo --manifest: the whole journey with gauze installed from the manifest", { timeout: 120_000 }, () => {
  const demo = `${changed}d`;
  sh([GAUZE, "lab", "down", "--name", demo]);
  const r = sh([GAUZE, "lab", "demo", "--name", demo, "--manifest", MANIFEST, "--json"]);
  assert.equal(r.status, 0, r.stdout.slice(-2000) + r.stderr.slice(-2000));
  const report = JSON.parse(r.stdout) as { steps: { title: string; ok: boolean }[] };
  assert.ok(report.steps.every((s) => s.ok));
  assert.match(report.steps[1]!.title, /kubectl apply -f .*kube-gauze\.yml/);
  assert.equal(existsSync(labDir(demo)), false, "the demo removes its lab");
});
