// Untrusted objects: every problem named by its path, and a broken policy failing closed for the
// pods it selects (isolated, nothing allowed by it) without opening traffic or disabling others.
import { describe, expect, test } from "bun:test";
import { evaluate } from "../../src/policy/evaluate.ts";
import { nsInfoFromV1, podInfoFromV1 } from "../../src/policy/objects.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import { np, pod, policy, q, world } from "../fixtures/policy/helpers.ts";

const problemsOf = (spec: Record<string, unknown>) => parsePolicy(np("x/p", spec)).problems;

describe("problems and their paths", () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["bad selector operator", { podSelector: { matchExpressions: [{ key: "app", operator: "Like", values: ["a"] }] } }, "spec.podSelector.matchExpressions[0].operator", /unknown operator "Like"/],
    ["In without values", { podSelector: {}, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: "app", operator: "In", values: [] }] } }] }] }, "spec.ingress[0].from[0].podSelector.matchExpressions[0].values", /must not be empty/],
    ["Exists with values", { podSelector: { matchExpressions: [{ key: "app", operator: "Exists", values: ["x"] }] } }, "spec.podSelector.matchExpressions[0].values", /must be empty/],
    ["bad label key", { podSelector: { matchLabels: { "-bad": "x" } } }, 'spec.podSelector.matchLabels["-bad"]', /qualified name/],
    ["bad CIDR", { podSelector: {}, ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: "10.0.0.0/33" } }] }] }, "spec.ingress[0].from[1].ipBlock.cidr", /not a CIDR/],
    ["CIDR without a length", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.1" } }] }] }, "spec.ingress[0].from[0].ipBlock.cidr", /not a CIDR/],
    ["leading zeros", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "010.0.0.0/8" } }] }] }, "spec.ingress[0].from[0].ipBlock.cidr", /not a CIDR/],
    ["except outside the CIDR", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["11.0.0.0/16"] } }] }] }, "spec.ingress[0].from[0].ipBlock.except[0]", /strict subset/],
    ["except equal to the CIDR", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.0.0.0/8"] } }] }] }, "spec.ingress[0].from[0].ipBlock.except[0]", /strict subset/],
    ["ipBlock with a selector", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }] }] }, "spec.ingress[0].from[0]", /may not be combined/],
    ["empty peer", { podSelector: {}, egress: [{ to: [{}] }] }, "spec.egress[0].to[0]", /must set podSelector/],
    ["port out of range", { podSelector: {}, egress: [{ ports: [{ port: 65536 }] }] }, "spec.egress[0].ports[0].port", /not a port number/],
    ["port zero", { podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }, "spec.ingress[0].ports[0].port", /not a port number/],
    ["endPort below port", { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, "spec.ingress[0].ports[0].endPort", /less than port 90/],
    ["endPort with a named port", { podSelector: {}, ingress: [{ ports: [{ port: "http", endPort: 90 }] }] }, "spec.ingress[0].ports[0].endPort", /named port/],
    ["endPort without port", { podSelector: {}, ingress: [{ ports: [{ endPort: 90 }] }] }, "spec.ingress[0].ports[0].endPort", /requires port/],
    ["unknown protocol", { podSelector: {}, ingress: [{ ports: [{ port: 80, protocol: "tcp" }] }] }, "spec.ingress[0].ports[0].protocol", /unknown protocol "tcp"/],
    ["a number as a port name", { podSelector: {}, ingress: [{ ports: [{ port: "80" }] }] }, "spec.ingress[0].ports[0].port", /neither a port number nor a port name/],
    ["unknown policy type", { podSelector: {}, policyTypes: ["Ingress", "Sideways"] }, "spec.policyTypes[1]", /unknown policy type/],
    ["rules not a list", { podSelector: {}, ingress: { from: [] } }, "spec.ingress", /must be a list/],
    ["a misspelt rule field (it would allow every source)", { podSelector: {}, ingress: [{ form: [{ podSelector: {} }], ports: [{ port: 80 }] }] }, "spec.ingress[0].form", /unknown field/],
    ["a misspelt selector field (it would select everything)", { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabel: { app: "web" } } }] }] }, "spec.ingress[0].from[0].podSelector.matchLabel", /unknown field/],
    ["a misspelt port field", { podSelector: {}, egress: [{ ports: [{ prot: 80 }] }] }, "spec.egress[0].ports[0].prot", /unknown field/],
    ["a misspelt spec field", { podSelector: {}, ingres: [{}] }, "spec.ingres", /unknown field/],
  ];
  for (const [what, spec, path, message] of cases) {
    test(what, () => {
      const problems = problemsOf(spec);
      expect(problems.map((p) => p.path)).toEqual([path]);
      expect(problems[0]!.message).toMatch(message);
    });
  }

  test("valid policies have no problems, and ingress: [] differs from ingress: [{}]", () => {
    const deny = parsePolicy(np("x/p", { podSelector: {}, ingress: [] }));
    const allow = parsePolicy(np("x/p", { podSelector: {}, ingress: [{}] }));
    expect(deny.problems).toEqual([]);
    expect(deny.policy!.ingress).toEqual([]);
    expect(allow.policy!.ingress).toEqual([{ index: 0, peers: "any", ports: "any" }]);
    expect(parsePolicy(np("x/p", { podSelector: {} })).policy!.ingress).toEqual([]);
  });

  test("an object that cannot be placed in a namespace yields no policy", () => {
    expect(parsePolicy("nope").policy).toBeUndefined();
    expect(parsePolicy({ metadata: { name: "p" }, spec: {} }).problems).toEqual([{ path: "metadata.namespace", message: "is required" }]);
    expect(parsePolicy({ kind: "Pod", metadata: { name: "p", namespace: "x" } }).policy).toBeUndefined();
  });

  test("warnings: host bits, an unknown mode; neither fails the policy", () => {
    const r = parsePolicy(np("x/p", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.1.2.3/8" } }] }] }, { "gauze.dev/policy-mode": "dry" }));
    expect(r.problems).toEqual([]);
    expect(r.warnings.map((w) => w.path)).toEqual(['metadata.annotations["gauze.dev/policy-mode"]', "spec.ingress[0].from[0].ipBlock.cidr"]);
    expect(r.policy!.mode).toBe("enforce");
    expect(r.policy!.failed).toEqual({ ingress: false, egress: false });
  });

  test("prototype keys in untrusted JSON are data", () => {
    const r = parsePolicy(JSON.parse('{"metadata":{"namespace":"x","name":"p"},"spec":{"podSelector":{"matchLabels":{"__proto__":"x"}}}}'));
    expect(r.problems.map((p) => p.path)).toEqual(["spec.podSelector.matchLabels.__proto__"]);
    // "constructor" is a valid label key; a pod without it must not match through Object.prototype.
    const w = world([pod("x/a", "10.0.0.1"), pod("x/b", "10.0.0.2")], [policy("x/p", { podSelector: { matchExpressions: [{ key: "constructor", operator: "Exists" }] }, ingress: [] })]);
    expect(evaluate(w, q("x/b", "x/a", 80)).allowed).toBe(true);
  });
});

