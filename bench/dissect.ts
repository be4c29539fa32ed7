// bench/dissect: gauze dissect against tcpdump and tshark on one VXLAN capture made here.
// Two namespaces joined by a veth (offloads off, so frames are wire-sized), a VXLAN device on
// each (VNI 1, UDP 8472), iperf3 TCP through it, tcpdump on the underlay. Then each tool reads
// the file 7 times (--rounds), interleaved with the others: best time, peak RSS, MB/s, packets/s,
// and two ratios to `tcpdump -v`: best against best, and the median of each round's own ratio
// (this VM's speed drifts; a round's tools run seconds apart).
// A 10x smaller file checks that gauze's memory does not grow with the file.
//   node --import tsx bench/dissect.ts [--mb 120] [--rounds 7] [--json]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { must, run } from "./lib.ts";

const args = process.argv.slice(2);
const mb = Number(args[args.indexOf("--mb") + 1] ?? 120) || 120;
const asJson = args.includes("--json");
const rounds = Number(args[args.indexOf("--rounds") + 1] ?? 7) || 7;
const gauze = join(import.meta.dirname, "..", "dist", "bin", "gauze");
const tag = `gz-bd${process.pid % 10000}`;
const [a, b] = [`${tag}-a`, `${tag}-b`];
const dir = mkdtempSync(join(tmpdir(), "gauze-bench-dissect-"));
const file = join(dir, "vxlan.pcap");
const small = join(dir, "small.pcap");
const pids: number[] = [];

