// The web view in a real browser (Debian's chromium, driven by playwright-core): the lab's nodes
// and pods render; a ping makes its flow appear on the right edge within 2 s, with the wire's
// and the pods' bytes; `lab break forward-drop` makes a red dropped flow with the kernel's reason
// appear; a flow opens as its packets layer by layer (VXLAN inside, +50 bytes); a node opens its
// doctor report; the bench chart is shown. Screenshots are kept in artifacts/ui/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { GAUZE, ROOT, must, sh } from "./helpers.ts";

const lab = `t${process.pid % 1000}ui`;
const cp = `${lab}-control-plane`;
const wk = `${lab}-worker`;
const port = 12100 + (process.pid % 500);
const shots = join(ROOT, "artifacts", "ui");
let ui: ChildProcess;
/** The URL gauze ui printed: its address and this run's token. */
let uiUrl = "";
let browser: Browser;
let page: Page;
/** Script errors on the page (the view would go stale without a word): the last test checks there were none. */
const pageErrors: string[] = [];

before(async () => {
  sh([GAUZE, "lab", "down", "--name", lab]);
  // ui-ring.test.ts runs this file again with the agents on the packet ring (eBPF forced off).
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "2", ...(process.env.GAUZE_TEST_OBSERVER ? ["--observer", process.env.GAUZE_TEST_OBSERVER] : [])]);
  must([GAUZE, "lab", "pod", "run", "a", "--node", cp, "--name", lab]);
  must([GAUZE, "lab", "pod", "run", "b", "--node", wk, "--name", lab]);
  ui = spawn(GAUZE, ["ui", "--name", lab, "--port", String(port), "--bench", join(ROOT, "docs", "bench.svg")], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    ui.stdout!.on("data", (d: Buffer) => { const m = /http:\/\/\S+/.exec(d.toString()); if (m) { uiUrl = m[0]; resolve(); } });
    ui.on("exit", (c) => reject(new Error(`gauze ui exited ${c}`)));
  });
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (e) => { pageErrors.push(e.message); });
});
after(async () => {
  await browser?.close();
  ui?.kill("SIGINT");
  sh([GAUZE, "lab", "down", "--name", lab]);
});

const podIp = (name: string) => (JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string; ip: string }[] }).pods.find((p) => p.name === name)!.ip;
const ping = (from: string, to: string) => sh(["nsenter", `--net=/run/netns/gz-${lab}-pod-${from}`, "ping", "-c", "1", "-W", "1", to]);

test("the page draws the lab: both nodes Ready with their subnets, and their pods", async () => {
  await page.goto(uiUrl);
  await page.waitForSelector(`g.node[data-node="${wk}"]`, { timeout: 5000 });
  assert.deepEqual(await page.$$eval("g.node", (els) => els.map((e) => `${e.getAttribute("data-node")} ${e.getAttribute("data-ready")}`).sort()), [`${cp} true`, `${wk} true`]);
  assert.deepEqual(await page.$$eval("g.pod", (els) => els.map((e) => `${e.getAttribute("data-pod")} ${e.getAttribute("data-node")}`).sort()), [`a ${cp}`, `b ${wk}`]);
  assert.match(await page.textContent(`g.node[data-node="${cp}"]`) ?? "", /10\.244\.\d+\.0\/24/);
  await page.screenshot({ path: join(shots, "1-topology.png") });
});

test("the overlay tax chart from gauze lab bench is shown next to the live view", async () => {
  await page.waitForSelector("#benchbox:not([hidden]) img#bench", { timeout: 3000 });
  await page.waitForFunction(() => ((globalThis as unknown as { document: { getElementById(id: string): { naturalWidth: number } } }).document.getElementById("bench").naturalWidth > 0), undefined, { timeout: 3000 });
});