describe("failing closed", () => {
  const pods = [pod("x/a", "10.0.0.1", { app: "a" }), pod("x/b", "10.0.0.2", { app: "b" }), pod("y/c", "10.0.1.1")];
  const broken = (spec: Record<string, unknown>) => parsePolicy(np("x/broken", spec)).policy!;

  test("a bad CIDR isolates the selected pods in that direction and the policy allows nothing there", () => {
    const p = broken({ podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/99" } }] }, {}], egress: [{}] });
    expect(p.failed).toEqual({ ingress: true, egress: false });
    const w = world(pods, [p]);
    const v = evaluate(w, q("y/c", "x/a", 80));
    expect(v.allowed).toBe(false); // rule 1 ({}) would have allowed it: a broken direction allows nothing
    expect(v.ingress).toMatchObject({ isolated: true, failedClosed: ["x/broken"], deniedBy: { policies: ["x/broken"] } });
    expect(ok(w, "y/c", "x/b", 80)).toBe(true); // not selected: untouched
    expect(ok(w, "x/a", "y/c", 80)).toBe(true); // its egress part is fine and works
  });

  test("it never stops another policy from allowing", () => {
    const w = world(pods, [broken({ podSelector: {}, ingress: [{ ports: [{ port: 80, protocol: "tcp" }] }] }), policy("x/ok", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ ports: [{ port: 80 }] }] })]);
    expect(ok(w, "y/c", "x/a", 80)).toBe(true);
    expect(ok(w, "y/c", "x/b", 80)).toBe(false);
  });

  test("an unreadable podSelector isolates every pod of the namespace, in the directions the policy covers", () => {
    const p = broken({ podSelector: { matchLabels: { app: 7 } }, ingress: [{}] });
    expect(p.podSelector).toBeUndefined();
    expect(p.failed).toEqual({ ingress: true, egress: false });
    const w = world(pods, [p]);
    expect(ok(w, "y/c", "x/a", 80)).toBe(false);
    expect(ok(w, "y/c", "x/b", 80)).toBe(false);
    expect(ok(w, "x/a", "y/c", 80)).toBe(true);
    expect(ok(w, "x/a", "x/b", 80)).toBe(false);
  });

  test("unreadable policyTypes fail both directions", () => {
    const p = broken({ podSelector: { matchLabels: { app: "a" } }, policyTypes: "Ingress", ingress: [{}] });
    expect(p.failed).toEqual({ ingress: true, egress: true });
    const w = world(pods, [p]);
    expect(ok(w, "x/a", "y/c", 80)).toBe(false);
    expect(ok(w, "y/c", "x/a", 80)).toBe(false);
  });

  test("a bad rule in a direction the policyTypes leave out still fails that direction closed", () => {
    const p = broken({ podSelector: { matchLabels: { app: "a" } }, policyTypes: ["Ingress"], ingress: [{}], egress: [{ ports: [{ port: -1 }] }] });
    expect(p.failed).toEqual({ ingress: false, egress: true });
    const w = world(pods, [p]);
    expect(ok(w, "x/a", "y/c", 80)).toBe(false);
    expect(ok(w, "y/c", "x/a", 80)).toBe(true);
  });

  const ok = (w: ReturnType<typeof world>, from: string, to: string, port: number) => evaluate(w, q(from, to, port)).allowed;
});

