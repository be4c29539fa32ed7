// Runs inside the lab's underlay namespace (where its etcd listens): registers, changes or counts
// simulated nodes' leases in the layout gauze agents read. Prints one JSON line.
//   node --import tsx bench/scale-load.ts register <count> | change | requests
import { Etcd3 } from "etcd3";

const [cmd, arg] = process.argv.slice(2);
const etcd = new Etcd3({ hosts: "http://127.0.0.1:2379" });
const prefix = "/gauze.dev/network";
const mac = (i: number) => `0e:99:${[(i >> 16) & 255, (i >> 8) & 255, i & 255, 1].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
// Simulated nodes sit at 172.18.4.0 and up on the lab's underlay: nothing is ever sent to them.
const ip = (i: number) => `172.18.${4 + Math.floor(i / 250)}.${(i % 250) + 2}`;
const subnet = (i: number) => `10.${64 + Math.floor((i + 16) / 256)}.${(i + 16) % 256}.0-24`;

async function metricsTotal(): Promise<number> {
  const text = await (await fetch("http://127.0.0.1:2379/metrics")).text();
  let n = 0;
  for (const line of text.split("\n")) if (line.startsWith("grpc_server_started_total")) n += Number(line.split(" ").pop());
  return n;
}

const t0 = performance.now();
if (cmd === "register") {
  const count = Number(arg);
  const lease = etcd.lease(86400, { autoKeepAlive: false });
  await lease.grant();
  // 50 at a time, as 999 agents starting together would.
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, k) => {
      const j = i + k;
      const v = { PublicIP: ip(j), BackendType: "vxlan", BackendData: { VtepMAC: mac(j) }, Node: `sim-${j}`, Expires: Date.now() + 86_400_000 };
      return lease.put(`${prefix}/subnets/${subnet(j)}`).value(JSON.stringify(v));
    }));
  }
  console.log(JSON.stringify({ registered: count, ms: performance.now() - t0 }));
} else if (cmd === "change") {
  // One node re-created with a new VTEP MAC: every agent must update its neighbour and FDB entry.
  const key = `${prefix}/subnets/${subnet(0)}`;
  const v = JSON.parse((await etcd.get(key).string())!) as { BackendData: { VtepMAC: string } };
  v.BackendData.VtepMAC = "0e:99:ff:ff:ff:01";
  // The clock starts before the put is sent: agents may apply it before etcd's answer is back here.
  const sent = Date.now();
  await etcd.put(key).value(JSON.stringify(v));
  console.log(JSON.stringify({ changed: key, mac: v.BackendData.VtepMAC, sent, at: Date.now() }));
} else if (cmd === "requests") {
  console.log(JSON.stringify({ requests: await metricsTotal() }));
}
etcd.close();
