// One test per NetworkPolicy rule the evaluator must get right, each asserting what a connection
// is allowed to do (and, where it matters, which policy and rule decided).
import { describe, expect, test } from "bun:test";
import { evaluate } from "../../src/policy/evaluate.ts";
import { compileWorld, PolicyQueryError } from "../../src/policy/world-index.ts";
import { ns, pod, policy, ports, q, world } from "../fixtures/policy/helpers.ts";

const ok = (w: Parameters<typeof evaluate>[0], ...a: Parameters<typeof q>) => evaluate(w, q(...a)).allowed;

describe("selectors", () => {
  const pods = [
    pod("x/web", "10.0.0.1", { app: "web", tier: "front" }),
    pod("x/api", "10.0.0.2", { app: "api", tier: "back" }),
    pod("x/db", "10.0.0.3", { app: "db" }),
    pod("x/dbg", "10.0.0.4", { app: "dbg", debug: "1" }),
  ];
  const only = (sel: Record<string, unknown>) => world(pods, [policy("x/p", { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [{ podSelector: sel }] }] })]);

  test("matchLabels and every matchExpressions operator pick exactly the pods they name", () => {
    const cases: [Record<string, unknown>, string[]][] = [
      [{ matchLabels: { app: "web" } }, ["x/web"]],
      [{ matchExpressions: [{ key: "tier", operator: "In", values: ["front", "back"] }] }, ["x/web", "x/api"]],
      [{ matchExpressions: [{ key: "tier", operator: "NotIn", values: ["front"] }] }, ["x/api", "x/dbg"]],
      [{ matchExpressions: [{ key: "tier", operator: "Exists" }] }, ["x/web", "x/api"]],
      [{ matchExpressions: [{ key: "debug", operator: "DoesNotExist" }] }, ["x/web", "x/api"]],
      [{ matchLabels: { tier: "back" }, matchExpressions: [{ key: "app", operator: "In", values: ["api"] }] }, ["x/api"]],
      [{}, ["x/web", "x/api", "x/dbg"]],
    ];
    for (const [sel, allowed] of cases) {
      const w = only(sel);
      const got = ["x/web", "x/api", "x/dbg"].filter((src) => ok(w, src, "x/db", 5432));
      expect({ sel, got }).toEqual({ sel, got: allowed });
    }
  });

  test("an empty podSelector on the policy selects every pod of its namespace, and only of it", () => {
    const w = world([pod("x/a", "10.0.0.1"), pod("x/b", "10.0.0.2"), pod("y/c", "10.0.1.1")], [policy("x/deny", { podSelector: {}, ingress: [] })]);
    expect(ok(w, "y/c", "x/a", 80)).toBe(false);
    expect(ok(w, "y/c", "x/b", 80)).toBe(false);
    expect(ok(w, "x/a", "y/c", 80)).toBe(true);
  });

  const nsWorld = (peers: unknown[]) => world(
    [pod("x/srv", "10.0.0.1", { app: "srv" }), pod("x/b", "10.0.0.2", { pod: "b" }), pod("y/b", "10.0.1.2", { pod: "b" }), pod("y/c", "10.0.1.3", { pod: "c" }), pod("z/c", "10.0.2.3", { pod: "c" })],
    [policy("x/p", { podSelector: { matchLabels: { app: "srv" } }, ingress: [{ from: peers }] })],
    [ns("x"), ns("y", { team: "blue" }), ns("z")],
  );

  test("podSelector and namespaceSelector in one peer are ANDed; in two peers ORed", () => {
    const and = nsWorld([{ namespaceSelector: { matchLabels: { team: "blue" } }, podSelector: { matchLabels: { pod: "b" } } }]);
    expect(["x/b", "y/b", "y/c", "z/c"].filter((s) => ok(and, s, "x/srv", 80))).toEqual(["y/b"]);
    const or = nsWorld([{ namespaceSelector: { matchLabels: { team: "blue" } } }, { podSelector: { matchLabels: { pod: "b" } } }]);
    expect(["x/b", "y/b", "y/c", "z/c"].filter((s) => ok(or, s, "x/srv", 80))).toEqual(["x/b", "y/b", "y/c"]);
  });

  test("namespaceSelector alone takes every pod of the matching namespaces; podSelector alone only the policy's namespace", () => {
    const nsOnly = nsWorld([{ namespaceSelector: { matchLabels: { team: "blue" } } }]);
    expect(["x/b", "y/b", "y/c", "z/c"].filter((s) => ok(nsOnly, s, "x/srv", 80))).toEqual(["y/b", "y/c"]);
    const podOnly = nsWorld([{ podSelector: { matchLabels: { pod: "b" } } }]);
    expect(["x/b", "y/b", "y/c", "z/c"].filter((s) => ok(podOnly, s, "x/srv", 80))).toEqual(["x/b"]);
    const anyNs = nsWorld([{ namespaceSelector: {} }]);
    expect(["x/b", "y/b", "y/c", "z/c"].filter((s) => ok(anyNs, s, "x/srv", 80))).toEqual(["x/b", "y/b", "y/c", "z/c"]);
  });

  test("a namespace missing from the world still has its kubernetes.io/metadata.name label", () => {
    const w = world([pod("x/srv", "10.0.0.1"), pod("y/c", "10.0.1.3")], [policy("x/p", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "y" } } }] }] })], []);
    expect(ok(w, "y/c", "x/srv", 80)).toBe(true);
  });
});