describe("pods and namespaces from the API", () => {
  test("a V1Pod becomes its labels, addresses, node, node addresses and named ports", () => {
    const info = podInfoFromV1({
      metadata: { namespace: "x", name: "web-1", labels: { app: "web", "bad key!": "x", n: 5 } },
      spec: {
        nodeName: "n1",
        containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080 }, { name: "dns", containerPort: 53, protocol: "UDP" }, { containerPort: 99999 }] }],
        initContainers: [{ name: "side", restartPolicy: "Always", ports: [{ name: "proxy", containerPort: 15001 }] }, { name: "init", ports: [{ name: "once", containerPort: 1 }] }],
      },
      status: { phase: "Running", podIP: "10.0.0.5", podIPs: [{ ip: "10.0.0.5" }, { ip: "FD00:0::5" }], hostIPs: [{ ip: "192.168.0.1" }] },
    });
    expect(info).toEqual({
      namespace: "x", name: "web-1", labels: { app: "web" }, ips: ["10.0.0.5", "fd00::5"], node: "n1", nodeIps: ["192.168.0.1"],
      ports: [{ name: "http", port: 8080, protocol: "TCP" }, { name: "dns", port: 53, protocol: "UDP" }, { name: "proxy", port: 15001, protocol: "TCP" }],
    });
  });

  test("a finished pod keeps no address; a host-network pod is marked; junk is refused", () => {
    expect(podInfoFromV1({ metadata: { namespace: "x", name: "done" }, status: { phase: "Succeeded", podIP: "10.0.0.9" } })!.ips).toEqual([]);
    expect(podInfoFromV1({ metadata: { namespace: "x", name: "h" }, spec: { hostNetwork: true }, status: { podIP: "192.168.0.1" } })!.hostNetwork).toBe(true);
    expect(podInfoFromV1({ metadata: { namespace: "X_bad", name: "p" } })).toBeUndefined();
    expect(podInfoFromV1(null)).toBeUndefined();
  });

  test("a namespace always carries kubernetes.io/metadata.name", () => {
    expect(nsInfoFromV1({ metadata: { name: "y", labels: { team: "blue", "kubernetes.io/metadata.name": "forged" } } })).toEqual({ name: "y", labels: { team: "blue", "kubernetes.io/metadata.name": "y" } });
    expect(nsInfoFromV1({ metadata: {} })).toBeUndefined();
  });
});
