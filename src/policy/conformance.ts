// The upstream NetworkPolicy conformance suite (kubernetes test/e2e/network/netpol and its
// network_policy.go) as data: 48 cases, 42 over TCP, 3 over UDP and 3 over SCTP. Each keeps the
// upstream It() title, and is a list of steps (create, update, delete a policy; relabel a pod or
// a namespace) and expectations, a truth table over the 9 model pods written the way upstream
// writes it. The model: namespaces x, y, z labelled ns=<name> (and kubernetes.io/metadata.name),
// pods a, b, c in each labelled pod=<name>, every pod serving 80 and 81 on TCP, UDP and SCTP with
// container ports named serve-80-tcp and so on. Policies are built with the helpers upstream
// uses (GenNetworkPolicyWithNameAndPodSelector, SetSpecIngressRules, SetSpecEgressRules), so a
// policy's policyTypes are what upstream sends. The ipBlock cases need pod addresses, known only
// once pods run: their policies are functions of a ModelContext.
//
// Not included: the LoadBalancer case (feature LoadBalancer: traffic from outside through a
// Service, no truth table) and the API tests of network_policy_api.go.
import type { Protocol } from "./types.ts";
import { allEgress, allIngress, cell, matrix, peer, type MatrixSpec } from "./truth-table.ts";

export const MODEL_NAMESPACES = ["x", "y", "z"] as const;
export const MODEL_POD_NAMES = ["a", "b", "c"] as const;
export const MODEL_PORTS = [80, 81] as const;
export const MODEL_PODS: readonly string[] = MODEL_NAMESPACES.flatMap((ns) => MODEL_POD_NAMES.map((p) => `${ns}/${p}`));

export type Json = Record<string, unknown>;

/** What an ipBlock case may know about the running model: a pod's address in the family under test. */
export interface ModelContext {
  ip(pod: string): string;
  /** The pod's address as a /32 (or /128). */
  hostCidr(pod: string): string;
  /** upstream's makeLargeCIDRForIP: the /4 that holds the pod's address. */
  largeCidr(pod: string): string;
}

export type PolicyDoc = Json | ((m: ModelContext) => Json);

export type Step =
  | { do: "create" | "update"; namespace: string; policy: PolicyDoc }
  /** Without a name: every policy of every namespace (upstream's cleanNetworkPolicies). */
  | { do: "delete"; namespace?: string; name?: string }
  /** Labels merged into the pod's (upstream AddPodLabels). */
  | { do: "label-pod"; pod: string; labels: Record<string, string> }
  | { do: "label-ns"; namespace: string; labels: Record<string, string> }
  | { expect: { port: number; protocol: Protocol; matrix: MatrixSpec } };

export type Category = "default-deny" | "selectors" | "ports" | "stacked" | "mutation" | "egress" | "protocol" | "ipblock";

export interface ConformanceCase {
  id: string;
  /** The upstream It() title. */
  upstream: string;
  /** The upstream Describe block: the TCP suite, "using UDP", or "using SCTP". */
  suite: Protocol;
  category: Category;
  steps: Step[];
}

// --- upstream's policy builders (policies.go) ---
interface Spec {
  podSelector: Json;
  policyTypes: string[];
  ingress?: Json[];
  egress?: Json[];
}
type SetFunc = (spec: Spec) => void;

/** GenNetworkPolicyWithNameAndPodSelector / ...AndPodMatchLabel. */
function gen(name: string, podSelector: Json, ...set: SetFunc[]): Json {
  const spec: Spec = { podSelector, policyTypes: [] };
  for (const s of set) s(spec);
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name }, spec };
}
/** SetSpecIngressRules: the first call adds Ingress to policyTypes, even with no rules. */
const ingress = (...rules: Json[]): SetFunc => (spec) => {
  if (!spec.ingress) { spec.ingress = []; spec.policyTypes.push("Ingress"); }
  spec.ingress.push(...rules);
};
const egress = (...rules: Json[]): SetFunc => (spec) => {
  if (!spec.egress) { spec.egress = []; spec.policyTypes.push("Egress"); }
  spec.egress.push(...rules);
};
/** A field set by hand after the builder, as some upstream cases do. */
const patch = (p: Partial<Spec>): SetFunc => (spec) => { Object.assign(spec, p); };

