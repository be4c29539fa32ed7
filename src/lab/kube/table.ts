// Lists and objects as kubectl asks for them (`Accept: application/json;as=Table;g=meta.k8s.io;
// v=v1`): a meta.k8s.io Table with the columns `kubectl get` prints for each kind (the -o wide
// ones at priority 1), ages worded as kubectl words them, and each row's object as metadata only
// unless includeObject says otherwise (kubectl reads a row's namespace from it for -A). Objects
// are taken as they are: a NetworkPolicy is stored unvalidated, so every cell is computed from
// whatever shape it has.
import type { ResourceType } from "./resources.ts";

type Obj = Record<string, unknown>;
interface Column { name: string; type: string; format: string; description: string; priority: number }

const col = (name: string, priority = 0, type = "string", format = ""): Column => ({ name, type, format, description: name, priority });
const o = (v: unknown): Obj => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const a = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const s = (v: unknown, none = "<none>"): string => (typeof v === "string" && v ? v : typeof v === "number" ? String(v) : none);

/** k8s.io/apimachinery's HumanDuration: 45s, 5m12s, 3h20m, 2d4h, 1y30d. */
export function humanDuration(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec < -1) return "<invalid>";
  if (sec < 0) return "0s";
  if (sec < 120) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 10) return sec % 60 === 0 ? `${min}m` : `${min}m${sec % 60}s`;
  if (min < 180) return `${min}m`;
  const h = Math.floor(min / 60);
  if (h < 8) return min % 60 === 0 ? `${h}h` : `${h}h${min % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  const days = Math.floor(h / 24);
  if (h < 24 * 365 * 8) return days % 365 === 0 ? `${Math.floor(days / 365)}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

function age(obj: Obj, now: number): string {
  const t = Date.parse(s(o(obj.metadata).creationTimestamp, ""));
  return Number.isFinite(t) ? humanDuration(now - t) : "<unknown>";
}

/** A label selector as kubectl prints one (`app=web,tier in (a,b),!debug`; the empty one is <none>). */
export function formatSelector(sel: unknown): string {
  const ml = o(o(sel).matchLabels);
  const parts = Object.keys(ml).sort().map((k) => `${k}=${String(ml[k])}`);
  for (const e of a(o(sel).matchExpressions)) {
    const x = o(e);
    const vals = a(x.values).map(String).join(",");
    switch (x.operator) {
      case "In": parts.push(`${String(x.key)} in (${vals})`); break;
      case "NotIn": parts.push(`${String(x.key)} notin (${vals})`); break;
      case "Exists": parts.push(String(x.key)); break;
      case "DoesNotExist": parts.push(`!${String(x.key)}`); break;
      default: parts.push(`${String(x.key)} ${String(x.operator)} (${vals})`);
    }
  }
  return parts.length ? parts.join(",") : "<none>";
}

/** kubectl's pod STATUS: the pod's reason, else a waiting or terminated container's, else the phase. */
function podStatus(p: Obj): string {
  if (o(p.metadata).deletionTimestamp) return "Terminating";
  const st = o(p.status);
  let reason = s(st.reason, "") || s(st.phase, "Unknown");
  for (const c of a(st.containerStatuses)) {
    const state = o(o(c).state);
    const w = s(o(state.waiting).reason, ""), t = s(o(state.terminated).reason, "");
    if (w) reason = w; else if (t) reason = t;
  }
  return reason;
}

function nodeStatus(n: Obj): string {
  const ready = a(o(n.status).conditions).map(o).find((c) => c.type === "Ready");
  const st = !ready ? "Unknown" : ready.status === "True" ? "Ready" : "NotReady";
  return o(n.spec).unschedulable === true ? `${st},SchedulingDisabled` : st;
}

function nodeRoles(n: Obj): string {
  const roles = Object.keys(o(o(n.metadata).labels)).filter((k) => k.startsWith("node-role.kubernetes.io/")).map((k) => k.slice("node-role.kubernetes.io/".length) || "<none>");
  return roles.length ? roles.sort().join(",") : "<none>";
}

const address = (n: Obj, type: string) => s(o(a(o(n.status).addresses).map(o).find((x) => x.type === type)).address);

