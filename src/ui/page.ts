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
  .node text, text.name { font-size: 12px; text-anchor: middle; }
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
  .why { color: var(--bad); font-weight: 600; margin-bottom: 4px; }
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
 * Text placed where it overlaps nothing placed before it: the first candidate spot whose
 * measured box (getBBox, the font as drawn) is free, or none (the text is removed; the caller
 * keeps the words in a tooltip). taken holds the boxes of what is on the map, in map units.
 */
function placeText(parent, attrs, text, spots, taken) {
  const t = el("text", attrs, parent);
  t.textContent = text;
  for (const [x, y, anchor] of spots) {
    t.setAttribute("x", x); t.setAttribute("y", y); t.style.textAnchor = anchor;
    const b = t.getBBox(), box = [b.x - 2, b.y - 1, b.x + b.width + 2, b.y + b.height + 1];
    if (!taken.some((o) => box[0] < o[2] && o[0] < box[2] && box[1] < o[3] && o[1] < box[3])) { taken.push(box); return t; }
  }
  t.remove();
  return undefined;
}
/** A drawn element's box in map units (its group's translation added). */
function boxOf(e, dx, dy) { const b = e.getBBox(); return [b.x + dx, b.y + dy, b.x + b.width + dx, b.y + b.height + dy]; }

function draw() {
  if (!state) return;
  svg.textContent = "";
  const small = state.nodes.length > 12;
  // Many small nodes: a taller map, so that the ring has room for each name beside its node.
  svg.setAttribute("viewBox", small ? "0 0 900 720" : "0 0 900 560");
  const n = state.nodes.length, cx = 450, cy = small ? 360 : 280, R = n <= 1 ? 0 : small ? 265 : Math.min(230, 90 + n * 14);
  state.nodes.forEach((node, i) => { const a = (2 * Math.PI * i) / Math.max(1, n) - Math.PI / 2; pos.set(node.name, [cx + R * Math.cos(a), cy + R * Math.sin(a)]); });
  // Lines under the nodes; the nodes drawn first, so that labels can keep clear of them.
  const edges = el("g", {}, svg), nodesLayer = el("g", {}, svg), labels = el("g", {}, svg);
  const taken = [];
  drawNodes(nodesLayer, small, cx, cy, taken);
  for (const e of state.edges) {
    const [x1, y1] = pos.get(e.a), [x2, y2] = pos.get(e.b);
    const key = e.a < e.b ? e.a + "|" + e.b : e.b + "|" + e.a;
    const seen = edgeSeen.get(key);
    const live = seen && Date.now() - seen.at < 4000;
    const cls = "edge" + (live && seen.drops ? " dropping" : live ? " active" : "");
    // Every pair has a path; with many nodes the idle ones fade so that the live ones stand out.
    const line = el("line", { class: cls, x1, y1, x2, y2, "data-edge": key, "data-pps": live ? seen.pps : 0, "data-drops": live ? seen.drops : 0, ...(!live && n > 6 ? { "stroke-opacity": String(Math.max(0.08, 6 / (n * n))) } : {}) }, edges);
    if (live && !small) {
      const tax = seen.outer > seen.inner ? "+" + ((100 * (seen.outer - seen.inner)) / seen.outer).toFixed(1) + "%" : "";
      const full = seen.drops ? seen.drops + " dropped/s" : seen.pps + " pkt/s, " + human(seen.outer) + "B/s wire, " + human(seen.inner) + "B/s pods" + (tax ? ", " + tax : "");
      // The whole figures on the line's tooltip; on the map, short ones where many edges share it.
      const title = el("title", {}, line); title.textContent = full;
      const text = n <= 4 || seen.drops ? full : seen.pps + " pkt/s " + tax;
      const spots = [0.5, 0.4, 0.6, 0.32, 0.68].map((t) => [x1 + (x2 - x1) * t, y1 + (y2 - y1) * t - 4, "middle"]);
      placeText(labels, { class: "edge-label " + (seen.drops ? "dropping" : "active"), "data-edge": key }, text, spots, taken);
    }
  }
}

