// The bench as a picture: pod-to-pod throughput per backend (a bar per stream count, the
// underlay's own limit as a dashed line), with each backend's bytes added per packet under it.
// Plain SVG, no script and no external asset: it opens anywhere, and the web view can inline it.
import type { BenchReport } from "./bench.ts";

const COLORS = ["#4C78A8", "#F58518", "#54A24B", "#B279A2"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function renderBenchSvg(r: BenchReport): string {
  const ok = r.results.filter((x) => x.ok && x.tcp.length);
  const streams = ok[0]?.tcp.map((t) => t.streams) ?? [];
  const W = Math.max(780, 120 + Math.max(1, ok.length) * (streams.length * 44 + 40));
  const H = 420;
  const top = 60;
  const base = 320;
  // A round step (1, 2 or 5 times a power of ten) for four or five grid lines.
  const peak = Math.max(1, ...ok.flatMap((x) => x.tcp.map((t) => t.gbps))) * 1.1;
  const raw = peak / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw)!;
  const max = step * Math.ceil(peak / step);
  const y = (g: number) => base - (g / max) * (base - top);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="20" y="28" font-size="16" font-weight="bold">Pod-to-pod TCP throughput by backend (gauze lab bench)</text>`,
    `<text x="20" y="46" fill="#555">${esc(`iperf3, median of ${r.rounds} round(s) of ${r.seconds} s; under each backend: bytes the path adds to every packet (from a capture)`)}</text>`,
  ];
  // Axis and grid.
  for (let g = 0; g <= max + 1e-9; g += step) {
    out.push(`<line x1="70" x2="${W - 20}" y1="${y(g)}" y2="${y(g)}" stroke="#eee"/>`, `<text x="64" y="${y(g) + 4}" text-anchor="end" fill="#555">${+g.toFixed(2)}</text>`);
  }
  out.push(`<text x="18" y="${(top + base) / 2}" transform="rotate(-90 18 ${(top + base) / 2})" text-anchor="middle" fill="#333">Gbit/s</text>`);
  const none = ok.find((x) => x.backend === "none");
  ok.forEach((x, gi) => {
    const gx = 90 + gi * (streams.length * 44 + 40);
    x.tcp.forEach((t, si) => {
      const bx = gx + si * 44;
      out.push(`<rect x="${bx}" y="${y(t.gbps)}" width="36" height="${base - y(t.gbps)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${x.backend}, ${t.streams} stream(s): ${t.gbps.toFixed(2)} Gbit/s, ${t.coresPerGbps.toFixed(3)} cores per Gbit/s`)}</title></rect>`);
      out.push(`<text x="${bx + 18}" y="${y(t.gbps) - 4}" text-anchor="middle">${t.gbps.toFixed(1)}</text>`);
      const lim = none?.tcp.find((n) => n.streams === t.streams)?.gbps;
      if (lim && x !== none) out.push(`<line x1="${bx - 2}" x2="${bx + 38}" y1="${y(lim)}" y2="${y(lim)}" stroke="#333" stroke-dasharray="4 3"/>`);
    });
    const cx = gx + (streams.length * 44 - 8) / 2;
    out.push(`<text x="${cx}" y="${base + 20}" text-anchor="middle" font-weight="bold">${esc(x.backend)}</text>`);
    if (x.ping) out.push(`<text x="${cx}" y="${base + 38}" text-anchor="middle" fill="${x.ping.overhead ? "#c0392b" : "#2e7d32"}">+${x.ping.overhead} B/packet</text>`);
    if (x.rtt) out.push(`<text x="${cx}" y="${base + 54}" text-anchor="middle" fill="#555">RTT ${x.rtt.p50Us} us</text>`);
  });
  streams.forEach((n, si) => {
    out.push(`<rect x="${90 + si * 120}" y="${H - 22}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/>`, `<text x="${106 + si * 120}" y="${H - 12}">${n} stream${n > 1 ? "s" : ""}</text>`);
  });
  if (none) out.push(`<line x1="${90 + streams.length * 120}" x2="${120 + streams.length * 120}" y1="${H - 16}" y2="${H - 16}" stroke="#333" stroke-dasharray="4 3"/>`, `<text x="${126 + streams.length * 120}" y="${H - 12}">none (the underlay's limit)</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}
