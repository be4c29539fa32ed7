// The dataplane's tuples against the oracle: for generated worlds, a flow is in some tuple of the
// pod's direction (or the pod is not isolated) exactly when `evaluate` allows that direction.
// And the yes/no path agrees with the full verdict on every query.
import { describe, expect, test } from "bun:test";
import { parseCIDR, parseIP, prefixContains } from "../../src/net/cidr.ts";
import { allowRules, nodeAllowRules, type PodAllowRules } from "../../src/policy/allow-rules.ts";
import { allows, evaluate } from "../../src/policy/evaluate.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import { PROTOCOLS, type Protocol } from "../../src/policy/types.ts";
import { compileWorld } from "../../src/policy/world-index.ts";
import { pod, policy, ports, q, rng, world } from "../fixtures/policy/helpers.ts";
import { randomWorld } from "../fixtures/policy/random-world.ts";

function inCidr(cidr: string, ip: string): boolean {
  const c = parseCIDR(cidr);
  const a = parseIP(ip);
  return !!c && !!a && prefixContains(c.prefix, a);
}

function tupleAllows(ar: PodAllowRules, ip: string, port: number, protocol: Protocol): boolean {
  const norm = (s: string) => s.toLowerCase();
  if (!ar.isolated) return true;
  return ar.rules.some((t) => {
    const peerOk = t.peers === "any" || t.peers.ips.map(norm).includes(norm(ip)) || t.peers.cidrs.some((c) => inCidr(c.cidr, ip) && !c.except.some((e) => inCidr(e, ip)));
    const portOk = t.ports === "any" || t.ports.some((p) => p.protocol === protocol && port >= p.from && port <= p.to);
    return peerOk && portOk;
  });
}

const PORTS = [0, 53, 80, 81, 443, 8000, 8080, 8100, 8101, 9090, 9100];
const OUTSIDE = ["203.0.113.7", "10.1.0.9", "10.1.5.5", "198.51.100.1", "fd00:1::99", "fd00:2::7", "2001:db8::1"];

describe("allowRules against evaluate", () => {
  for (const seed of [1, 2, 3, 4]) {
    test(`generated world ${seed}: every pod, direction, remote address, port and protocol`, () => {
      const w = randomWorld({ seed, namespaces: 3, pods: 24, policies: 30, hostNetwork: 2 });
      const ix = compileWorld(w);
      const remotes = [...new Set([...w.pods.flatMap((p) => p.ips), ...OUTSIDE, "192.168.0.1", "192.168.0.2", "fc00::2"])];
      let compared = 0;
      let isolatedSeen = 0;
      for (const p of w.pods) {
        for (const d of ["ingress", "egress"] as const) {
          const ar = allowRules(ix, p, d);
          if (ar.isolated) isolatedSeen++;
          for (const ip of remotes) {
            const family = ip.includes(":") ? 6 : 4;
            if (!p.ips.some((a) => a.includes(":") === (family === 6))) continue;
            const always = ar.always.self.includes(ip) || ar.always.nodeIps.includes(ip);
            for (const port of PORTS) for (const protocol of PROTOCOLS) {
              const query = d === "ingress" ? { from: { ip }, to: p, port, protocol } : { from: p, to: { ip }, port, protocol };
              const v = evaluate(ix, query)[d];
              const predicted = always || p.hostNetwork === true || tupleAllows(ar, ip, port, protocol);
              if (predicted !== v.allowed) throw new Error(`${p.namespace}/${p.name} ${d} ${ip} ${port}/${protocol}: tuples say ${predicted}, evaluate says ${v.allowed}\n${JSON.stringify(ar, null, 1)}`);
              compared++;
            }
          }
        }
      }
      expect(compared).toBeGreaterThan(10000);
      expect(isolatedSeen).toBeGreaterThan(10);
    });
  }
});

describe("the yes/no path agrees with the full verdict", () => {
  test("random queries over generated worlds, traced and not", () => {
    for (const seed of [7, 8]) {
      const w = randomWorld({ seed, namespaces: 4, pods: 40, policies: 60, hostNetwork: 3 });
      const ix = compileWorld(w);
      const r = rng(seed);
      const ends = [...w.pods.map((p) => ({ namespace: p.namespace, name: p.name })), ...OUTSIDE.filter((o) => !o.includes(":")).map((ip) => ({ ip }))];
      let denied = 0;
      for (let i = 0; i < 3000; i++) {
        const query = { from: ends[Math.floor(r() * ends.length)]!, to: ends[Math.floor(r() * ends.length)]!, port: PORTS[Math.floor(r() * PORTS.length)]!, protocol: PROTOCOLS[Math.floor(r() * 3)]!, family: 4 as const };
        if ("ip" in query.from && "ip" in query.to) continue;
        const full = evaluate(ix, query);
        const traced = evaluate(ix, query, { trace: true });
        expect(allows(ix, query)).toBe(full.allowed);
        expect(traced.allowed).toBe(full.allowed);
        expect(traced.ingress.allowedBy).toEqual(full.ingress.allowedBy);
        expect(traced.egress.closest).toEqual(full.egress.closest);
        if (!full.allowed) denied++;
      }
      expect(denied).toBeGreaterThan(100);
    }
  });
});

