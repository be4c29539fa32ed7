// A pod, a slow reader or another local user against the agent and the ui, each as a reproduction
// of what it did before: a pod spraying UDP to random ports (healthz stays quick, drift is still
// repaired at once, the agent's CPU stays bounded); live readers that never read (the agent's and
// the ui's memory stays bounded, the reader is told what it lost); the ui answering only its own
// Host, GET and this run's token, with doctor one at a time; hostile pod names from CNI_ARGS
// (kept out of the record, never reaching a terminal raw); pod records 0600 in a 0700 directory.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { connect, type Socket } from "node:net";
import { get } from "node:http";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { GAUZE, must, sh } from "./helpers.ts";

const lab = `t${process.pid % 1000}hd`;
const cp = `${lab}-control-plane`;
const wk = `${lab}-worker`;
const root = (node: string) => `/var/lib/gauze/lab/${lab}/nodes/${node}`;
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const kids: ChildProcess[] = [];

before(() => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "2"]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", cp, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", wk, "--name", lab]);
});
after(() => {
  for (const k of kids) if (k.pid) try { process.kill(k.pid, "SIGKILL"); } catch { /* gone */ }
  // The test's own namespace first: the last lab down unmounts /run/netns only when it is empty.
  sh(["ip", "netns", "del", `gz-${lab}-evil`]);
  sh([GAUZE, "lab", "down", "--name", lab]);
});

const status = () => JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { nodes: { name: string; subnet: string; agent?: { pid?: number } }[]; pods: { name: string; ip: string }[] };
const podIp = (p: string) => status().pods.find((x) => x.name === p)!.ip;
const agentPid = (node: string) => status().nodes.find((n) => n.name === node)!.agent!.pid!;
function usage(pid: number): { cpu: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { cpu: (Number(f[11]) + Number(f[12])) / 100, rssMb: Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024 };
}
function flood(rate: number, seconds: number, port?: number): Promise<void> {
  const p = spawn("nsenter", [`--net=/run/netns/gz-${lab}-pod-a`, GAUZE, "lab", "udp-flood", "--to", podIp("b"), "--rate", String(rate), "--seconds", String(seconds), ...(port ? ["--port", String(port)] : [])], { stdio: "ignore" });
  kids.push(p);
  return new Promise((r) => p.on("close", () => r()));
}
function probe(node: string, seconds: number): Promise<{ n: number; failed: number; p50: number; p99: number; max: number }> {
  const p = spawn("nsenter", [`--net=/run/netns/gz-${node}`, GAUZE, "lab", "http-probe", "http://127.0.0.1:9317/healthz", "--every", "20", "--seconds", String(seconds)], { stdio: ["ignore", "pipe", "ignore"] });
  kids.push(p);
  let out = "";
  p.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve) => p.on("close", () => resolve(JSON.parse(out))));
}

test("a pod sending 10 000 datagrams a second to random ports: healthz answers, a deleted route is back at once, the agent's CPU stays bounded", async () => {
  const pid = agentPid(wk);
  const before = usage(pid);
  const health = probe(wk, 8);
  const sent = flood(10_000, 8);
  await wait(4000);
  // A peer route on the receiving node, deleted by hand mid-flood.
  const peer = status().nodes.find((n) => n.name === cp)!.subnet;
  must(["ip", "-n", `gz-${wk}`, "route", "del", peer]);
  const t0 = Date.now();
  while (Date.now() - t0 < 3000 && !must(["ip", "-n", `gz-${wk}`, "route", "show", peer]).includes(peer)) await wait(10);
  const repairMs = Date.now() - t0;
  const [h] = await Promise.all([health, sent]);
  const after = usage(pid);
  // Before the fix: p99 2 s with probes failing, the route back after 5-7 s, the agent using a whole core.
  assert.ok(repairMs < 1000, `the route came back after ${repairMs} ms`);
  assert.equal(h.failed, 0, `healthz failed ${h.failed} of ${h.n} times (p99 ${h.p99} ms)`);
  // The bound (this file runs alone: no other test's load in the figure).
  assert.ok(h.p99 < 100, `healthz p99 ${h.p99} ms (max ${h.max})`);
  assert.ok(after.cpu - before.cpu < 0.85 * 8, `the agent used ${(after.cpu - before.cpu).toFixed(1)} s of CPU in 8 s`);
  const metrics = must(["nsenter", `--net=/run/netns/gz-${wk}`, GAUZE, "lab", "http-get", "http://127.0.0.1:9317/metrics"]);
  assert.match(metrics, /gauze_observer_lost_events_total\{[^}]*\} [1-9]/, "what it shed is counted as lost");
});

