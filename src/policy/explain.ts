// A verdict in words: `reasonLine` for a log line or a drop counter's label
// ("dropped: policy default/deny-all (ingress isolated; no rule allows 10.244.1.2 -> :80/TCP)"),
// `explain` for `gauze policy explain`, the walk through each direction and, when the verdict was
// traced, every rule looked at. Names in a verdict come from the API: they are printed through
// `printable` so a crafted name cannot forge a line.
import { printable } from "../util/text.ts";
import type { Direction, DirectionVerdict, EndpointDesc, Query, Verdict } from "./types.ts";

function who(e: EndpointDesc): string {
  return printable(e.pod ?? e.ip ?? "?");
}

function addrOf(e: EndpointDesc): string {
  return printable(e.ip ?? e.pod ?? "?");
}

function flow(d: Direction, v: Verdict, q: Query): string {
  return d === "ingress" ? `${addrOf(v.from)} -> :${q.port}/${q.protocol}` : `-> ${addrOf(v.to)}:${q.port}/${q.protocol}`;
}

function dropped(d: Direction, dv: DirectionVerdict, v: Verdict, q: Query, policies: readonly string[], audit: boolean): string {
  const noun = policies.length === 1 ? (audit ? "audit policy" : "policy") : audit ? "audit policies" : "policies";
  const failed = dv.failedClosed?.length ? `, failed closed: ${dv.failedClosed.map(printable).join(", ")}` : "";
  return `${noun} ${policies.map(printable).join(", ")} (${d} isolated${failed}; no rule allows ${flow(d, v, q)})`;
}

function passed(d: Direction, dv: DirectionVerdict, v: Verdict): string {
  const side = d === "egress" ? `egress from ${who(v.from)}` : `ingress to ${who(v.to)}`;
  switch (dv.via) {
    case "rule": return `${side} by ${printable(dv.allowedBy!.policy)} rule ${dv.allowedBy!.rule}${dv.allowedBy!.peer !== undefined ? ` peer ${dv.allowedBy!.peer}` : ""}`;
    case "not-isolated": return `${side} not isolated`;
    case "loopback": return "loopback";
    case "own-node": return `${side}: own node`;
    case "not-a-pod": return `${side}: not a pod`;
    case "host-network": return `${side}: host network`;
    case "denied": return `${side} denied`;
  }
}

export function reasonLine(v: Verdict, q: Query): string {
  const dirs = (["egress", "ingress"] as const);
  if (!v.allowed) {
    const parts = dirs.filter((d) => !v[d].allowed).map((d) => dropped(d, v[d], v, q, v[d].deniedBy?.policies ?? [], false));
    const near = dirs.map((d) => v[d].closest).find((c) => !!c);
    return `dropped: ${parts.join("; ")}${near ? `; nearest: ${printable(near.policy)} rule ${near.rule}: ${printable(near.why)}` : ""}`;
  }
  if (v.audit) {
    const parts = dirs.filter((d) => v[d].audit).map((d) => dropped(d, v[d], v, q, v[d].audit!.policies, true));
    return `allowed (audit): would be dropped by ${parts.join("; ")}`;
  }
  if (v.egress.via === "loopback") return "allowed: loopback (a pod to itself)";
  return `allowed: ${passed("egress", v.egress, v)}; ${passed("ingress", v.ingress, v)}`;
}

function endpointLine(e: EndpointDesc): string {
  const extra = [e.pod && e.ip ? e.ip : undefined, e.node ? `node ${e.node}` : undefined, e.hostNetwork ? "host network" : undefined].filter((x): x is string => !!x);
  return `${who(e)}${extra.length ? ` (${printable(extra.join(", "))})` : ""}`;
}

function directionLines(d: Direction, dv: DirectionVerdict, v: Verdict, q: Query): string[] {
  const self = d === "egress" ? v.from : v.to;
  const out = [`${d} ${d === "egress" ? "from" : "to"} ${who(self)}:`];
  switch (dv.via) {
    case "loopback": out.push("  a pod to itself: always allowed"); break;
    case "not-a-pod": out.push(`  ${who(self)} is not a pod: no policy applies`); break;
    case "host-network": out.push(`  ${who(self)} is a host-network pod (node traffic): no policy applies`); break;
    case "own-node": out.push(`  ${d === "egress" ? "to" : "from"} its own node: always allowed${dv.isolated ? " (the pod is isolated otherwise)" : ""}`); break;
    default:
      if (!dv.isolated) out.push(`  not isolated: no enforcing policy selects ${who(self)} for ${d}`);
      else out.push(`  isolated by ${(dv.isolatedBy ?? []).map(printable).join(", ")}`);
  }
  if (dv.failedClosed?.length) out.push(`  failed closed (a problem in the policy; it allows nothing in ${d}): ${dv.failedClosed.map(printable).join(", ")}`);
  for (const s of dv.walk ?? []) out.push(`  ${s.audit ? "[audit] " : ""}${printable(s.policy)} rule ${s.rule}: ${s.matched ? "" : "no match: "}${printable(s.why)}`);
  if (dv.via === "rule") out.push(`  => allowed by ${printable(dv.allowedBy!.policy)} rule ${dv.allowedBy!.rule}${dv.allowedBy!.peer !== undefined ? ` peer ${dv.allowedBy!.peer}` : ""}`);
  else if (!dv.allowed) {
    out.push(`  => dropped: no rule of ${dv.deniedBy!.policies.map(printable).join(", ")} allows ${flow(d, v, q)}`);
    if (dv.closest) out.push(`     nearest: ${printable(dv.closest.policy)} rule ${dv.closest.rule}: ${printable(dv.closest.why)}`);
  } else out.push("  => allowed");
  if (dv.audit) out.push(`  audit: ${dv.audit.policies.map(printable).join(", ")} would drop this if enforced`);
  return out;
}

export function explain(v: Verdict, q: Query): string {
  const lines = [`${endpointLine(v.from)} -> ${endpointLine(v.to)} port ${q.port}/${q.protocol}, IPv${v.family}`];
  lines.push(...directionLines("egress", v.egress, v, q), ...directionLines("ingress", v.ingress, v, q));
  lines.push(`verdict: ${reasonLine(v, q)}`);
  return lines.join("\n");
}
