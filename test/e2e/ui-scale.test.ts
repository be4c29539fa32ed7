// The web view at 8 and 30 nodes, in the browser: every node drawn once; at 8 nodes, with pings
// between every pair of nodes lighting their edges, no edge label overlaps another label or a
// node (a label with no free spot moves to its line's tooltip); at 30 nodes the names do not
// overlap either. Screenshots in artifacts/ui/ (8-nodes.png, 30-nodes.png). Labs t<pid>u8 and
// t<pid>u30, removed after.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { GAUZE, ROOT, must, sh } from "./helpers.ts";

const labs = [`t${process.pid % 1000}u8`, `t${process.pid % 1000}u30`];
const shots = join(ROOT, "artifacts", "ui");
let browser: Browser;
const uis: ChildProcess[] = [];
const pageErrors: string[] = [];

before(async () => {
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  for (const u of uis) u.kill("SIGINT");
  for (const l of labs) sh([GAUZE, "lab", "down", "--name", l]);
});

async function openUi(lab: string, port: number): Promise<Page> {
  const ui = spawn(GAUZE, ["ui", "--name", lab, "--port", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  uis.push(ui);
  const url = await new Promise<string>((resolve, reject) => {
    ui.stdout!.on("data", (d: Buffer) => { const m = /http:\/\/\S+/.exec(d.toString()); if (m) resolve(m[0]); });
    ui.on("exit", (c) => reject(new Error(`gauze ui exited ${c}`)));
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  // A script error on the page fails the test that made it (the view would be silently stale).
  page.on("pageerror", (e) => { pageErrors.push(e.message); });
  await page.goto(url);
  return page;
}

type Box = { x: number; y: number; width: number; height: number };
const overlap = (a: Box, b: Box) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
/** Screen boxes of the elements a selector finds (getBoundingClientRect: what the user sees). */
const boxes = (page: Page, sel: string) => page.$$eval(sel, (els) => els.map((e) => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height, what: e.textContent ?? "" }; }));

test("8 nodes: pings between every pair light the edges; no edge label overlaps another label or a node", { timeout: 120_000 }, async () => {
  const lab = labs[0]!;
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "8"]);
  const st = JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { nodes: { name: string }[] };
  for (const [i, n] of st.nodes.entries()) must([GAUZE, "lab", "pod", "run", `p${i}`, "--node", n.name, "--name", lab]);
  const pods = (JSON.parse(must([GAUZE, "lab", "status", "--name", lab, "--json"])) as { pods: { name: string; ip: string }[] }).pods;
  const page = await openUi(lab, 12600 + (process.pid % 300));
  await page.waitForSelector("g.node", { timeout: 5000 });
  assert.equal((await page.$$("g.node")).length, 8);
  // Every pair at once (each ping in the background), twice over 3 s so the edges stay lit.
  const script = pods.flatMap((a) => pods.filter((b) => b !== a).map((b) => `nsenter --net=/run/netns/gz-${lab}-pod-${a.name} ping -c 3 -i 0.5 -W 1 ${b.ip} >/dev/null &`)).join(" ") + " wait";
  const pinging = spawn("sh", ["-c", script]);
  // Listened for at once: the pings may end while the checks below run.
  const pinged = new Promise((r) => pinging.on("close", r));
  await page.waitForFunction(() => ((globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll("line.edge.active").length >= 20), undefined, { timeout: 8000 });
  await page.screenshot({ path: join(shots, "8-nodes.png") });
  assert.deepEqual(pageErrors, [], "no script error on the page");
  const labels = await boxes(page, "text.edge-label");
  // A node's zone: its circle, its texts (name, subnet, VTEP line) and its pods.
  const nodes = await boxes(page, "g.node circle, g.node text, g.pod circle");
  assert.ok(labels.length >= 3, `some labels are drawn (${labels.length})`);
  for (const [i, a] of labels.entries()) {
    for (const b of labels.slice(i + 1)) assert.ok(!overlap(a, b), `labels overlap: "${a.what}" and "${b.what}"`);
    for (const c of nodes) assert.ok(!overlap(a, c), `label "${a.what}" covers a node or a pod (${c.what || "a circle"})`);
  }
  // Every lit edge carries its whole figures as a tooltip (the map has room for a few labels only).
  const active = (await page.$$("line.edge.active")).length;
  const titled = await page.$$eval("line.edge.active > title", (ts) => ts.map((t) => t.textContent ?? ""));
  assert.equal(titled.length, active);
  assert.ok(titled.every((t) => /pkt\/s, .*B\/s wire, .*B\/s pods, \+\d+\.\d%/.test(t)), titled[0]);
  // No node's words under a pod bubble (the VTEP line was); with 8 nodes the VTEP is a tooltip.
  const podBoxes = await boxes(page, "g.pod circle");
  for (const v of await boxes(page, "g.node > text")) {
    for (const p of podBoxes) assert.ok(!overlap(v, p), `"${v.what}" is under a pod bubble`);
  }
  assert.match(await page.textContent(`g.node[data-node="${st.nodes[0]!.name}"] > title`) ?? "", /VTEP 0e:/);
  await page.screenshot({ path: join(shots, "8-nodes.png") });
  await pinged;
});

test("30 nodes: every node drawn once, small, with names that overlap no other name or node", { timeout: 120_000 }, async () => {
  const lab = labs[1]!;
  sh([GAUZE, "lab", "down", "--name", lab]);
  must([GAUZE, "lab", "up", "--name", lab, "--nodes", "30"]);
  const page = await openUi(lab, 12900 + (process.pid % 300));
  await page.waitForFunction(() => ((globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll("g.node").length === 30), undefined, { timeout: 8000 });
  await page.screenshot({ path: join(shots, "30-nodes.png") });
  assert.deepEqual(pageErrors, [], "no script error on the page");
  // Names outside the ring where they fit; a node whose name found no free spot has it as its tooltip.
  const names = await boxes(page, "text.name");
  const titled = (await page.$$("g.node > title")).length;
  assert.equal(names.length + titled, 30, `${names.length} names + ${titled} tooltips`);
  assert.ok(names.length >= 24, `most names are on the map (${names.length} of 30)`);
  const circles = await boxes(page, "g.node circle");
  for (const [i, a] of names.entries()) {
    for (const b of names.slice(i + 1)) assert.ok(!overlap(a, b), `names overlap: "${a.what}" and "${b.what}"`);
    for (const c of circles) assert.ok(!overlap(a, c), `name "${a.what}" covers a node`);
  }
});