function drawNodes(layer, small, cx, cy, taken) {
  const later = [];
  for (const node of state.nodes) {
    const [x, y] = pos.get(node.name);
    const g = el("g", { class: "node", "data-node": node.name, "data-ready": String(node.ready), transform: "translate(" + x + "," + y + ")" }, layer);
    g.addEventListener("click", () => runDoctor(node.name));
    taken.push(boxOf(el("circle", { r: small ? 16 : 42 }, g), x, y));
    const podCount = state.pods.filter((p) => p.node === node.name).length;
    const label = node.name.replace(state.lab + "-", "") + (small && podCount ? " (" + podCount + ")" : "");
    if (small) later.push({ node, g, x, y, label });
    else {
      const texts = [[label, -48, ""], [node.subnet || "no subnet", -2, "sub"], [node.ready ? "Ready" : "NotReady", 11, "sub"]];
      // The VTEP line where the ring leaves room for it (up to 6 nodes); the node's tooltip always.
      if (node.vtepMac && state.nodes.length <= 6) texts.push(["VTEP " + node.vtepMac, 58, "sub"]);
      const tip = el("title", {}, g); tip.textContent = node.name + " " + (node.subnet || "no subnet") + (node.vtepMac ? ", VTEP " + node.vtepMac : "");
      if (!node.agentUp) texts.push(["agent down", 70, "sub down"]);
      for (const [words, ty, cls] of texts) {
        const t = el("text", { y: ty, ...(cls ? { class: cls } : {}), ...(cls === "sub down" ? { fill: "#cf222e" } : {}) }, g);
        t.textContent = words;
        taken.push(boxOf(t, x, y));
      }
    }
    const pods = state.pods.filter((p) => p.node === node.name);
    pods.slice(0, small ? 0 : 8).forEach((p, j) => {
      // Left and right of the node: the name is above it and the VTEP line below.
      const k = Math.min(8, pods.length), side = j % 2, per = Math.ceil(k / 2), idx = Math.floor(j / 2), spread = (Math.PI * 0.55) * (per <= 1 ? 0 : idx / (per - 1) - 0.5);
      const a = (side ? Math.PI : 0) + spread, r = 70, px = x + r * Math.cos(a), py = y + r * Math.sin(a);
      const pg = el("g", { class: "pod", "data-pod": p.name, "data-node": node.name, transform: "translate(" + px + "," + py + ")" }, layer);
      taken.push(boxOf(el("circle", { r: 13 }, pg), px, py));
      const pt = el("text", { y: 3 }, pg); pt.textContent = p.name.slice(0, 6);
      const title = el("title", {}, pg); title.textContent = p.name + " " + (p.ip || "") + " " + p.phase;
    });
  }
  // Small nodes: each name outside the ring, beside, then further out along the radius, where
  // it overlaps no other name or node; a name with no free spot is the node's tooltip.
  for (const { node, g, x, y, label } of later) {
    const a = Math.atan2(y - cy, x - cx), c = Math.cos(a), s = Math.sin(a);
    const spots = [[x + (c >= 0 ? 20 : -20), y + 4, c >= 0 ? "start" : "end"], ...[26, 40, 54, 68].map((d) => [x + d * c, y + d * s + 4, Math.abs(c) < 0.35 ? "middle" : c > 0 ? "start" : "end"])];
    if (!placeText(layer, { class: "name", "data-node": node.name }, label, spots, taken)) { const title = el("title", {}, g); title.textContent = node.name; }
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
  // A dropped flow says first why, and where the kernel (or which policy) dropped it.
  const why = f.verdict === "dropped" || f.verdict === "audit"
    ? "<div class='why' data-verdict='" + f.verdict + "'>" + (f.verdict === "dropped" ? "dropped" : "audit: would be dropped") + " at " + esc(f.node + " " + f.observationPoint + " " + f.interface.name) + ": " +
      esc(f.policy ? "policy " + f.policy.name + " (" + f.policy.reason + ")" : (f.dropReason || "?") + (f.dropLocation ? " in " + f.dropLocation.replace(/\\+0x.*$/, "") : "")) + "</div>"
    : "";
  if (!Array.isArray(list) || !list.length) { box.innerHTML = why + esc(list.error || "no packets of this flow are kept any more"); return; }
  box.innerHTML = why + list.map((p) => "<div class='pkt'><div class='muted'>" + new Date(p.time).toISOString().slice(11, 23) + " " + esc(p.point + " " + p.interface) + ", " + p.wireLen + " B on the wire" +
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