test("a ping's flow appears on the edge between the two nodes within 2 s, with wire and pod bytes", async () => {
  const t0 = Date.now();
  assert.equal(ping("a", podIp("b")).status, 0);
  const key = [cp, wk].sort().join("|");
  await page.waitForSelector(`line.edge.active[data-edge="${key}"]`, { timeout: 2000, state: "attached" }); // a vertical line has no width: "visible" would never hold
  // The edge may be lit by other traffic between the nodes already: the ping's own row is the proof.
  const row = `tr.flow.forwarded[data-src-pod="default/a"][data-dst-pod="default/b"][data-point="to-network"]`;
  await page.waitForSelector(row, { timeout: Math.max(1, 2000 - (Date.now() - t0)), state: "attached" });
  const ms = Date.now() - t0;
  assert.ok(ms < 2000, `${ms} ms`);
  assert.ok(Number(await page.getAttribute(`line.edge[data-edge="${key}"]`, "data-pps")) >= 1);
  // The label says what the tunnel costs: wire bytes over pod bytes (98+50 against 98 per frame).
  assert.match(await page.textContent(`text.edge-label[data-edge="${key}"]`) ?? "", /pkt\/s, .*B\/s wire, .*B\/s pods, \+\d+\.\d%/);
  await page.screenshot({ path: join(shots, "2-live-flow.png") });
});

test("clicking the flow shows its last packets layer by layer: VXLAN inside UDP, 50 bytes added", async () => {
  await page.click(`tr.flow.forwarded[data-src-pod="default/a"][data-point="to-network"]`);
  await page.waitForSelector("#packet .layer[data-layer='vxlan']", { timeout: 3000 });
  const layers = await page.$$eval("#packet .pkt:first-child .layer", (els) => els.map((e) => e.getAttribute("data-layer")));
  assert.deepEqual(layers, ["eth", "ipv4", "udp", "vxlan", "eth", "ipv4", "icmp"]);
  assert.match(await page.textContent("#packet") ?? "", /outer IP 134 B, inner IP 84 B, \+50 B/);
  await page.screenshot({ path: join(shots, "3-packet.png") });
});

test("a NetworkPolicy drop is a red flow that names the policy and why", async () => {
  const f = join(ROOT, "artifacts", "ui", `deny-${process.pid}.yml`);
  writeFileSync(f, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: default}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n");
  must([GAUZE, "lab", "apply", "-f", f, "--name", lab]);
  try {
    must([GAUZE, "policy", "status", "--wait", "10", "--name", lab]);
    ping("a", podIp("b"));
    const row = await page.waitForSelector(`tr.flow.dropped[data-policy="default/deny-all"][data-node="${wk}"]`, { timeout: 3000 });
    assert.match(await row.textContent() ?? "", /DROPPED dropped: policy default\/deny-all \(ingress isolated; no rule allows /);
    await page.screenshot({ path: join(shots, "4a-policy-dropped.png") });
  } finally {
    must([GAUZE, "lab", "delete", "-f", f, "--name", lab]);
    rmSync(f, { force: true });
  }
});

test("lab break forward-drop: a red dropped flow with the kernel's reason; doctor on the node names the fault", async () => {
  must([GAUZE, "lab", "break", "forward-drop", "--node", wk, "--name", lab]);
  try {
    ping("a", podIp("b"));
    const row = await page.waitForSelector(`tr.flow.dropped[data-reason="NETFILTER_DROP"][data-node="${wk}"]`, { timeout: 3000 });
    assert.match(await row.textContent() ?? "", /DROPPED NETFILTER_DROP/);
    // Red, as the page's style says (the browser's computed colour; tests have no DOM types).
    assert.equal(await row.$eval("td", (td) => (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(td).color), "rgb(207, 34, 46)");
    // Its detail pane says why first: the kernel's reason and where.
    await row.click();
    const why = await page.waitForSelector("#packet .why[data-verdict='dropped']", { timeout: 3000 });
    assert.match(await why.textContent() ?? "", new RegExp(`dropped at ${wk} \\S+ \\S+: NETFILTER_DROP`));
    await page.screenshot({ path: join(shots, "4-dropped.png") });
    await page.click(`g.node[data-node="${wk}"]`);
    await page.waitForSelector("#doctor .check.fail[data-check='filtering.forward']", { timeout: 10_000 });
    await page.screenshot({ path: join(shots, "5-doctor.png") });
  } finally {
    must([GAUZE, "lab", "fix", "--name", lab]);
  }
});

test("the page ran without a script error through all of the above", () => {
  assert.deepEqual(pageErrors, []);
});
