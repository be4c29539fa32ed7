// NetworkPolicy for gauze: one evaluator, pure (no I/O), that the agent's nftables compiler, the
// eBPF datapath, `gauze policy explain` and the lab's policy test share. Objects from the API go
// in through parsePolicy / podInfoFromV1 / nsInfoFromV1 (untrusted: validated, failing closed);
// compileWorld indexes a world once; evaluate answers one query with its reasons, allows and
// allowsBetween answer many; allowRules gives a dataplane its per-pod tuples; explain and
// reasonLine put a verdict in words. The upstream conformance cases live in conformance.ts (data)
// and conformance-run.ts (the model world and runner); they are not re-exported here, since only
// tests and the lab need them.
export type * from "./types.ts";
export { PROTOCOLS } from "./types.ts";
export { MODE_ANNOTATION, parsePolicy, type ParseResult } from "./parse.ts";
export { NAMESPACE_NAME_LABEL, nsInfoFromV1, podInfoFromV1 } from "./objects.ts";
export { compileWorld, PolicyIndex, PolicyQueryError, type Endpoint } from "./world-index.ts";
export { allows, allowsBetween, evaluate, type EvaluateOptions } from "./evaluate.ts";
export { allowRules, nodeAllowRules, type AllowPeers, type AllowTuple, type PodAllowRules, type PortRange } from "./allow-rules.ts";
export { explain, reasonLine } from "./explain.ts";
export { describeSelector } from "./selector.ts";