const NS = "kubernetes.io/metadata.name";
const all: Json = {};
const labels = (l: Record<string, string>): Json => ({ matchLabels: l });
const expr = (key: string, operator: string, values: string[]): Json => ({ matchExpressions: [{ key, operator, values }] });
const pod = (name: string): Json => labels({ pod: name });

const create = (namespace: string, policy: PolicyDoc): Step => ({ do: "create", namespace, policy });
const update = (namespace: string, policy: PolicyDoc): Step => ({ do: "update", namespace, policy });
const expect = (port: number, protocol: Protocol, m: MatrixSpec): Step => ({ expect: { port, protocol, matrix: m } });
const allOpen = matrix(true);

// Policies more than one case uses.
const denyIngress = (name: string): Json => gen(name, all, ingress());
const fromNsY81 = (name: string, protocol: Protocol): Json =>
  gen(name, pod("a"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "y" }) }], ports: [{ port: 81, protocol }] }));
const fromYa = gen("allow-ns-y-pod-a-via-namespace-pod-selector", pod("a"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "y" }), podSelector: pod("a") }] }));
const cidrExcept = (m: ModelContext): Json =>
  gen("allow-client-a-via-cidr-egress-rule", pod("a"), egress({ to: [{ ipBlock: { cidr: m.largeCidr("x/b"), except: [m.hostCidr("x/b")] } }] }));

const onlyFromYa = matrix(true, allIngress("x/a", false), cell("y/a", "x/a", true));
const onlyFromNsY = matrix(true, peer("x", "x/a", false), peer("z", "x/a", false));
const allowPort81FromY = matrix(true, peer("x", "x/a", false), peer("y", "x/a", true), peer("z", "x/a", false));

