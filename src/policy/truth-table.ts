// Connectivity truth tables the way the upstream netpol suite builds them (reachability.go,
// truthtable.go): start from all allowed (or all denied), then set rows, columns and cells with
// peer patterns. A table prints as upstream prints it ("." connected, "X" blocked), and two tables
// diff cell by cell, the loopback diagonal ignored by default as upstream ignores it (what a pod
// connecting to itself should see is not defined by the API; gauze always allows it).

export interface PeerPattern {
  /** Empty or absent: any namespace. */
  namespace?: string;
  /** Empty or absent: any pod name. */
  pod?: string;
}

export type MatrixOp =
  | { op: "peer"; from: PeerPattern; to: PeerPattern; allowed: boolean }
  | { op: "all-ingress"; pod: string; allowed: boolean }
  | { op: "all-egress"; pod: string; allowed: boolean }
  | { op: "cell"; from: string; to: string; allowed: boolean };

export interface MatrixSpec {
  start: boolean;
  ops: MatrixOp[];
}

/** cells[i][j]: may pods[i] connect to pods[j] ("namespace/name")? */
export interface Matrix {
  pods: string[];
  cells: boolean[][];
}

export interface CellDiff {
  from: string;
  to: string;
  expected: boolean;
  actual: boolean;
}

export interface MatrixDiff {
  ok: boolean;
  cells: CellDiff[];
  /** The comparison table: "." where the two agree, "X" where they differ. */
  text: string;
}

/** "" any pod, "x" every pod of namespace x, "x/a" one pod: upstream's &Peer{Namespace, Pod}. */
export function pattern(s: string): PeerPattern {
  if (s === "") return {};
  const [namespace, pod] = s.split("/");
  return { ...(namespace ? { namespace } : {}), ...(pod ? { pod } : {}) };
}

export const matrix = (start: boolean, ...ops: MatrixOp[]): MatrixSpec => ({ start, ops });
/** reachability.ExpectPeer(from, to, allowed), patterns as in `pattern`. */
export const peer = (from: string, to: string, allowed: boolean): MatrixOp => ({ op: "peer", from: pattern(from), to: pattern(to), allowed });
/** reachability.ExpectAllIngress(pod, allowed): the pod's column. */
export const allIngress = (pod: string, allowed: boolean): MatrixOp => ({ op: "all-ingress", pod, allowed });
/** reachability.ExpectAllEgress(pod, allowed): the pod's row. */
export const allEgress = (pod: string, allowed: boolean): MatrixOp => ({ op: "all-egress", pod, allowed });
/** reachability.Expect(from, to, allowed): one cell. */
export const cell = (from: string, to: string, allowed: boolean): MatrixOp => ({ op: "cell", from, to, allowed });

function matches(p: PeerPattern, pod: string): boolean {
  const [ns, name] = pod.split("/");
  return (!p.namespace || p.namespace === ns) && (!p.pod || p.pod === name);
}

export function buildMatrix(spec: MatrixSpec, pods: readonly string[]): Matrix {
  const cells = pods.map(() => pods.map(() => spec.start));
  const at = (pod: string): number => {
    const i = pods.indexOf(pod);
    if (i < 0) throw new Error(`truth table has no pod ${pod}`);
    return i;
  };
  for (const o of spec.ops) {
    switch (o.op) {
      case "peer":
        pods.forEach((f, i) => { if (matches(o.from, f)) pods.forEach((t, j) => { if (matches(o.to, t)) cells[i]![j] = o.allowed; }); });
        break;
      case "all-ingress": { const j = at(o.pod); cells.forEach((row) => { row[j] = o.allowed; }); break; }
      case "all-egress": { const i = at(o.pod); cells[i] = pods.map(() => o.allowed); break; }
      case "cell": cells[at(o.from)]![at(o.to)] = o.allowed; break;
    }
  }
  return { pods: [...pods], cells };
}

function table(pods: readonly string[], mark: (i: number, j: number) => string): string {
  const w = Math.max(3, ...pods.map((p) => p.length)) + 1;
  const pad = (s: string): string => s.padEnd(w);
  const lines = [[pad("-"), ...pods.map(pad)].join("").trimEnd()];
  pods.forEach((from, i) => lines.push([pad(from), ...pods.map((_, j) => pad(mark(i, j)))].join("").trimEnd()));
  return lines.join("\n");
}

/** Rows are sources, columns destinations; "." connected, "X" blocked. */
export function renderMatrix(m: Matrix): string {
  return table(m.pods, (i, j) => (m.cells[i]![j] ? "." : "X"));
}

export function diffMatrices(expected: Matrix, actual: Matrix, opts: { ignoreLoopback?: boolean } = {}): MatrixDiff {
  const ignore = opts.ignoreLoopback !== false;
  if (expected.pods.join() !== actual.pods.join()) throw new Error("truth tables over different pods");
  const cells: CellDiff[] = [];
  const text = table(expected.pods, (i, j) => {
    const e = expected.cells[i]![j]!;
    const a = actual.cells[i]![j]!;
    if (e === a || (ignore && i === j)) return ".";
    cells.push({ from: expected.pods[i]!, to: expected.pods[j]!, expected: e, actual: a });
    return "X";
  });
  return { ok: cells.length === 0, cells, text };
}
