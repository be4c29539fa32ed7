// The web view's one page: markup, style and script inline (gauze serves every byte; nothing
// comes from the internet). Plain DOM and SVG, no framework: the page subscribes to
// /api/events and redraws what changed.
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gauze</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='4' cy='8' r='3' fill='%230969da'/%3E%3Ccircle cx='12' cy='8' r='3' fill='%230969da'/%3E%3Cpath d='M4 8h8' stroke='%231a7f37' stroke-width='2'/%3E%3C/svg%3E">
<style>
  :root { --ok: #1a7f37; --bad: #cf222e; --muted: #6e7781; --edge: #8c959f; --wire: #0969da; }
  body { font: 13px/1.4 system-ui, sans-serif; margin: 0; color: #1f2328; display: grid; grid-template-columns: 1fr 440px; grid-template-rows: auto 1fr auto; height: 100vh; }
  header { grid-column: 1 / 3; padding: 8px 14px; border-bottom: 1px solid #d0d7de; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0; }
  #topology { grid-row: 2; overflow: hidden; }
  #side { grid-row: 2 / 4; border-left: 1px solid #d0d7de; overflow: auto; padding: 8px; }
  #flowsbox { grid-column: 1; border-top: 1px solid #d0d7de; max-height: 34vh; overflow: auto; }
  table { border-collapse: collapse; width: 100%; font: 12px ui-monospace, monospace; }
  td, th { padding: 2px 6px; text-align: left; white-space: nowrap; }
  td.tun { white-space: normal; min-width: 12em; }
  tr.flow { cursor: pointer; }
  tr.flow:hover { background: #f6f8fa; }
  tr.dropped td { color: var(--bad); font-weight: 600; }
  .node circle { fill: #fff; stroke: var(--ok); stroke-width: 3; }
  .node[data-ready="false"] circle { stroke: var(--bad); stroke-dasharray: 5 3; }
  .node text { font-size: 12px; text-anchor: middle; }
  .node .sub { fill: var(--muted); font-size: 10px; }
  .pod circle { fill: #ddf4ff; stroke: var(--wire); }
  .pod text { font-size: 10px; text-anchor: middle; }
  .edge { stroke: var(--edge); stroke-width: 1.5; }
  .edge.active { stroke: var(--wire); stroke-width: 4; }
  .edge.dropping { stroke: var(--bad); stroke-width: 4; stroke-dasharray: 6 4; }
  .edge-label { font-size: 10px; fill: var(--muted); text-anchor: middle; }
  .edge-label.active { fill: var(--wire); font-weight: 600; }
  .edge-label.dropping { fill: var(--bad); font-weight: 600; }
  .layer { border: 1px solid #d0d7de; border-radius: 4px; margin: 2px 0 2px calc(var(--depth) * 16px); padding: 2px 6px; font: 12px ui-monospace, monospace; }
  .layer b { display: inline-block; min-width: 60px; }
  .check.fail { color: var(--bad); } .check.warn { color: #9a6700; } .check.ok { color: var(--ok); }
  h2 { font-size: 13px; margin: 12px 0 4px; }
  .muted { color: var(--muted); }
</style>
</head>
<body>
<header><h1>gauze</h1><span id="labinfo" class="muted">connecting…</span><span id="status" class="muted"></span></header>
<div id="topology"><svg id="map" width="100%" height="100%" viewBox="0 0 900 560" preserveAspectRatio="xMidYMid meet"></svg></div>
<div id="side">
  <h2>Flow</h2><div id="packet" class="muted">Click a flow to see its last packets, layer by layer.</div>
  <h2>Doctor</h2><div id="doctor" class="muted">Click a node to run doctor on it.</div>
  <div id="benchbox" hidden><h2>The overlay tax (gauze lab bench)</h2><img id="bench" alt="bench chart" style="width:100%"></div>
</div>
<div id="flowsbox"><table><thead><tr><th>time</th><th>node</th><th>from</th><th>to</th><th>what</th><th>where</th><th>verdict</th><th>bytes</th><th>tunnel</th></tr></thead><tbody id="flows"></tbody></table></div>
<script>
"use strict";
const svg = document.getElementById("map");
const NS = "http://www.w3.org/2000/svg";
let state = null;
const pos = new Map();
const edgeSeen = new Map();
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
function el(tag, attrs, parent) { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (parent) parent.appendChild(e); return e; }
function human(n) { return n >= 1e9 ? (n / 1e9).toFixed(1) + " G" : n >= 1e6 ? (n / 1e6).toFixed(1) + " M" : n >= 1e3 ? (n / 1e3).toFixed(1) + " k" : String(Math.round(n)) + " "; }

/**
 * Where an edge's label goes: along the edge (the middle first, then either side), on a spot
 * that overlaps no label placed before it and no node with its pods; undefined when there is none.
 */
let placed = [];
function labelSpot(x1, y1, x2, y2, w, n) {
  const h = 12, nodeR = n > 6 ? 60 : 90;
  for (const t of [0.5, 0.38, 0.62, 0.28, 0.72]) {
    const x = x1 + (x2 - x1) * t, y = y1 + (y2 - y1) * t - 4;
    const box = [x - w / 2, y - h + 2, x + w / 2, y + 2];
    const hits = placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])
      || [...pos.values()].some(([px, py]) => Math.hypot(Math.max(box[0], Math.min(px, box[2])) - px, Math.max(box[1], Math.min(py, box[3])) - py) < nodeR);
    if (!hits) { placed.push(box); return [x, y]; }
  }
  return undefined;
}

function draw() {
  if (!state) return;
  svg.textContent = "";
  placed = [];
  const n = state.nodes.length, cx = 450, cy = 280, R = n <= 1 ? 0 : Math.min(230, 90 + n * 14);
  const small = n > 12;
  state.nodes.forEach((node, i) => { const a = (2 * Math.PI * i) / Math.max(1, n) - Math.PI / 2; pos.set(node.name, [cx + R * Math.cos(a), cy + R * Math.sin(a)]); });
  const edges = el("g", {}, svg);
  for (const e of state.edges) {
    const [x1, y1] = pos.get(e.a), [x2, y2] = pos.get(e.b);
    const key = e.a < e.b ? e.a + "|" + e.b : e.b + "|" + e.a;
    const seen = edgeSeen.get(key);
    const live = seen && Date.now() - seen.at < 4000;
    const cls = "edge" + (live && seen.drops ? " dropping" : live ? " active" : "");
    // Every pair has a path; with many nodes the idle ones fade so that the live ones stand out.
    el("line", { class: cls, x1, y1, x2, y2, "data-edge": key, "data-pps": live ? seen.pps : 0, "data-drops": live ? seen.drops : 0, ...(!live && n > 6 ? { "stroke-opacity": String(Math.max(0.08, 6 / (n * n))) } : {}) }, edges);
    if (live && !small) {
      const text = seen.drops ? seen.drops + " dropped/s" : seen.pps + " pkt/s, " + human(seen.outer) + "B/s wire, " + human(seen.inner) + "B/s pods" + (seen.outer > seen.inner ? ", +" + ((100 * (seen.outer - seen.inner)) / seen.outer).toFixed(1) + "%" : "");
      const at = labelSpot(x1, y1, x2, y2, text.length * 5.6, n);
      const line = edges.lastChild;
      if (at) {
        const t = el("text", { class: "edge-label " + (seen.drops ? "dropping" : "active"), x: at[0], y: at[1], "data-edge": key }, edges);
        t.textContent = text;
      } else {
        // No free spot on this edge: the figures stay on the line's tooltip.
        const title = el("title", {}, line); title.textContent = text;
      }
    }
  }
  for (const node of state.nodes) {
    const [x, y] = pos.get(node.name);
    const g = el("g", { class: "node", "data-node": node.name, "data-ready": String(node.ready), transform: "translate(" + x + "," + y + ")" }, svg);
    g.addEventListener("click", () => runDoctor(node.name));
    el("circle", { r: small ? 16 : 42 }, g);
    const podCount = state.pods.filter((p) => p.node === node.name).length;
    const t = el("text", { y: small ? 28 : -48 }, g); t.textContent = node.name.replace(state.lab + "-", "") + (small && podCount ? " (" + podCount + ")" : "");
    if (!small) {
      const s1 = el("text", { class: "sub", y: -2 }, g); s1.textContent = node.subnet || "no subnet";
      const s2 = el("text", { class: "sub", y: 11 }, g); s2.textContent = node.ready ? "Ready" : "NotReady";
      if (node.vtepMac) { const s3 = el("text", { class: "sub", y: 58 }, g); s3.textContent = "VTEP " + node.vtepMac; }
      if (!node.agentUp) { const s4 = el("text", { class: "sub", y: 70, fill: "#cf222e" }, g); s4.textContent = "agent down"; }
    }
    const pods = state.pods.filter((p) => p.node === node.name);
    pods.slice(0, small ? 0 : 8).forEach((p, j) => {
      // Around the node, the bottom sector left free for the VTEP line.
      const gap = Math.PI / 2.5, a = Math.PI / 2 + gap / 2 + ((2 * Math.PI - gap) * (j + 0.5)) / Math.max(1, Math.min(8, pods.length)), r = 70;
      const pg = el("g", { class: "pod", "data-pod": p.name, "data-node": node.name, transform: "translate(" + (x + r * Math.cos(a)) + "," + (y + r * Math.sin(a)) + ")" }, svg);
      el("circle", { r: 13 }, pg);
      const pt = el("text", { y: 3 }, pg); pt.textContent = p.name.slice(0, 6);
      const title = el("title", {}, pg); title.textContent = p.name + " " + (p.ip || "") + " " + p.phase;
    });
  }
  document.getElementById("labinfo").textContent = "lab " + state.lab + ": " + state.nodes.length + " nodes, " + state.pods.length + " pods, backend " + state.backend + ", pod network " + state.podCidr;
}

const rows = document.getElementById("flows");
function what(f) {
  if (f.icmp) return f.protocol + (f.icmp.type === 8 || f.icmp.type === 128 ? " echo-request" : f.icmp.type === 0 || f.icmp.type === 129 ? " echo-reply" : " type " + f.icmp.type);
  return f.protocol + (f.destination.port ? ":" + f.destination.port : "") + (f.tcpFlags && f.tcpFlags.length ? " " + f.tcpFlags.join(",") : "");
}
function addFlow(f) {
  const tr = document.createElement("tr");
  tr.className = "flow " + f.verdict;
  tr.dataset.srcPod = f.source.pod || ""; tr.dataset.dstPod = f.destination.pod || ""; tr.dataset.reason = f.dropReason || ""; tr.dataset.policy = f.policy ? f.policy.name || "" : ""; tr.dataset.point = f.observationPoint; tr.dataset.node = f.node;
  const t = new Date(f.time).toISOString().slice(11, 23);
  const tun = f.tunnel ? "vni " + f.tunnel.vni + " " + f.tunnel.outer.source + "→" + f.tunnel.outer.destination + " +" + f.tunnel.overheadBytes + " B" : "";
  tr.innerHTML = "<td>" + t + "</td><td>" + esc(f.node.replace(state ? state.lab + "-" : "", "")) + "</td><td>" + esc(f.source.pod || f.source.ip) + "</td><td>" + esc(f.destination.pod || f.destination.ip) + "</td><td>" + esc(what(f)) + "</td><td>" + esc(f.observationPoint + " " + f.interface.name) + "</td><td>" + (f.verdict === "dropped" ? "DROPPED " + esc(f.policy ? f.policy.reason : f.dropReason || "") : f.verdict === "audit" ? "AUDIT " + esc(f.policy ? f.policy.reason : "") : "forwarded") + "</td><td>" + f.bytes + "</td><td class='tun'>" + esc(tun) + "</td>";
  tr.addEventListener("click", () => showPackets(f));
  rows.insertBefore(tr, rows.firstChild);
  while (rows.children.length > 200) rows.removeChild(rows.lastChild);
}

async function showPackets(f) {
  const box = document.getElementById("packet");
  box.textContent = "loading…";
  const proto = { icmp: 1, tcp: 6, udp: 17, icmp6: 58 }[f.protocol];
  const q = new URLSearchParams({ node: f.node, src: f.source.ip, dst: f.destination.ip, point: f.observationPoint });
  if (proto) q.set("proto", proto);
  q.set("token", TOKEN);
  const r = await fetch("/api/packets?" + q);
  const list = await r.json();
  if (!Array.isArray(list) || !list.length) { box.textContent = list.error || "no packets of this flow are kept any more"; return; }
  box.innerHTML = list.map((p) => "<div class='pkt'><div class='muted'>" + new Date(p.time).toISOString().slice(11, 23) + " " + esc(p.point + " " + p.interface) + ", " + p.wireLen + " B on the wire" +
    (p.tunnel ? ", <b>outer IP " + p.tunnel.outerIpLen + " B, inner IP " + p.tunnel.innerIpLen + " B, +" + p.tunnel.overheadBytes + " B (" + ((100 * p.tunnel.overheadBytes) / p.tunnel.outerIpLen).toFixed(1) + "%)</b>" : "") + "</div>" +
    p.layers.map((l) => "<div class='layer' data-layer='" + l.layer + "' style='--depth:" + l.depth + "'><b>" + esc(l.layer) + "</b> " + l.headerBytes + " B &nbsp; " + esc(l.text) + "</div>").join("") + "</div>").join("<hr>");
}

async function runDoctor(node) {
  const box = document.getElementById("doctor");
  box.textContent = "running doctor on " + node + "…";
  const r = await (await fetch("/api/doctor?node=" + encodeURIComponent(node) + "&token=" + encodeURIComponent(TOKEN))).json();
  if (!r.checks) { box.textContent = r.error || "doctor gave no report"; return; }
  box.innerHTML = "<div class='muted'>" + esc(node) + "</div>" + r.checks.filter((c) => c.status !== "skip").sort((a, b) => ({ fail: 0, warn: 1, ok: 2 })[a.status] - ({ fail: 0, warn: 1, ok: 2 })[b.status]).map((c) => "<div class='check " + c.status + "' data-check='" + c.id + "'>" + (c.status === "ok" ? "✔" : c.status === "warn" ? "!" : "✖") + " " + esc(c.id) + ": " + esc((c.evidence || [])[0] || "") + "</div>").join("");
}

// The per-run token gauze ui printed with the URL: every API call carries it.
const TOKEN = new URLSearchParams(location.search).get("token") || "";
if (!TOKEN) document.getElementById("status").textContent = "open the URL gauze ui printed: it carries the token this page needs";
const es = new EventSource("/api/events?token=" + encodeURIComponent(TOKEN));
es.addEventListener("state", (m) => {
  const s = JSON.parse(m.data);
  if (s.bench) { document.getElementById("benchbox").hidden = false; document.getElementById("bench").src = "/bench.svg?token=" + encodeURIComponent(TOKEN); }
  state = s; draw();
});
es.addEventListener("flow", (m) => addFlow(JSON.parse(m.data)));
es.addEventListener("edges", (m) => {
  for (const e of JSON.parse(m.data)) edgeSeen.set(e.a + "|" + e.b, { at: Date.now(), pps: e.packets, outer: e.outerBytes, inner: e.innerBytes, drops: e.drops });
  draw();
});
es.addEventListener("lost", (m) => { const d = JSON.parse(m.data); document.getElementById("status").textContent = d.lost + " events lost on " + d.node; });
es.addEventListener("node-down", (m) => { const d = JSON.parse(m.data); document.getElementById("status").textContent = d.node + ": " + d.why; });
es.onerror = () => { document.getElementById("status").textContent = "disconnected from gauze ui; retrying"; };
</script>
</body>
</html>
`;