describe("ipBlock", () => {
  const pods = [pod("x/srv", ["10.0.0.1", "fd00::1"]), pod("y/in", ["10.1.2.3", "fd00:1::5"]), pod("y/out", ["10.9.0.1", "fd00:2::1"])];
  const w = world(pods, [policy("x/p", { podSelector: {}, ingress: [{ from: [
    { ipBlock: { cidr: "10.1.0.0/16", except: ["10.1.2.0/24"] } },
    { ipBlock: { cidr: "203.0.113.0/24" } },
    { ipBlock: { cidr: "fd00::/16", except: ["fd00:2::/32"] } },
  ] }] })]);

  test("IPv4: inside the CIDR and outside its excepts; outside addresses too", () => {
    expect(ok(w, "10.1.3.4", "x/srv", 80)).toBe(true);
    expect(ok(w, "10.1.2.9", "x/srv", 80)).toBe(false);
    expect(ok(w, "10.2.0.1", "x/srv", 80)).toBe(false);
    expect(ok(w, "203.0.113.77", "x/srv", 80)).toBe(true);
  });

  test("IPv6: the same rules on the IPv6 block", () => {
    expect(ok(w, "fd00:1::9", "x/srv", 80)).toBe(true);
    expect(ok(w, "fd00:2::9", "x/srv", 80)).toBe(false);
    expect(ok(w, "fd01::1", "x/srv", 80)).toBe(false);
  });

  test("an ipBlock matches pod addresses too (upstream conformance expects it), per family", () => {
    expect(ok(w, "y/in", "x/srv", 80, "TCP", 4)).toBe(false); // 10.1.2.3 is excepted
    expect(ok(w, "y/in", "x/srv", 80, "TCP", 6)).toBe(true); // fd00:1::5 is inside
    expect(ok(w, "y/out", "x/srv", 80, "TCP", 6)).toBe(false); // fd00:2::1 is excepted
    const v = evaluate(w, q("y/in", "x/srv", 80, "TCP", 6));
    expect(v.ingress.allowedBy).toEqual({ policy: "x/p", rule: 0, peer: 2 });
  });

  test("a bare address that is a pod's is that pod (the dataplane sees addresses)", () => {
    const v = evaluate(w, q("fd00:1::5", "x/srv", 80));
    expect(v.from.pod).toBe("y/in");
    expect(v.allowed).toBe(true);
  });
});