const TABLES: Record<string, { columns: Column[]; cells: (x: Obj, now: number) => unknown[] }> = {
  namespaces: { columns: [col("Name", 0, "string", "name"), col("Status"), col("Age")], cells: (x, now) => [s(o(x.metadata).name), s(o(x.status).phase, "Active"), age(x, now)] },
  pods: {
    columns: [col("Name", 0, "string", "name"), col("Ready"), col("Status"), col("Restarts", 0, "integer"), col("Age"), col("IP", 1), col("Node", 1), col("Nominated Node", 1), col("Readiness Gates", 1)],
    cells: (x, now) => {
      const cs = a(o(x.status).containerStatuses).map(o);
      const total = a(o(x.spec).containers).length;
      return [s(o(x.metadata).name), `${cs.filter((c) => c.ready === true).length}/${total}`, podStatus(x), cs.reduce((n, c) => n + (typeof c.restartCount === "number" ? c.restartCount : 0), 0), age(x, now),
        s(o(x.status).podIP), s(o(x.spec).nodeName), s(o(x.status).nominatedNodeName), "<none>"];
    },
  },
  nodes: {
    columns: [col("Name", 0, "string", "name"), col("Status"), col("Roles"), col("Age"), col("Version"), col("Internal-IP", 1), col("External-IP", 1), col("OS-Image", 1), col("Kernel-Version", 1), col("Container-Runtime", 1)],
    cells: (x, now) => {
      const info = o(o(x.status).nodeInfo);
      return [s(o(x.metadata).name), nodeStatus(x), nodeRoles(x), age(x, now), s(info.kubeletVersion, ""), address(x, "InternalIP"), address(x, "ExternalIP"), s(info.osImage, "<unknown>"), s(info.kernelVersion, "<unknown>"), s(info.containerRuntimeVersion, "<unknown>")];
    },
  },
  serviceaccounts: { columns: [col("Name", 0, "string", "name"), col("Secrets", 0, "integer"), col("Age")], cells: (x, now) => [s(o(x.metadata).name), a(x.secrets).length, age(x, now)] },
  daemonsets: {
    columns: [col("Name", 0, "string", "name"), col("Desired", 0, "integer"), col("Current", 0, "integer"), col("Ready", 0, "integer"), col("Up-to-date", 0, "integer"), col("Available", 0, "integer"), col("Node Selector"), col("Age")],
    cells: (x, now) => { const st = o(x.status); const n = (k: string) => Number(st[k] ?? 0); return [s(o(x.metadata).name), n("desiredNumberScheduled"), n("currentNumberScheduled"), n("numberReady"), n("updatedNumberScheduled"), n("numberAvailable"), "<none>", age(x, now)]; },
  },
  networkpolicies: { columns: [col("Name", 0, "string", "name"), col("Pod-Selector"), col("Age")], cells: (x, now) => [s(o(x.metadata).name), formatSelector(o(x.spec).podSelector), age(x, now)] },
};

export type IncludeObject = "None" | "Metadata" | "Object";

/** The Table of `objects` (the API's version of Table kubectl asked for: v1 or v1beta1). */
export function toTable(r: ResourceType, objects: Obj[], o2: { resourceVersion: string; include: IncludeObject; tableVersion?: "v1" | "v1beta1"; now?: number }): Obj {
  const t = TABLES[r.resource]!;
  const now = o2.now ?? Date.now();
  return {
    kind: "Table", apiVersion: `meta.k8s.io/${o2.tableVersion ?? "v1"}`, metadata: { resourceVersion: o2.resourceVersion },
    columnDefinitions: t.columns,
    rows: objects.map((x) => ({
      cells: t.cells(x, now),
      ...(o2.include === "None" ? {} : { object: o2.include === "Object" ? x : { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: x.metadata } }),
    })),
  };
}

/** Which Table an Accept header asks for, if any ("application/json;as=Table;v=v1;g=meta.k8s.io, ..."). */
export function tableAsked(accept: string | undefined): "v1" | "v1beta1" | undefined {
  for (const part of (accept ?? "").split(",")) {
    const params = new Map(part.split(";").slice(1).map((p) => p.trim().split("=") as [string, string]));
    if (params.get("as") === "Table" && params.get("g") === "meta.k8s.io") {
      const v = params.get("v");
      if (v === "v1" || v === "v1beta1") return v;
    }
  }
  return undefined;
}
