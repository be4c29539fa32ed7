// The two selectors of a list or watch, parsed as the API server parses them: labelSelector
// (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas) and
// fieldSelector (`f=v`, `f==v`, `f!=v`, joined by commas) over the fields each resource offers.
// A selector that does not parse is a 400, as there.

export interface LabelRequirement { key: string; op: "=" | "!=" | "in" | "notin" | "exists" | "!"; values: string[] }
export interface FieldRequirement { field: string; op: "=" | "!="; value: string }

export class SelectorError extends Error {}

/** Splits on commas outside parentheses. */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0, cur = "";
  for (const c of text) {
    if (c === "(") depth++;
    if (c === ")") depth--;
    if (c === "," && depth === 0) { out.push(cur); cur = ""; } else cur += c;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter(Boolean);
}

const KEY = /^([a-z0-9A-Z.\-/_]+)$/;

export function parseLabelSelector(text: string): LabelRequirement[] {
  return terms(text).map((t) => {
    let m: RegExpExecArray | null;
    if ((m = /^!\s*(\S+)$/.exec(t))) return { key: key(m[1]!, t), op: "!" as const, values: [] };
    if ((m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(t))) return { key: key(m[1]!, t), op: m[2] as "in" | "notin", values: m[3]!.split(",").map((v) => v.trim()).filter(Boolean) };
    if ((m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(t))) return { key: key(m[1]!, t), op: m[2] === "!=" ? "!=" as const : "=" as const, values: [m[3]!] };
    if ((m = /^(\S+)$/.exec(t))) return { key: key(m[1]!, t), op: "exists" as const, values: [] };
    throw new SelectorError(`unable to parse requirement: ${JSON.stringify(t)}`);
  });
}

function key(k: string, term: string): string {
  if (!KEY.test(k)) throw new SelectorError(`unable to parse requirement: ${JSON.stringify(term)}: invalid label key ${JSON.stringify(k)}`);
  return k;
}

export function labelsMatch(reqs: LabelRequirement[], labels: Record<string, unknown> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const v = Object.hasOwn(l, r.key) ? String(l[r.key]) : undefined;
    switch (r.op) {
      case "=": return v === r.values[0];
      case "!=": return v !== r.values[0];
      case "in": return v !== undefined && r.values.includes(v);
      case "notin": return v === undefined || !r.values.includes(v);
      case "exists": return v !== undefined;
      case "!": return v === undefined;
    }
  });
}

/** The fields each resource can be selected by (metadata.name and metadata.namespace everywhere). */
const FIELDS: Record<string, string[]> = {
  pods: ["spec.nodeName", "status.phase", "status.podIP", "spec.restartPolicy"],
  nodes: ["spec.unschedulable"],
  namespaces: ["status.phase"],
};

export function parseFieldSelector(text: string, resource: string): FieldRequirement[] {
  const known = ["metadata.name", "metadata.namespace", ...(FIELDS[resource] ?? [])];
  return terms(text).map((t) => {
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(t);
    if (!m) throw new SelectorError(`invalid selector: ${JSON.stringify(t)}; can't understand ${JSON.stringify(t)}`);
    if (!known.includes(m[1]!)) throw new SelectorError(`${JSON.stringify(m[1])} is not a known field selector: only ${known.map((f) => JSON.stringify(f)).join(", ")}`);
    return { field: m[1]!, op: m[2] === "!=" ? "!=" as const : "=" as const, value: m[3]!.trim() };
  });
}

function fieldValue(o: Record<string, unknown>, path: string): string {
  let v: unknown = o;
  for (const p of path.split(".")) v = v && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
  if (path === "spec.unschedulable") return String(v === true);
  return v === undefined || v === null ? "" : String(v);
}

export function fieldsMatch(reqs: FieldRequirement[], o: Record<string, unknown>): boolean {
  return reqs.every((r) => (fieldValue(o, r.field) === r.value) === (r.op === "="));
}
