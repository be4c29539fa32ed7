// The shapes every policy module shares: the world a verdict is computed over (namespaces, pods,
// parsed policies), a query, and the verdict with its reasons. Plain data, no behaviour, so the
// agent's nftables compiler, the eBPF datapath, `gauze policy explain` and the lab's policy test
// can all hold and print them without importing the evaluator.
import type { Prefix } from "../net/cidr.ts";

export type Protocol = "TCP" | "UDP" | "SCTP";
export const PROTOCOLS: readonly Protocol[] = ["TCP", "UDP", "SCTP"];
export type Direction = "ingress" | "egress";
export type Labels = Readonly<Record<string, string>>;

export interface NsInfo {
  name: string;
  labels: Labels;
}

export interface ContainerPort {
  name?: string;
  port: number;
  protocol: Protocol;
}

export interface PodInfo {
  namespace: string;
  name: string;
  labels: Labels;
  /** At most one per family; empty until the pod has an address. A host-network pod's are its node's. */
  ips: string[];
  node?: string;
  /** The addresses of the pod's node (status.hostIPs): traffic to and from them is always allowed. */
  nodeIps?: string[];
  hostNetwork?: boolean;
  ports: ContainerPort[];
}

export interface PolicyWorld {
  namespaces: NsInfo[];
  pods: PodInfo[];
  policies: ParsedPolicy[];
}

/** Where a field of an untrusted object went wrong, e.g. `spec.ingress[0].from[1].ipBlock.cidr`. */
export interface Problem {
  path: string;
  message: string;
}

export type SelectorOp = "In" | "NotIn" | "Exists" | "DoesNotExist";

export interface Requirement {
  key: string;
  op: SelectorOp;
  values: string[];
}

/** A label selector as one list of requirements (matchLabels become `In` with one value). */
export interface Selector {
  requirements: Requirement[];
}

export interface IpBlock {
  /** As written (host bits may be set); `prefix` is the network. */
  cidr: string;
  prefix: Prefix;
  except: { cidr: string; prefix: Prefix }[];
}

export type PeerSpec =
  | { kind: "selector"; podSelector?: Selector; namespaceSelector?: Selector }
  | { kind: "ipBlock"; block: IpBlock };

/** `from`/`to` undefined means every port of the protocol; `name` is resolved on the destination pod. */
export type PortSpec =
  | { protocol: Protocol; kind: "number"; from?: number; to?: number }
  | { protocol: Protocol; kind: "name"; name: string };

export interface Rule {
  /** Position in spec.ingress or spec.egress, as users count them. */
  index: number;
  /** "any": the rule has no from/to, so every peer (inside or outside the cluster) matches. */
  peers: PeerSpec[] | "any";
  ports: PortSpec[] | "any";
}

export interface ParsedPolicy {
  namespace: string;
  name: string;
  /** "namespace/name", how verdicts name the policy. */
  key: string;
  /** `gauze.dev/policy-mode: audit`: evaluated and reported, never enforced. */
  mode: "enforce" | "audit";
  /** Undefined when it could not be parsed: the policy then selects every pod of its namespace. */
  podSelector?: Selector;
  /** The directions the policy isolates its pods in (policyTypes, explicit or implied). */
  types: Record<Direction, boolean>;
  ingress: Rule[];
  egress: Rule[];
  /** Directions where a problem made the policy fail closed: isolated, and no rule of it allows. */
  failed: Record<Direction, boolean>;
  problems: Problem[];
}

/** One end of a connection: a pod of the world, or a bare address (outside the cluster, or a node). */
export type Peer = { namespace: string; name: string } | { ip: string };

export interface Query {
  from: Peer;
  to: Peer;
  port: number;
  protocol: Protocol;
  /** Which of a dual-stack pod's addresses the connection uses; by default the family of a bare-IP end, else 4 if both pods have one. */
  family?: 4 | 6;
}

export interface RuleRef {
  policy: string;
  rule: number;
  /** Index in from/to of the peer that matched; absent when the rule has no peers (matches all). */
  peer?: number;
}

/** Why a direction let the connection through, or "denied". */
export type Via = "not-isolated" | "rule" | "loopback" | "own-node" | "not-a-pod" | "host-network" | "denied";

export interface WalkStep {
  policy: string;
  rule: number;
  matched: boolean;
  why: string;
  /** A rule of an audit-mode policy, looked at only to report what it would have done. */
  audit?: true;
}

export interface DirectionVerdict {
  allowed: boolean;
  isolated: boolean;
  via: Via;
  allowedBy?: RuleRef;
  /** The enforcing policies that select the pod in this direction, when it is isolated. */
  isolatedBy?: readonly string[];
  /** The enforcing policies that isolate the pod in this direction (when nothing allowed it). */
  deniedBy?: { policies: readonly string[] };
  /** The rule that came nearest to allowing, and why it did not. */
  closest?: { policy: string; rule: number; why: string };
  /** Policies that isolate this direction because a problem made them fail closed. */
  failedClosed?: readonly string[];
  /** Audit-mode policies that would have dropped this direction had they been enforced. */
  audit?: { policies: string[] };
  /** Every rule looked at, in order, when the evaluation was asked to trace. */
  walk?: WalkStep[];
}

/** Shared between verdicts about the same end (and frozen): copy before changing. */
export interface EndpointDesc {
  /** "namespace/name" for a pod. */
  readonly pod?: string;
  /** The address the connection uses; absent for a pod without an address of the family. */
  readonly ip?: string;
  readonly hostNetwork?: boolean;
  readonly node?: string;
}

export interface Verdict {
  allowed: boolean;
  /** True when only audit-mode policies would have dropped the connection. */
  audit?: boolean;
  from: EndpointDesc;
  to: EndpointDesc;
  family: 4 | 6;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}