describe("ports", () => {
  const srv = (extra: Partial<Parameters<typeof pod>[3]>) => extra;
  test("a named port in an ingress rule resolves on the protected pod", () => {
    const w = world([
      pod("x/a", "10.0.0.1", { app: "s" }, srv({ ports: ports(["http", 8080]) })),
      pod("x/b", "10.0.0.2", { app: "s" }, srv({ ports: ports(["http", 9090]) })),
      pod("x/c", "10.0.0.3", {}, srv({ ports: ports(["http", 1111]) })),
    ], [policy("x/p", { podSelector: { matchLabels: { app: "s" } }, ingress: [{ ports: [{ port: "http" }] }] })]);
    expect(ok(w, "x/c", "x/a", 8080)).toBe(true);
    expect(ok(w, "x/c", "x/a", 9090)).toBe(false);
    expect(ok(w, "x/c", "x/b", 9090)).toBe(true);
    expect(ok(w, "x/c", "x/b", 8080)).toBe(false);
    expect(ok(w, "x/c", "x/a", 1111)).toBe(false); // the source's own "http" is irrelevant
  });

  test("a named port in an egress rule resolves on the remote destination pod", () => {
    const w = world([
      pod("x/client", "10.0.0.1", {}, srv({ ports: ports(["http", 1111]) })),
      pod("x/s1", "10.0.0.2", {}, srv({ ports: ports(["http", 8080]) })),
      pod("x/s2", "10.0.0.3", {}, srv({ ports: ports(["http", 9090], ["dns", 53, "UDP"]) })),
    ], [policy("x/p", { podSelector: { matchLabels: {} }, policyTypes: ["Egress"], egress: [{ ports: [{ port: "http" }, { port: "dns", protocol: "UDP" }] }] })]);
    const client = "x/client";
    expect(ok(w, client, "x/s1", 8080)).toBe(true);
    expect(ok(w, client, "x/s1", 1111)).toBe(false);
    expect(ok(w, client, "x/s2", 9090)).toBe(true);
    expect(ok(w, client, "x/s2", 53, "UDP")).toBe(true);
    expect(ok(w, client, "x/s1", 53, "UDP")).toBe(false); // s1 serves no "dns"
    expect(ok(w, client, "203.0.113.1", 8080)).toBe(false); // nothing to resolve on outside the cluster
  });

  test("a name that resolves to nothing matches nothing but still isolates; a name on another protocol does not resolve", () => {
    const w = world([pod("x/a", "10.0.0.1", {}, { ports: ports(["metrics", 9100, "UDP"]) }), pod("x/b", "10.0.0.2")],
      [policy("x/p", { podSelector: {}, ingress: [{ ports: [{ port: "nothing" }, { port: "metrics" }] }] })]);
    expect(ok(w, "x/b", "x/a", 9100)).toBe(false);
    expect(ok(w, "x/b", "x/a", 9100, "UDP")).toBe(false);
    const v = evaluate(w, q("x/b", "x/a", 9100));
    expect(v.ingress.isolated).toBe(true);
    expect(v.ingress.closest?.why).toContain("x/a has no TCP port named metrics");
  });

  test("endPort makes an inclusive range", () => {
    const w = world([pod("x/a", "10.0.0.1"), pod("x/b", "10.0.0.2")], [policy("x/p", { podSelector: {}, ingress: [{ ports: [{ port: 8000, endPort: 8080 }] }] })]);
    expect([7999, 8000, 8050, 8080, 8081].map((p) => ok(w, "x/b", "x/a", p))).toEqual([false, true, true, true, false]);
  });

  test("SCTP is never read as TCP; a port without protocol means TCP only", () => {
    const w = world([pod("x/a", "10.0.0.1"), pod("x/b", "10.0.0.2")], [policy("x/p", { podSelector: {}, ingress: [{ ports: [{ port: 80, protocol: "SCTP" }, { port: 81 }] }] })]);
    expect(ok(w, "x/b", "x/a", 80, "SCTP")).toBe(true);
    expect(ok(w, "x/b", "x/a", 80, "TCP")).toBe(false);
    expect(ok(w, "x/b", "x/a", 81, "TCP")).toBe(true);
    expect(ok(w, "x/b", "x/a", 81, "UDP")).toBe(false);
    expect(ok(w, "x/b", "x/a", 81, "SCTP")).toBe(false);
  });

  test("a rule with ports but no peers allows every peer on those ports; peers but no ports, every port", () => {
    const w = world([pod("x/a", "10.0.0.1", { app: "a" }), pod("x/b", "10.0.0.2", { app: "b" }), pod("x/c", "10.0.0.3")], [
      policy("x/p", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ ports: [{ port: 80 }] }, { from: [{ podSelector: { matchLabels: { app: "b" } } }] }] }),
    ]);
    expect(ok(w, "x/c", "x/a", 80)).toBe(true);
    expect(ok(w, "203.0.113.9", "x/a", 80)).toBe(true);
    expect(ok(w, "x/c", "x/a", 81)).toBe(false);
    expect(ok(w, "x/b", "x/a", 12345, "UDP")).toBe(true);
    expect(evaluate(w, q("x/b", "x/a", 80)).ingress.allowedBy).toEqual({ policy: "x/p", rule: 0 });
    expect(evaluate(w, q("x/b", "x/a", 81)).ingress.allowedBy).toEqual({ policy: "x/p", rule: 1, peer: 0 });
  });
});

