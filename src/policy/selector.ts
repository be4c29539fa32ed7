// Label selectors (metav1.LabelSelector): parsed from untrusted JSON with a path for every problem,
// matched against labels, printed the way kubectl prints them, and asked why a set of labels
// fails them (the first requirement that does not hold), so a verdict can say "label pod is c".
import { at, child, field, isObject, labelKeyError, labelValueError, present, Problems, quote } from "./syntax.ts";
import type { Labels, Requirement, Selector, SelectorOp } from "./types.ts";

const OPS: readonly SelectorOp[] = ["In", "NotIn", "Exists", "DoesNotExist"];

/** Undefined when anything in it is wrong: a selector half understood would select the wrong pods. */
export function parseSelector(v: unknown, path: string, problems: Problems): Selector | undefined {
  if (!isObject(v)) {
    problems.add(path, "must be a label selector object");
    return undefined;
  }
  const before = problems.count;
  // A misspelt key read as absent would turn the selector into {}: everything.
  for (const k of Object.keys(v)) if (k !== "matchLabels" && k !== "matchExpressions") problems.add(child(path, k), "unknown field (matchLabels, matchExpressions are known)");
  const requirements: Requirement[] = [];
  const ml = field(v, "matchLabels");
  if (present(ml)) {
    const mlPath = child(path, "matchLabels");
    if (!isObject(ml)) problems.add(mlPath, "must be a map of label keys to values");
    else {
      for (const key of Object.keys(ml)) {
        const value = ml[key];
        const keyErr = labelKeyError(key);
        if (keyErr) problems.add(child(mlPath, key), keyErr);
        else if (typeof value !== "string") problems.add(child(mlPath, key), "value must be a string");
        else {
          const valErr = labelValueError(value);
          if (valErr) problems.add(child(mlPath, key), valErr);
          else requirements.push({ key, op: "In", values: [value] });
        }
      }
    }
  }
  const me = field(v, "matchExpressions");
  if (present(me)) {
    const mePath = child(path, "matchExpressions");
    if (!Array.isArray(me)) problems.add(mePath, "must be a list");
    else me.forEach((e, i) => {
      const r = parseRequirement(e, at(mePath, i), problems);
      if (r) requirements.push(r);
    });
  }
  return problems.count === before ? { requirements } : undefined;
}

function parseRequirement(e: unknown, path: string, problems: Problems): Requirement | undefined {
  if (!isObject(e)) {
    problems.add(path, "must be an object with key, operator and values");
    return undefined;
  }
  const key = field(e, "key");
  const op = field(e, "operator");
  const values = field(e, "values");
  const before = problems.count;
  if (typeof key !== "string") problems.add(child(path, "key"), "must be a string");
  else {
    const err = labelKeyError(key);
    if (err) problems.add(child(path, "key"), err);
  }
  if (typeof op !== "string" || !(OPS as readonly string[]).includes(op)) {
    problems.add(child(path, "operator"), `unknown operator ${typeof op === "string" ? quote(op) : String(op)} (In, NotIn, Exists or DoesNotExist)`);
  }
  const list: string[] = [];
  if (present(values)) {
    if (!Array.isArray(values)) problems.add(child(path, "values"), "must be a list of strings");
    else values.forEach((x, i) => {
      if (typeof x !== "string") problems.add(at(child(path, "values"), i), "must be a string");
      else {
        const err = labelValueError(x);
        if (err) problems.add(at(child(path, "values"), i), err);
        else list.push(x);
      }
    });
  }
  if (op === "In" || op === "NotIn") {
    if (list.length === 0 && problems.count === before) problems.add(child(path, "values"), `must not be empty for ${op}`);
  } else if ((op === "Exists" || op === "DoesNotExist") && list.length > 0) {
    problems.add(child(path, "values"), `must be empty for ${op}`);
  }
  if (problems.count !== before) return undefined;
  return { key: key as string, op: op as SelectorOp, values: list };
}

export function matchesSelector(sel: Selector, labels: Labels): boolean {
  for (const r of sel.requirements) if (!holds(r, labels)) return false;
  return true;
}

function holds(r: Requirement, labels: Labels): boolean {
  const has = Object.hasOwn(labels, r.key);
  switch (r.op) {
    case "In": return has && r.values.includes(labels[r.key]!);
    case "NotIn": return !has || !r.values.includes(labels[r.key]!);
    case "Exists": return has;
    case "DoesNotExist": return !has;
  }
}

/** The first requirement the labels fail, in words; undefined when the selector matches. */
export function whyNotSelected(sel: Selector, labels: Labels): string | undefined {
  for (const r of sel.requirements) {
    if (holds(r, labels)) continue;
    const has = Object.hasOwn(labels, r.key);
    const value = has ? labels[r.key]! : undefined;
    switch (r.op) {
      case "In": return has ? `label ${r.key}=${value}, needs ${r.values.length === 1 ? r.values[0] : `one of (${r.values.join(",")})`}` : `label ${r.key} missing`;
      case "NotIn": return `label ${r.key}=${value} is excluded`;
      case "Exists": return `label ${r.key} missing`;
      case "DoesNotExist": return `label ${r.key} present`;
    }
  }
  return undefined;
}

/** kubectl's form: `pod=b,tier in (web,api),!debug`; the empty selector is `{}` (everything). */
export function describeSelector(sel: Selector): string {
  if (sel.requirements.length === 0) return "{}";
  return sel.requirements.map((r) => {
    switch (r.op) {
      case "In": return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values.join(",")})`;
      case "NotIn": return `${r.key} notin (${r.values.join(",")})`;
      case "Exists": return r.key;
      case "DoesNotExist": return `!${r.key}`;
    }
  }).join(",");
}
