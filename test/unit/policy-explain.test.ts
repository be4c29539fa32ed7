// Verdicts in words: the one-line reason (what a drop log says), the nearest miss, and the walk.
import { describe, expect, test } from "bun:test";
import { evaluate } from "../../src/policy/evaluate.ts";
import { explain, reasonLine } from "../../src/policy/explain.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import { ns, np, pod, policy, ports, q, world } from "../fixtures/policy/helpers.ts";

const pods = [
  pod("default/web", "10.244.1.2", { app: "web" }, { ports: ports(["http", 80]) }),
  pod("default/api", "10.244.1.3", { app: "api" }),
  pod("other/tool", "10.244.2.9", { app: "tool" }),
];
const line = (w: ReturnType<typeof world>, ...a: Parameters<typeof q>) => reasonLine(evaluate(w, q(...a)), q(...a));

describe("reasonLine", () => {
  test("a default deny names the policy, the direction and the flow", () => {
    const w = world(pods, [policy("default/deny-all", { podSelector: {}, ingress: [] })]);
    expect(line(w, "default/web", "default/api", 80)).toBe("dropped: policy default/deny-all (ingress isolated; no rule allows 10.244.1.2 -> :80/TCP)");
    expect(line(w, "default/api", "other/tool", 80)).toBe("allowed: egress from default/api not isolated; ingress to other/tool not isolated");
  });

  test("an egress drop names the destination", () => {
    const w = world(pods, [policy("default/no-out", { podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Egress"] })]);
    expect(line(w, "default/web", "203.0.113.5", 443)).toBe("dropped: policy default/no-out (egress isolated; no rule allows -> 203.0.113.5:443/TCP)");
  });

  test("the nearest rule says why it missed: wrong port, wrong protocol, pod label, namespace label", () => {
    const w = world(pods, [policy("default/allow", { podSelector: { matchLabels: { app: "api" } }, ingress: [
      { from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: 8080 }] },
      { from: [{ namespaceSelector: { matchLabels: { team: "blue" } }, podSelector: { matchLabels: { app: "tool" } } }] },
    ] })], [ns("default"), ns("other")]);
    const near = (from: string, port: number, proto: "TCP" | "UDP" = "TCP") => evaluate(w, q(from, "default/api", port, proto)).ingress.closest;
    expect(near("default/web", 80)).toEqual({ policy: "default/allow", rule: 0, why: "port 80/TCP not in 8080/TCP" });
    expect(near("default/web", 8080, "UDP")!.why).toBe("protocol UDP not allowed (rule allows TCP only)");
    expect(near("other/tool", 8080)).toEqual({ policy: "default/allow", rule: 1, why: "namespace other not selected by namespace selector team=blue (label team missing)" });
    const w2 = world([...pods, pod("other/web", "10.244.2.10", { app: "web" })], [policy("default/allow", { podSelector: { matchLabels: { app: "api" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }] })]);
    expect(evaluate(w2, q("default/api", "default/api", 1)).allowed).toBe(true);
    expect(evaluate(w2, q("other/web", "default/api", 1)).ingress.closest!.why).toBe("other/web is not in the policy's namespace default (the peer has no namespaceSelector)");
    const w3 = world([...pods, pod("default/cron", "10.244.1.7", { app: "cron" })], w2.policies);
    expect(evaluate(w3, q("default/cron", "default/api", 1)).ingress.closest!.why).toBe("pod default/cron not selected by pod selector app=web (label app=cron, needs web)");
    expect(line(w3, "default/cron", "default/api", 1)).toBe("dropped: policy default/allow (ingress isolated; no rule allows 10.244.1.7 -> :1/TCP); nearest: default/allow rule 0: pod default/cron not selected by pod selector app=web (label app=cron, needs web)");
  });

  test("an except and a failed-closed policy are named", () => {
    const w = world(pods, [policy("default/blk", { podSelector: { matchLabels: { app: "web" } }, ingress: [{ from: [{ ipBlock: { cidr: "10.244.0.0/16", except: ["10.244.2.0/24"] } }] }] })]);
    expect(evaluate(w, q("other/tool", "default/web", 80)).ingress.closest!.why).toBe("10.244.2.9 is in except 10.244.2.0/24 of ipBlock 10.244.0.0/16");
    const bad = parsePolicy(np("default/bad", { podSelector: {}, ingress: [{ ports: [{ port: 80, protocol: "HTTP" }] }] })).policy!;
    expect(line(world(pods, [bad]), "other/tool", "default/web", 80)).toBe("dropped: policy default/bad (ingress isolated, failed closed: default/bad; no rule allows 10.244.2.9 -> :80/TCP)");
  });

  test("audit names the policy that would have dropped", () => {
    const w = world(pods, [policy("default/try-deny", { podSelector: {}, ingress: [] }, { "gauze.dev/policy-mode": "audit" })]);
    expect(line(w, "other/tool", "default/web", 80)).toBe("allowed (audit): would be dropped by audit policy default/try-deny (ingress isolated; no rule allows 10.244.2.9 -> :80/TCP)");
  });
});

describe("explain", () => {
  test("the walk lists every rule looked at, the match, and the verdict", () => {
    const w = world(pods, [
      policy("default/dns", { podSelector: {}, ingress: [{ ports: [{ port: 53, protocol: "UDP" }] }] }),
      policy("default/web", { podSelector: { matchLabels: { app: "web" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "api" } } }], ports: [{ port: "http" }] }] }),
    ]);
    const query = q("default/api", "default/web", 80);
    const text = explain(evaluate(w, query, { trace: true }), query);
    expect(text.split("\n")).toEqual([
      "default/api (10.244.1.3, node n1) -> default/web (10.244.1.2, node n1) port 80/TCP, IPv4",
      "egress from default/api:",
      "  not isolated: no enforcing policy selects default/api for egress",
      "  => allowed",
      "ingress to default/web:",
      "  isolated by default/dns, default/web",
      "  default/dns rule 0: no match: protocol TCP not allowed (rule allows UDP only)",
      "  default/web rule 0: matches (peer 0: pods app=api)",
      "  => allowed by default/web rule 0 peer 0",
      "verdict: allowed: egress from default/api not isolated; ingress to default/web by default/web rule 0 peer 0",
    ]);
  });

  test("without a trace it still says who isolates, who dropped and the nearest miss", () => {
    const w = world(pods, [policy("default/web", { podSelector: { matchLabels: { app: "web" } }, ingress: [{ ports: [{ port: "http" }] }] })]);
    const query = q("default/api", "default/web", 81);
    const text = explain(evaluate(w, query), query);
    expect(text).toContain("  isolated by default/web\n  => dropped: no rule of default/web allows 10.244.1.3 -> :81/TCP\n     nearest: default/web rule 0: port 81/TCP not in http/TCP (http is 80/TCP on default/web)");
  });
});