function setup(): void {
  must(["ip", "netns", "add", a]);
  must(["ip", "netns", "add", b]);
  must(["ip", "link", "add", `${tag}a`, "type", "veth", "peer", "name", `${tag}b`]);
  must(["ip", "link", "set", `${tag}a`, "netns", a, "name", "eth0"]);
  must(["ip", "link", "set", `${tag}b`, "netns", b, "name", "eth0"]);
  const under = { [a]: "192.168.251.1", [b]: "192.168.251.2" };
  const over = { [a]: "10.201.0.1", [b]: "10.201.0.2" };
  for (const [ns, peer] of [[a, b], [b, a]] as const) {
    const batch = [
      "link set lo up", `addr add ${under[ns]}/30 dev eth0`, "link set eth0 up",
      `link add vx0 type vxlan id 1 dstport 8472 local ${under[ns]} remote ${under[peer]} dev eth0`,
      `addr add ${over[ns]}/24 dev vx0`, "link set vx0 up",
    ].join("\n");
    must(["ip", "-n", ns, "-batch", "-"], { input: batch + "\n" });
    must(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tso", "off", "gso", "off", "gro", "off"]);
    must(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
  }
}

async function capture(): Promise<void> {
  const server = spawn("ip", ["netns", "exec", b, "iperf3", "-s", "-1"], { stdio: "ignore" });
  pids.push(server.pid!);
  const td = spawn("ip", ["netns", "exec", a, "tcpdump", "-i", "eth0", "-w", file, "-U", "udp", "port", "8472"], { stdio: ["ignore", "ignore", "pipe"] });
  pids.push(td.pid!);
  await new Promise<void>((resolve) => td.stderr.on("data", (d: Buffer) => { if (d.toString().includes("listening")) resolve(); }));
  await new Promise((r) => setTimeout(r, 300));
  must(["ip", "netns", "exec", a, "iperf3", "-c", "10.201.0.2", "-n", `${Math.ceil(mb * 1.3)}M`]);
  td.kill("SIGINT");
  await new Promise((r) => td.on("close", r));
  server.kill("SIGKILL");
  must(["editcap", "-r", file, small, `1-${Math.max(1000, Math.floor(countPackets(file) / 10))}`]);
}

function countPackets(f: string): number {
  const out = must(["capinfos", "-M", "-c", f]).stdout;
  return Number(/Number of packets:\s+(\d+)/.exec(out)?.[1] ?? 0);
}

interface Row {
  tool: string; seconds: number; mbPerSec: number; pktPerSec: number; peakRssMb: number;
  /** tcpdump's best time over this tool's best time. */
  ratioToTcpdump?: number;
  /** The median over rounds of tcpdump's time over this tool's time in the same round. */
  roundRatioToTcpdump?: number;
  samples: number[];
}

interface Sample { seconds: number; rssMb: number }

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function once(tool: string, argv: string[]): Sample {
  const r = run(["timeout", "300", "/usr/bin/time", "-f", "%e %M", "sh", "-c", `exec "$0" "$@" > /dev/null`, ...argv]);
  if (r.status !== 0) throw new Error(`${tool} failed: ${r.stderr}`);
  const [secs, kb] = r.stderr.trim().split("\n").pop()!.split(" ").map(Number);
  return { seconds: secs!, rssMb: kb! / 1024 };
}

/**
 * Best of `rounds` for each tool, the tools interleaved round by round: this VM's speed drifts
 * over tens of seconds, and running one tool's repeats back to back would hand it one phase.
 */
function measureAll(tools: [string, string[]][], f: string, packets: number, rounds = 5): Row[] {
  const samples = tools.map(() => [] as Sample[]);
  for (let r = 0; r < rounds; r++) tools.forEach(([t, argv], i) => samples[i]!.push(once(t, argv)));
  const bytes = statSync(f).size;
  return tools.map(([tool], i) => {
    const best = Math.min(...samples[i]!.map((x) => x.seconds));
    return { tool, seconds: best, mbPerSec: bytes / 1e6 / best, pktPerSec: packets / best, peakRssMb: Math.max(...samples[i]!.map((x) => x.rssMb)), samples: samples[i]!.map((x) => x.seconds) };
  });
}

try {
  setup();
  await capture();
  const size = statSync(file).size;
  const packets = countPackets(file);
  const tools: [string, string[]][] = [
    ["gauze dissect (text)", [gauze, "dissect", file]],
    ["gauze dissect --summary", [gauze, "dissect", file, "--summary"]],
    ["tcpdump -nn -v -T vxlan", ["tcpdump", "-nn", "-v", "-T", "vxlan", "-r", file]],
    // TCP reassembly and sequence analysis off: gauze does neither, and with them tshark once ran
    // for over 10 minutes on one of these captures.
    ["tshark fields", ["tshark", "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE", "-r", file, "-d", "udp.port==8472,vxlan", "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport", "-e", "vxlan.vni", "-e", "frame.len"]],
  ];
  const rows = measureAll(tools, file, packets, rounds);
  const tcpdump = rows.find((r) => r.tool.startsWith("tcpdump"))!;
  for (const r of rows) {
    r.ratioToTcpdump = tcpdump.seconds / r.seconds;
    r.roundRatioToTcpdump = median(r.samples.map((s, i) => tcpdump.samples[i]! / s));
  }
  const smallRows = measureAll([["gauze dissect (text), 1/10 file", [gauze, "dissect", small]], ["gauze --summary, 1/10 file", [gauze, "dissect", small, "--summary"]]], small, countPackets(small), 3);
  if (asJson) {
    console.log(JSON.stringify({ bench: "dissect", fileMb: size / 1e6, packets, rows, smallFile: smallRows }, null, 2));
  } else {
    console.log(`dissect: ${(size / 1e6).toFixed(1)} MB, ${packets} packets of VXLAN (iperf3 TCP), ${rounds} interleaved rounds`);
    console.log("speed vs tcpdump -v: best time against best time, and the median of the rounds' own ratios");
    console.log("tool                              best s    MB/s   packets/s  peak RSS MB   speed (best)  speed (rounds)");
    for (const r of [...rows, ...smallRows]) {
      const ratios = r.ratioToTcpdump ? `${r.ratioToTcpdump.toFixed(2).padStart(11)}x ${r.roundRatioToTcpdump!.toFixed(2).padStart(14)}x` : "";
      console.log(`${r.tool.padEnd(32)} ${r.seconds.toFixed(2).padStart(8)} ${r.mbPerSec.toFixed(0).padStart(7)} ${r.pktPerSec.toFixed(0).padStart(11)} ${r.peakRssMb.toFixed(0).padStart(12)}  ${ratios}`);
    }
  }
} finally {
  for (const pid of pids) { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }
  run(["ip", "netns", "del", a]);
  run(["ip", "netns", "del", b]);
  rmSync(dir, { recursive: true, force: true });
}