describe("isolation", () => {
  const two = [pod("x/a", "10.0.0.1"), pod("x/b", "10.0.0.2")];
  test("ingress: [] denies all, ingress: [{}] allows all; the same for egress", () => {
    expect(ok(world(two, [policy("x/p", { podSelector: {}, ingress: [] })]), "x/b", "x/a", 80)).toBe(false);
    expect(ok(world(two, [policy("x/p", { podSelector: {}, ingress: [{}] })]), "x/b", "x/a", 80)).toBe(true);
    expect(ok(world(two, [policy("x/p", { podSelector: {}, policyTypes: ["Egress"], egress: [] })]), "x/a", "x/b", 80)).toBe(false);
    expect(ok(world(two, [policy("x/p", { podSelector: {}, policyTypes: ["Egress"], egress: [{}] })]), "x/a", "x/b", 80)).toBe(true);
  });

  test("implicit policyTypes: Ingress always, Egress only when egress rules are present", () => {
    const egressOnly = world(two, [policy("x/p", { podSelector: {}, egress: [{ ports: [{ port: 53, protocol: "UDP" }] }] })]);
    const v = evaluate(egressOnly, q("x/a", "x/b", 80));
    expect(v.ingress.isolated).toBe(true); // Ingress is implied: nothing allows it
    expect(v.egress.isolated).toBe(true);
    expect(v.allowed).toBe(false);
    const ingressOnly = world(two, [policy("x/p", { podSelector: {}, ingress: [{}] })]);
    expect(evaluate(ingressOnly, q("x/a", "203.0.113.1", 443)).egress.isolated).toBe(false);
  });

  test("explicit policyTypes: a direction left out is not isolated, whatever rules it has", () => {
    const w = world(two, [policy("x/p", { podSelector: {}, policyTypes: ["Egress"], ingress: [], egress: [{}] })]);
    const v = evaluate(w, q("x/b", "x/a", 80));
    expect(v.ingress.isolated).toBe(false);
    expect(v.allowed).toBe(true);
  });

  test("default deny egress stops a pod talking to anything but itself and its node", () => {
    const w = world(two, [policy("x/deny", { podSelector: {}, policyTypes: ["Egress"] })]);
    expect(ok(w, "x/a", "x/b", 80)).toBe(false);
    expect(ok(w, "x/a", "203.0.113.1", 443)).toBe(false);
    expect(ok(w, "x/a", "192.168.0.1", 10250)).toBe(true);
    expect(ok(w, "x/a", "x/a", 80)).toBe(true);
  });

  test("policies add up: any rule of any policy selecting the pod allows", () => {
    const w = world(two, [policy("x/p80", { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] }), policy("x/p81", { podSelector: {}, ingress: [{ ports: [{ port: 81 }] }] })]);
    expect([80, 81, 82].map((p) => ok(w, "x/b", "x/a", p))).toEqual([true, true, false]);
    expect(evaluate(w, q("x/b", "x/a", 82)).ingress.deniedBy).toEqual({ policies: ["x/p80", "x/p81"] });
  });
});

describe("node traffic, host network, loopback", () => {
  const pods = [
    pod("x/a", "10.244.1.5", { app: "a" }, { node: "n1", nodeIps: ["192.168.0.1", "fc00::1"] }),
    pod("x/b", "10.244.2.5", { app: "b" }, { node: "n2", nodeIps: ["192.168.0.2"] }),
    pod("kube-system/proxy1", "192.168.0.1", { app: "b" }, { node: "n1", nodeIps: ["192.168.0.1"], hostNetwork: true }),
    pod("kube-system/proxy2", "192.168.0.2", { app: "b" }, { node: "n2", nodeIps: ["192.168.0.2"], hostNetwork: true }),
  ];
  const denyAll = (extra: unknown[] = []) => world(pods, [
    policy("x/deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] }),
    policy("kube-system/deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] }),
    ...(extra as ReturnType<typeof policy>[]),
  ]);

  test("a pod's own node reaches it and it reaches its node, whatever the policies; other nodes do not", () => {
    const w = denyAll();
    expect(evaluate(w, q("192.168.0.1", "x/a", 8080)).ingress.via).toBe("own-node");
    expect(ok(w, "192.168.0.1", "x/a", 8080)).toBe(true);
    expect(ok(w, "x/a", "192.168.0.1", 10250)).toBe(true);
    expect(ok(w, "192.168.0.2", "x/a", 8080)).toBe(false);
    expect(ok(w, "x/a", "192.168.0.2", 10250)).toBe(false);
  });

  test("host-network pods are node traffic: never selected, never matched by pod selectors, matched by ipBlock", () => {
    const w = denyAll();
    // kube-system/deny selects every pod of kube-system, but not the host-network ones.
    const v = evaluate(w, q("x/b", "kube-system/proxy1", 80));
    expect(v.ingress).toMatchObject({ isolated: false, via: "host-network" });
    const bySelector = world(pods, [policy("x/p", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "b" } }, namespaceSelector: {} }] }] })]);
    expect(ok(bySelector, "kube-system/proxy2", "x/a", 80)).toBe(false); // app=b, but a host-network pod
    expect(ok(bySelector, "x/b", "x/a", 80)).toBe(true);
    const byBlock = world(pods, [policy("x/p", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ ipBlock: { cidr: "192.168.0.0/24" } }] }] })]);
    expect(ok(byBlock, "kube-system/proxy2", "x/a", 80)).toBe(true);
  });

  test("a host-network pod on the pod's own node is its node", () => {
    const w = denyAll();
    expect(evaluate(w, q("kube-system/proxy1", "x/a", 80)).ingress.via).toBe("own-node");
    expect(ok(w, "kube-system/proxy2", "x/a", 80)).toBe(false);
  });

  test("a pod always reaches itself", () => {
    const v = evaluate(denyAll(), q("x/a", "x/a", 80));
    expect(v.allowed).toBe(true);
    expect(v.ingress).toMatchObject({ via: "loopback", isolated: true });
  });
});