export const CONFORMANCE_CASES: readonly ConformanceCase[] = [
  { id: "deny-ingress-all", suite: "TCP", category: "default-deny", upstream: "should support a 'default-deny-ingress' policy", steps: [
    create("x", denyIngress("deny-ingress")),
    expect(80, "TCP", matrix(true, peer("", "x", false))),
  ] },
  { id: "deny-all", suite: "TCP", category: "default-deny", upstream: "should support a 'default-deny-all' policy", steps: [
    create("x", gen("deny-all", all, ingress(), egress())),
    expect(80, "TCP", matrix(true, peer("", "x", false), peer("x", "", false))),
  ] },
  { id: "allow-ingress-pod-selector", suite: "TCP", category: "selectors", upstream: "should enforce policy to allow traffic from pods within server namespace based on PodSelector", steps: [
    create("x", gen("x-a-allows-x-b", pod("a"), ingress({ from: [{ podSelector: pod("b") }] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", false), cell("x/b", "x/a", true))),
  ] },
  { id: "allow-ingress-to-target", suite: "TCP", category: "stacked", upstream: "should enforce policy to allow ingress traffic for a target", steps: [
    create("x", denyIngress("deny-all")),
    create("x", gen("allow-all-to-a", pod("a"), ingress({ from: [{ podSelector: {}, namespaceSelector: {} }] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", true), allIngress("x/b", false), allIngress("x/c", false))),
  ] },
  { id: "allow-ingress-all-namespaces", suite: "TCP", category: "selectors", upstream: "should enforce policy to allow ingress traffic from pods in all namespaces", steps: [
    create("x", gen("allow-from-another-ns", pod("a"), ingress({ from: [{ namespaceSelector: labels({}) }] }))),
    expect(80, "TCP", allOpen),
  ] },
  { id: "allow-ingress-ns-selector", suite: "TCP", category: "selectors", upstream: "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector", steps: [
    create("x", gen("allow-client-a-via-ns-selector", pod("a"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "y" }) }] }))),
    expect(80, "TCP", onlyFromNsY),
  ] },
  { id: "allow-ingress-pod-match-expressions", suite: "TCP", category: "selectors", upstream: "should enforce policy based on PodSelector with MatchExpressions", steps: [
    create("x", gen("x-a-allows-x-b", pod("a"), ingress({ from: [{ podSelector: expr("pod", "In", ["b"]) }] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", false), cell("x/b", "x/a", true))),
  ] },
  { id: "allow-ingress-ns-match-expressions", suite: "TCP", category: "selectors", upstream: "should enforce policy based on NamespaceSelector with MatchExpressions", steps: [
    create("x", gen("allow-ns-y-match-selector", pod("a"), ingress({ from: [{ namespaceSelector: expr(NS, "In", ["y"]) }] }))),
    expect(80, "TCP", onlyFromNsY),
  ] },
  { id: "allow-ingress-pod-or-ns-selector", suite: "TCP", category: "selectors", upstream: "should enforce policy based on PodSelector or NamespaceSelector", steps: [
    create("x", gen("allow-ns-y-match-selector", pod("a"), ingress({ from: [{ namespaceSelector: expr(NS, "NotIn", ["x"]) }, { podSelector: pod("b") }] }))),
    expect(80, "TCP", matrix(true, cell("x/a", "x/a", false), cell("x/c", "x/a", false))),
  ] },
  { id: "allow-ingress-ns-and-pod-selector", suite: "TCP", category: "selectors", upstream: "should enforce policy based on PodSelector and NamespaceSelector", steps: [
    create("x", gen("allow-ns-y-podselector-and-nsselector", pod("a"), ingress({ from: [{ namespaceSelector: expr(NS, "NotIn", ["x"]), podSelector: pod("b") }] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", false), cell("y/b", "x/a", true), cell("z/b", "x/a", true))),
  ] },
  { id: "allow-ingress-multi-pod-and-ns-selectors", suite: "TCP", category: "selectors", upstream: "should enforce policy based on Multiple PodSelectors and NamespaceSelectors", steps: [
    create("x", gen("allow-ns-y-z-pod-b-c", pod("a"), ingress({ from: [{ namespaceSelector: expr(NS, "NotIn", ["x"]), podSelector: expr("pod", "In", ["b", "c"]) }] }))),
    expect(80, "TCP", matrix(true, peer("x", "x/a", false), cell("y/a", "x/a", false), cell("z/a", "x/a", false))),
  ] },
  { id: "allow-ingress-any-pod-selectors", suite: "TCP", category: "selectors", upstream: "should enforce policy based on any PodSelectors", steps: [
    create("x", gen("allow-ns-x-pod-b-c", pod("a"), ingress({ from: [{ podSelector: pod("b") }, { podSelector: pod("c") }] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", false), cell("x/b", "x/a", true), cell("x/c", "x/a", true))),
  ] },
  { id: "allow-ingress-pod-in-other-ns", suite: "TCP", category: "selectors", upstream: "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector", steps: [
    create("x", fromYa),
    expect(80, "TCP", onlyFromYa),
  ] },
  { id: "allow-ingress-port-number", suite: "TCP", category: "ports", upstream: "should enforce policy based on Ports", steps: [
    create("x", fromNsY81("allow-client-a-via-ns-selector", "TCP")),
    expect(81, "TCP", allowPort81FromY),
  ] },
  { id: "stacked-overlapping-pod-selectors", suite: "TCP", category: "stacked", upstream: "should enforce multiple, stacked policies with overlapping podSelectors", steps: [
    create("x", fromNsY81("allow-client-a-via-ns-selector", "TCP")),
    expect(81, "TCP", allowPort81FromY),
    expect(80, "TCP", matrix(true, allIngress("x/a", false))),
    create("x", gen("allow-client-a-via-ns-selector-80", pod("a"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "y" }) }], ports: [{ port: 80, protocol: "TCP" }] }))),
    expect(80, "TCP", allowPort81FromY),
  ] },
  { id: "allow-all", suite: "TCP", category: "default-deny", upstream: "should support allow-all policy", steps: [
    create("x", gen("allow-all", labels({}), ingress({}))),
    expect(80, "TCP", allOpen),
    expect(81, "TCP", allOpen),
  ] },
  { id: "allow-ingress-named-port", suite: "TCP", category: "ports", upstream: "should allow ingress access on one named port", steps: [
    create("x", gen("allow-all", labels({}), ingress({ ports: [{ port: "serve-81-tcp" }] }))),
    expect(81, "TCP", allOpen),
    expect(80, "TCP", matrix(true, peer("", "x", false))),
  ] },
  { id: "allow-ingress-ns-named-port", suite: "TCP", category: "ports", upstream: "should allow ingress access from namespace on one named port", steps: [
    create("x", gen("allow-client-a-via-ns-selector-80", pod("a"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "y" }) }], ports: [{ port: "serve-80-tcp", protocol: "TCP" }] }))),
    expect(80, "TCP", onlyFromNsY),
    expect(81, "TCP", matrix(true, allIngress("x/a", false))),
  ] },
  { id: "allow-egress-named-port", suite: "TCP", category: "ports", upstream: "should allow egress access on one named port", steps: [
    create("x", gen("allow-egress", labels({}), egress({ ports: [{ port: "serve-80-tcp" }] }))),
    expect(80, "TCP", allOpen),
    expect(81, "TCP", matrix(true, peer("x", "", false))),
  ] },
  { id: "update-policy", suite: "TCP", category: "mutation", upstream: "should enforce updated policy", steps: [
    create("x", gen("allow-all-mutate-to-deny-all", labels({}), ingress({}))),
    expect(81, "TCP", allOpen),
    update("x", gen("allow-all-mutate-to-deny-all", labels({}), ingress())),
    expect(81, "TCP", matrix(true, peer("", "x", false))),
  ] },
  { id: "relabel-namespace", suite: "TCP", category: "mutation", upstream: "should allow ingress access from updated namespace", steps: [
    create("x", gen("allow-client-a-via-ns-selector", pod("a"), ingress({ from: [{ namespaceSelector: labels({ ns2: "updated" }) }] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", false))),
    { do: "label-ns", namespace: "y", labels: { ns2: "updated" } },
    expect(80, "TCP", matrix(true, allIngress("x/a", false), peer("y", "", true))),
  ] },
  { id: "relabel-pod-allow", suite: "TCP", category: "mutation", upstream: "should allow ingress access from updated pod", steps: [
    create("x", gen("allow-client-a-via-pod-selector", pod("a"), ingress({ from: [{ podSelector: labels({ pod: "b", pod2: "updated" }) }] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", false))),
    { do: "label-pod", pod: "x/b", labels: { pod: "b", pod2: "updated" } },
    expect(80, "TCP", matrix(true, allIngress("x/a", false), cell("x/b", "x/a", true))),
  ] },
  { id: "deny-ingress-other-namespaces", suite: "TCP", category: "selectors", upstream: "should deny ingress from pods on other namespaces", steps: [
    create("x", gen("deny-empty-policy", all, ingress({ from: [{ podSelector: labels({}) }] }))),
    expect(80, "TCP", matrix(true, peer("y", "x", false), peer("z", "x", false))),
  ] },
  { id: "relabel-pod-isolate", suite: "TCP", category: "mutation", upstream: "should deny ingress access to updated pod", steps: [
    create("x", gen("deny-ingress-via-label-selector", labels({ target: "isolated" }), ingress())),
    expect(80, "TCP", allOpen),
    { do: "label-pod", pod: "x/a", labels: { target: "isolated" } },
    expect(80, "TCP", matrix(true, allIngress("x/a", false))),
  ] },
  { id: "deny-egress-pod", suite: "TCP", category: "egress", upstream: "should deny egress from pods based on PodSelector", steps: [
    create("x", gen("deny-egress-pod-a", pod("a"), egress())),
    expect(80, "TCP", matrix(true, allEgress("x/a", false))),
  ] },
  { id: "deny-egress-namespace", suite: "TCP", category: "egress", upstream: "should deny egress from all pods in a namespace", steps: [
    create("x", gen("deny-egress-ns-x", all, egress())),
    expect(80, "TCP", matrix(true, peer("x", "", false))),
  ] },
  { id: "ingress-and-egress-together", suite: "TCP", category: "egress", upstream: "should work with Ingress, Egress specified together", steps: [
    create("x", gen("allow-client-a-via-pod-selector", pod("a"), ingress({ from: [{ podSelector: pod("b") }] }),
      patch({ egress: [{ ports: [{ port: 80 }] }], policyTypes: ["Egress", "Ingress"] }))),
    expect(80, "TCP", matrix(true, allIngress("x/a", false), cell("x/b", "x/a", true))),
    expect(81, "TCP", matrix(true, allIngress("x/a", false), allEgress("x/a", false), cell("x/b", "x/a", true))),
  ] },
  { id: "egress-client-side-deny", suite: "TCP", category: "egress", upstream: "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)", steps: [
    create("x", gen("allow-to-ns-y-pod-a", pod("a"), egress({ to: [{ namespaceSelector: labels({ [NS]: "y" }), podSelector: pod("a") }] }))),
    create("y", gen("allow-from-xa-on-ya-match-selector", pod("a"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "x" }), podSelector: pod("a") }] }))),
    create("y", gen("allow-from-xa-on-yb-match-selector", pod("b"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "x" }), podSelector: pod("a") }] }))),
    expect(80, "TCP", matrix(true, peer("x/a", "", false), peer("", "y/a", false), peer("x/a", "y/a", true), peer("", "y/b", false))),
  ] },
  { id: "allow-egress-pod-in-other-ns", suite: "TCP", category: "egress", upstream: "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector", steps: [
    create("x", gen("allow-to-ns-y-pod-a", pod("a"), egress({ to: [{ namespaceSelector: labels({ [NS]: "y" }), podSelector: pod("a") }] }))),
    expect(80, "TCP", matrix(true, allEgress("x/a", false), cell("x/a", "y/a", true))),
  ] },
  { id: "allow-ingress-protocol-only", suite: "TCP", category: "protocol", upstream: "should enforce ingress policy allowing any port traffic to a server on a specific protocol", steps: [
    create("x", gen("allow-ingress-by-proto", pod("a"), ingress({ ports: [{ protocol: "TCP" }] }))),
    expect(80, "TCP", allOpen),
    expect(80, "UDP", matrix(true, peer("", "x/a", false))),
  ] },
  { id: "stacked-ingress-allow-all-wins", suite: "TCP", category: "stacked", upstream: "should enforce multiple ingress policies with ingress allow-all policy taking precedence", steps: [
    create("x", gen("allow-ingress-port-80", labels({}), ingress({ ports: [{ port: 80 }] }))),
    expect(81, "TCP", matrix(true, peer("", "x", false))),
    create("x", gen("allow-ingress", labels({}), ingress({}))),
    expect(81, "TCP", allOpen),
  ] },
  { id: "stacked-egress-allow-all-wins", suite: "TCP", category: "stacked", upstream: "should enforce multiple egress policies with egress allow-all policy taking precedence", steps: [
    create("x", gen("allow-egress-port-80", labels({}), egress({ ports: [{ port: 80 }] }))),
    expect(81, "TCP", matrix(true, peer("x", "", false))),
    create("x", gen("allow-egress", labels({}), egress({}))),
    expect(81, "TCP", allOpen),
  ] },
  { id: "delete-policies", suite: "TCP", category: "mutation", upstream: "should stop enforcing policies after they are deleted", steps: [
    create("x", gen("deny-all", all, ingress(), egress())),
    expect(80, "TCP", matrix(true, peer("x", "", false), peer("", "x", false))),
    { do: "delete" },
    expect(80, "TCP", allOpen),
  ] },
  { id: "allow-egress-cidr", suite: "TCP", category: "ipblock", upstream: "should allow egress access to server in CIDR block", steps: [
    create("x", (m) => gen("allow-client-a-via-cidr-egress-rule", pod("a"), egress({ to: [{ ipBlock: { cidr: m.hostCidr("y/b") } }] }))),
    expect(80, "TCP", matrix(true, allEgress("x/a", false), cell("x/a", "y/b", true))),
  ] },
  { id: "allow-egress-cidr-except", suite: "TCP", category: "ipblock", upstream: "should enforce except clause while egress access to server in CIDR block", steps: [
    create("x", cidrExcept),
    expect(80, "TCP", matrix(true, cell("x/a", "x/b", false))),
  ] },
  { id: "allow-egress-cidr-except-overlap", suite: "TCP", category: "ipblock", upstream: "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed", steps: [
    create("x", cidrExcept),
    expect(80, "TCP", matrix(true, cell("x/a", "x/b", false))),
    update("x", (m) => gen("allow-client-a-via-cidr-egress-rule", pod("a"), egress({ to: [{ ipBlock: { cidr: m.hostCidr("x/b") } }] }))),
    expect(80, "TCP", matrix(true, allEgress("x/a", false), cell("x/a", "x/b", true))),
  ] },
  { id: "ingress-egress-independent", suite: "TCP", category: "egress", upstream: "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector", steps: [
    create("x", gen("allow-egress-for-target", pod("a"), egress({}))),
    expect(80, "TCP", allOpen),
    create("x", gen("deny-ingress-via-label-selector", pod("a"), ingress())),
    expect(80, "TCP", matrix(true, allIngress("x/a", false))),
  ] },
  { id: "sctp-not-tcp", suite: "TCP", category: "protocol", upstream: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP", steps: [
    create("x", denyIngress("deny-ingress")),
    create("x", gen("allow-only-sctp-ingress-on-port-81", pod("a"), ingress({ ports: [{ port: 81, protocol: "SCTP" }] }))),
    expect(81, "TCP", matrix(true, peer("", "x", false))),
  ] },
  { id: "sctp-isolates", suite: "TCP", category: "protocol", upstream: "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP", steps: [
    create("x", gen("allow-only-sctp-ingress-on-port-80", pod("a"), ingress({ ports: [{ port: 80, protocol: "SCTP" }] }))),
    expect(81, "TCP", matrix(true, allIngress("x/a", false))),
  ] },
  { id: "udp-not-tcp", suite: "TCP", category: "protocol", upstream: "should not allow access by TCP when a policy specifies only UDP", steps: [
    create("x", gen("allow-only-udp-ingress-on-port-81", pod("a"), ingress({ ports: [{ port: 81, protocol: "UDP" }] }))),
    expect(81, "TCP", matrix(true, allIngress("x/a", false))),
  ] },
  { id: "allow-ingress-default-ns-label", suite: "TCP", category: "selectors", upstream: "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label", steps: [
    create("x", gen("allow-client-a-via-ns-selector-for-immutable-ns-label", pod("a"), ingress({ from: [{ namespaceSelector: labels({ [NS]: "y" }) }] }))),
    expect(80, "TCP", onlyFromNsY),
  ] },
  { id: "allow-egress-default-ns-label-expressions", suite: "TCP", category: "selectors", upstream: "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label", steps: [
    create("x", gen("allow-ns-y-match-selector-for-immutable-ns-label", pod("a"), egress({ to: [{ namespaceSelector: expr(NS, "NotIn", ["y"]) }] }))),
    expect(80, "TCP", matrix(true, peer("x/a", "y", false))),
  ] },
  // "NetworkPolicy between server and client using UDP"
  { id: "udp-deny-ingress-all", suite: "UDP", category: "default-deny", upstream: "should support a 'default-deny-ingress' policy", steps: [
    create("x", denyIngress("deny-all")),
    expect(80, "UDP", matrix(true, peer("", "x", false))),
  ] },
  { id: "udp-allow-ingress-port-number", suite: "UDP", category: "ports", upstream: "should enforce policy based on Ports", steps: [
    create("x", fromNsY81("allow-ingress-on-port-81-ns-x", "UDP")),
    expect(81, "UDP", onlyFromNsY),
  ] },
  { id: "udp-allow-ingress-pod-in-other-ns", suite: "UDP", category: "selectors", upstream: "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector", steps: [
    create("x", fromYa),
    expect(80, "UDP", onlyFromYa),
  ] },
  // "NetworkPolicy between server and client using SCTP" (feature SCTPConnectivity)
  { id: "sctp-deny-ingress-all", suite: "SCTP", category: "default-deny", upstream: "should support a 'default-deny-ingress' policy", steps: [
    create("x", denyIngress("deny-all")),
    expect(80, "SCTP", matrix(true, peer("", "x", false))),
  ] },
  { id: "sctp-allow-ingress-port-number", suite: "SCTP", category: "ports", upstream: "should enforce policy based on Ports", steps: [
    create("x", fromNsY81("allow-ingress-on-port-81-ns-x", "SCTP")),
    expect(81, "SCTP", onlyFromNsY),
  ] },
  { id: "sctp-allow-ingress-pod-in-other-ns", suite: "SCTP", category: "selectors", upstream: "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector", steps: [
    create("x", fromYa),
    expect(80, "SCTP", onlyFromYa),
  ] },
];