/** A live /v1/flows reader on a node's agent socket that reads nothing until told to. */
function follower(node: string): { sock: Socket; text: () => string; read: () => void } {
  const sock = connect(`${root(node)}/run/gauze/agent.sock`);
  sock.write("GET /v1/flows?last=0&follow=1 HTTP/1.1\r\nHost: agent\r\n\r\n");
  sock.pause();
  let text = "";
  return { sock, text: () => text, read: () => { sock.on("data", (d: Buffer) => { text += d.toString(); }); sock.resume(); } };
}

test("live readers that never read: the agent's memory stays bounded; a reader that falls behind is told how many events it lost; at most 16 readers", async () => {
  const pid = agentPid(cp);
  const rss0 = usage(pid).rssMb;
  const slow = Array.from({ length: 5 }, () => follower(cp));
  await wait(300);
  await flood(3000, 8);
  const rss1 = usage(pid).rssMb;
  assert.ok(rss1 - rss0 < 100, `the agent grew from ${rss0.toFixed(0)} to ${rss1.toFixed(0)} MB with 5 readers not reading`);
  slow[0]!.read();
  await flood(200, 2, 9999);
  await wait(500);
  assert.match(slow[0]!.text(), /\{"lost":\d+\}/, "the reader that fell behind is told");
  const more = Array.from({ length: 12 }, () => follower(cp));
  const extra = follower(cp);
  extra.read();
  for (let i = 0; i < 30 && !/too many live readers/.test(extra.text()); i++) await wait(100);
  assert.match(extra.text(), /^HTTP\/1\.1 503[\s\S]*too many live readers on this node \(16\)/);
  for (const f of [...slow, ...more, extra]) f.sock.destroy();
});