describe("allowRules, by hand", () => {
  const pods = [
    pod("x/srv", ["10.0.0.1", "fd00::1"], { app: "srv" }, { node: "n1", ports: ports(["http", 8080], ["dns", 53, "UDP"]) }),
    pod("x/c1", "10.0.0.2", { app: "c" }, { node: "n1", ports: ports(["http", 80]) }),
    pod("x/c2", "10.0.0.3", { app: "c" }, { node: "n2", ports: ports(["http", 8080]) }),
    pod("x/c3", "10.0.0.4", { app: "c" }, { node: "n2", ports: ports(["http", 80]) }),
  ];

  test("ingress: peers to addresses, ranges, named ports resolved on the pod itself", () => {
    const w = world(pods, [policy("x/p", { podSelector: { matchLabels: { app: "srv" } }, ingress: [
      { from: [{ podSelector: { matchLabels: { app: "c" } } }, { ipBlock: { cidr: "10.9.0.1/8", except: ["10.9.0.0/16"] } }], ports: [{ port: "http" }, { port: 9000, endPort: 9010, protocol: "UDP" }] },
      { ports: [{ protocol: "SCTP" }] },
    ] })]);
    const ar = allowRules(w, { namespace: "x", name: "srv" }, "ingress");
    expect(ar).toEqual({
      pod: "x/srv", direction: "ingress", isolated: true, isolatedBy: ["x/p"], failedClosed: [],
      rules: [
        { policy: "x/p", rule: 0, peers: { ips: ["10.0.0.2", "10.0.0.3", "10.0.0.4"], cidrs: [{ cidr: "10.0.0.0/8", except: ["10.9.0.0/16"] }] }, ports: [{ protocol: "TCP", from: 8080, to: 8080 }, { protocol: "UDP", from: 9000, to: 9010 }] },
        { policy: "x/p", rule: 1, peers: "any", ports: [{ protocol: "SCTP", from: 0, to: 65535 }] },
      ],
      always: { self: ["10.0.0.1", "fd00::1"], nodeIps: ["192.168.0.1"] },
    });
  });

  test("egress: named ports give one tuple per group of destinations that resolve them alike", () => {
    const w = world(pods, [policy("x/p", { podSelector: { matchLabels: { app: "srv" } }, policyTypes: ["Egress"], egress: [{ ports: [{ port: "http" }, { port: 443 }] }] })]);
    const ar = allowRules(w, { namespace: "x", name: "srv" }, "egress");
    expect(ar.rules).toEqual([
      { policy: "x/p", rule: 0, peers: "any", ports: [{ protocol: "TCP", from: 443, to: 443 }] },
      { policy: "x/p", rule: 0, peers: { ips: ["10.0.0.1", "fd00::1", "10.0.0.3"], cidrs: [] }, ports: [{ protocol: "TCP", from: 8080, to: 8080 }] },
      { policy: "x/p", rule: 0, peers: { ips: ["10.0.0.2", "10.0.0.4"], cidrs: [] }, ports: [{ protocol: "TCP", from: 80, to: 80 }] },
    ]);
  });

  test("not isolated, failed closed, audit, and a node's view", () => {
    const bad = { podSelector: { matchLabels: { app: "c" } }, ingress: [{ from: [{ ipBlock: { cidr: "nope" } }] }] };
    const w = world(pods, [
      policy("x/audit", { podSelector: { matchLabels: { app: "srv" } }, ingress: [{ ports: [{ port: 1 }] }] }, { "gauze.dev/policy-mode": "audit" }),
    ]);
    const srv = allowRules(w, { namespace: "x", name: "srv" }, "ingress");
    expect([srv.isolated, srv.rules, srv.audit]).toEqual([false, [], { isolatedBy: ["x/audit"], rules: [{ policy: "x/audit", rule: 0, peers: "any", ports: [{ protocol: "TCP", from: 1, to: 1 }] }] }]);
    const w2 = world(pods, [parsePolicy({ metadata: { namespace: "x", name: "bad" }, spec: bad }).policy!]);
    const c1 = allowRules(w2, { namespace: "x", name: "c1" }, "ingress");
    expect([c1.isolated, c1.failedClosed, c1.rules]).toEqual([true, ["x/bad"], []]);
    expect(nodeAllowRules(w2, "n2").map((a) => `${a.pod} ${a.direction} ${a.isolated}`)).toEqual(["x/c2 ingress true", "x/c2 egress false", "x/c3 ingress true", "x/c3 egress false"]);
  });
});