describe("audit mode", () => {
  const two = [pod("x/a", "10.0.0.1"), pod("x/b", "10.0.0.2")];
  const audit = { "gauze.dev/policy-mode": "audit" };

  test("an audit policy never denies: allowed, flagged audit, the policy named", () => {
    const w = world(two, [policy("x/would-deny", { podSelector: {}, ingress: [] }, audit)]);
    const v = evaluate(w, q("x/b", "x/a", 80));
    expect(v).toMatchObject({ allowed: true, audit: true, ingress: { isolated: false, audit: { policies: ["x/would-deny"] } } });
  });

  test("an audit policy whose rules allow the flow is not reported", () => {
    const w = world(two, [policy("x/fine", { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] }, audit)]);
    expect(evaluate(w, q("x/b", "x/a", 80)).audit).toBeUndefined();
    expect(evaluate(w, q("x/b", "x/a", 81)).audit).toBe(true);
  });

  test("an audit policy never allows what an enforcing policy denies", () => {
    const w = world(two, [policy("x/deny", { podSelector: {}, ingress: [] }), policy("x/allow-audit", { podSelector: {}, ingress: [{}] }, audit)]);
    const v = evaluate(w, q("x/b", "x/a", 80));
    expect(v.allowed).toBe(false);
    expect(v.audit).toBeUndefined();
    expect(v.ingress.deniedBy).toEqual({ policies: ["x/deny"] });
  });

  test("audit is not flagged when enforcement drops the flow in the other direction anyway", () => {
    const w = world(two, [policy("x/egress-deny", { podSelector: {}, policyTypes: ["Egress"] }), policy("x/audit", { podSelector: {}, ingress: [] }, audit)]);
    const v = evaluate(w, q("x/b", "x/a", 80));
    expect(v.allowed).toBe(false);
    expect(v.audit).toBeUndefined();
    expect(v.ingress.audit).toEqual({ policies: ["x/audit"] });
  });
});

describe("queries", () => {
  const w = world([pod("x/a", "10.0.0.1")], []);
  test("an unknown pod, a bad address or a bad port is refused, not guessed", () => {
    expect(() => evaluate(w, q("x/nope", "x/a", 80))).toThrow(PolicyQueryError);
    expect(() => evaluate(w, q("10.0.0.300", "x/a", 80))).toThrow(PolicyQueryError);
    expect(() => evaluate(w, q("x/a", "x/a", 70000))).toThrow(PolicyQueryError);
    expect(() => evaluate(w, q("fd00::1", "x/a", 80, "TCP", 4))).toThrow(PolicyQueryError);
  });

  test("the index answers the same as the world it came from", () => {
    const world2 = world([pod("x/a", "10.0.0.1"), pod("x/b", "10.0.0.2")], [policy("x/p", { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] })]);
    const ix = compileWorld(world2);
    for (const port of [80, 81]) expect(evaluate(ix, q("x/b", "x/a", port))).toEqual(evaluate(world2, q("x/b", "x/a", port)));
  });
});