test("gauze ui answers only its own Host, GET and this run's token; doctor runs one at a time; pages that never read stay bounded", async () => {
  const port = 12600 + (process.pid % 300);
  const ui = spawn(GAUZE, ["ui", "--name", lab, "--port", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  kids.push(ui);
  const url = await new Promise<string>((resolve) => ui.stdout!.on("data", (d: Buffer) => { const m = /http:\/\/\S+/.exec(d.toString()); if (m) resolve(m[0]); }));
  const token = new URL(url).searchParams.get("token")!;
  assert.match(token, /^[0-9a-f]{48}$/);
  const base = `http://127.0.0.1:${port}`;
  const get = async (path: string, init: RequestInit = {}) => { const r = await fetch(base + path, init); return { status: r.status, body: await r.text() }; };
  // DNS rebinding: a page on evil.example that resolved to 127.0.0.1.
  const rebound = sh(["node", "-e", `require("http").get({ host: "127.0.0.1", port: ${port}, path: "/api/state?token=${token}", headers: { host: "evil.example" } }, (r) => console.log(r.statusCode))`]);
  assert.equal(rebound.stdout.trim(), "403");
  assert.equal((await get(`/api/state?token=${token}`, { method: "POST" })).status, 405);
  assert.equal((await get(`/api/state?token=${token}`, { method: "DELETE" })).status, 405);
  assert.equal((await get("/api/state")).status, 403);
  assert.equal((await get(`/api/state?token=${"0".repeat(48)}`)).status, 403);
  const state = await get(`/api/state?token=${token}`);
  assert.equal(state.status, 200);
  assert.ok((JSON.parse(state.body) as { nodes: unknown[] }).nodes.length === 2);
  // Another local user, without the token the ui printed to its own user's terminal.
  for (const path of ["/api/packets?node=" + cp, "/api/events"]) {
    const nobody = sh(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", process.execPath, "-e", `fetch("${base}${path}").then((r) => { console.log(r.status); process.exit(0); })`]);
    assert.equal(nobody.stdout.trim(), "403", `${path} as nobody: ${nobody.stderr}`);
  }
  // Ten doctors at once: one runs, the others are told to wait; the ui keeps answering meanwhile.
  const doctors = Array.from({ length: 10 }, () => get(`/api/doctor?node=${cp}&token=${token}`));
  const t0 = performance.now();
  assert.equal((await get(`/api/state?token=${token}`)).status, 200);
  assert.ok(performance.now() - t0 < 1000, "the ui answers while doctor runs");
  const codes = (await Promise.all(doctors)).map((d) => d.status).sort();
  assert.equal(codes.filter((c) => c === 200).length, 1, codes.join(","));
  assert.equal(codes.filter((c) => c === 429).length, 9);
  // 40 pages that never read: 32 are served, the rest refused; memory stays bounded under traffic.
  const uiRss0 = usage(ui.pid!).rssMb;
  const pages: Socket[] = [];
  const answers: string[] = [];
  for (let i = 0; i < 40; i++) {
    const s = connect(port, "127.0.0.1");
    s.write(`GET /api/events?token=${token} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    s.once("data", (d: Buffer) => { answers.push(d.toString().split("\r\n")[0]!); s.pause(); });
    pages.push(s);
  }
  await flood(3000, 6);
  const uiRss1 = usage(ui.pid!).rssMb;
  assert.equal(answers.filter((a) => a.includes(" 200 ")).length, 32);
  assert.equal(answers.filter((a) => a.includes(" 503 ")).length, 8);
  assert.ok(uiRss1 - uiRss0 < 150, `the ui grew from ${uiRss0.toFixed(0)} to ${uiRss1.toFixed(0)} MB with 32 pages not reading`);
  for (const s of pages) s.destroy();
  ui.kill("SIGINT");
});

test("hostile pod names from CNI_ARGS stay out of the pod record and never reach a terminal raw; records are 0600 in a 0700 directory", async () => {
  const ns = `gz-${lab}-evil`;
  must(["ip", "netns", "add", ns]);
  const conflist = JSON.parse(readFileSync(`${root(wk)}/etc/cni/net.d/10-gauze.conflist`, "utf8")) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  const conf = JSON.stringify({ cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] });
  const evil = "evil\nJan 01 00:00:00.000 [forged] default/x -> default/y FORWARDED\u001b[2J\u001b[31mpwned\u0007" + "x".repeat(20_000);
  const cni = (command: string, args: string) => sh(["nsenter", `--net=/run/netns/gz-${wk}`, GAUZE], {
    input: conf, env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: "hostile1", CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: "eth0", CNI_PATH: `${root(wk)}/opt/cni/bin`, CNI_ARGS: args },
  });
  const add = cni("ADD", `IgnoreUnknown=1;K8S_POD_NAMESPACE=../../etc;K8S_POD_NAME=${evil}`);
  assert.equal(add.status, 0, add.stdout + add.stderr);
  assert.match(add.stderr, /K8S_POD_NAME "evil\\\\x0aJan 01.*" is not a valid Kubernetes name/);
  const dir = `${root(wk)}/run/gauze/pods`;
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const file = readdirSync(dir).find((f) => f.startsWith("hostile1"))!;
  assert.equal(statSync(`${dir}/${file}`).mode & 0o777, 0o600);
  const rec = JSON.parse(readFileSync(`${dir}/${file}`, "utf8")) as { pod?: string; namespace?: string; ips: string[] };
  assert.deepEqual([rec.pod, rec.namespace], [undefined, undefined]);
  // A record planted by hand with a name no runtime could give: the agent leaves the name out too.
  const evilIp = rec.ips[0]!.split("/")[0]!;
  writeFileSync(`${dir}/planted-eth0.json`, JSON.stringify({ pod: "x\u001b[31my", namespace: "default", containerId: "planted", ifname: "eth0", netns: "/x", ips: ["10.244.99.9/24"] }));
  assert.equal(sh(["nsenter", `--net=/run/netns/${ns}`, "ping", "-c", "3", "-i", "0.2", "-W", "1", podIp("a")]).status, 0);
  let out = "";
  for (let i = 0; i < 20 && !/container hostile1 -> default\/a icmp/.test(out); i++) {
    await wait(300);
    // Filtered to the hostile pod's address: the flood test before this one leaves thousands of
    // UDP flows in the window, and their ICMP port-unreachable answers go on a while. The ping
    // comes right after that flood: seen only because a flooding pod takes just its share of the
    // observer's new flows a second (a ping there went unseen when it could take them all).
    out = must([GAUZE, "observe", "--name", lab, "--ip", evilIp, "--last", "200"]);
  }
  assert.match(out, /container hostile1 -> default\/a icmp/, `the hostile pod's traffic is shown, by its container: ${out.slice(-1500)}`);
  assert.doesNotMatch(out, /[\u0000-\u0008\u000b-\u001f\u007f]/, "no control character reaches the terminal");
  assert.doesNotMatch(out, /^Jan 01 00:00:00\.000 \[forged\]/m, "no forged line");
  const pods = await new Promise<Record<string, string>>((resolve) => get({ socketPath: `${root(wk)}/run/gauze/agent.sock`, path: "/v1/pods" }, (r) => {
    let body = "";
    r.on("data", (d: Buffer) => { body += d.toString(); });
    r.on("end", () => resolve(JSON.parse(body) as Record<string, string>));
  }));
  assert.equal(pods["10.244.99.9"], "container planted", "the planted record's name is left out");
  assert.match(pods[evilIp] ?? "", /^container hostile1/);
  assert.equal(cni("DEL", "IgnoreUnknown=1").status, 0);
  sh(["rm", "-f", `${dir}/planted-eth0.json`]);
});
