// trace's time line across nodes: each node's sightings keep their own order, and a destination
// node whose clock is behind (or ahead) is moved just enough that no packet arrives before it
// left; clocks that agree are left alone. A shifted order once put trace's stop on the wrong node.
import { test, expect } from "bun:test";
import { pathOrder } from "../../src/observe/trace.ts";
import type { ObservationPoint, Sighting } from "../../src/agent/flow-types.ts";

const A = "10.244.0.2", B = "10.244.1.2";
const at = (node: string, point: ObservationPoint, time: number, request = true, extra: Partial<Sighting["key"]> = {}) => ({
  node, s: { time, ifindex: 1, point, egress: point.startsWith("to-"), len: 98, snap: 98,
    key: { family: 4 as const, src: request ? A : B, dst: request ? B : A, proto: 1, srcPort: 0, dstPort: 0, icmpType: request ? 8 : 0, icmpSeq: 1, ipLen: 84, ...extra } } satisfies Sighting,
});
const names = (xs: { node: string; s: Sighting }[]) => xs.map((x) => `${x.node} ${x.s.point} ${x.s.key.src === A ? "req" : "rep"}`);
const shuffle = <T>(xs: T[]) => [...xs].reverse();

test("agreeing clocks: time order, untouched", () => {
  const list = [at("cp", "from-pod", 100), at("cp", "to-network", 100.05), at("wk", "from-network", 100.06), at("wk", "to-pod", 100.08),
    at("wk", "from-pod", 100.1, false), at("wk", "to-network", 100.12, false), at("cp", "from-network", 100.13, false), at("cp", "to-pod", 100.15, false)];
  const { path: out, shiftMs } = pathOrder(shuffle(list), A, "cp", "wk");
  expect(shiftMs).toBe(0);
  expect(names(out)).toEqual(names(list));
  expect(out.map((x) => x.s.time)).toEqual(list.map((x) => x.s.time));
});

test("a source node late by 5 ms (a dropped request): the far node's hops still come after, and last", () => {
  const list = [at("cp", "from-pod", 105), at("cp", "from-bridge", 105.01), at("cp", "to-network", 105.05), at("wk", "from-network", 100.06), at("wk", "from-overlay", 100.07)];
  const { path: out, shiftMs } = pathOrder(list, A, "cp", "wk");
  expect(shiftMs).toBeCloseTo(4.99, 6); // as far as it takes: arrival at the moment it left
  expect(names(out)).toEqual(["cp from-pod req", "cp from-bridge req", "cp to-network req", "wk from-network req", "wk from-overlay req"]);
  expect(out.at(-1)!.s.time).toBeCloseTo(105.06, 6);
});

test("a destination node ahead by 5 ms: moved back only as far as the reply allows", () => {
  const list = [at("cp", "from-pod", 100), at("cp", "to-network", 100.05), at("wk", "from-network", 105.06), at("wk", "to-pod", 105.08),
    at("wk", "from-pod", 105.1, false), at("wk", "to-network", 105.12, false), at("cp", "from-network", 100.13, false), at("cp", "to-pod", 100.15, false)];
  const { path: out } = pathOrder(shuffle(list), A, "cp", "wk");
  expect(names(out)).toEqual(["cp from-pod req", "cp to-network req", "wk from-network req", "wk to-pod req", "wk from-pod rep", "wk to-network rep", "cp from-network rep", "cp to-pod rep"]);
  // The reply left wk no later than cp saw it arrive.
  expect(out.find((x) => x.node === "wk" && x.s.point === "to-network")!.s.time).toBeLessThanOrEqual(100.13);
});

test("a retransmitted SYN is not read as a clock difference; a pod on the same node is never moved", () => {
  const syn = { proto: 6, srcPort: 40000, dstPort: 80, tcpFlags: 2, icmpType: undefined, icmpSeq: undefined };
  const list = [at("cp", "to-network", 100, true, syn), at("wk", "from-network", 100.01, true, syn), at("cp", "to-network", 1100, true, syn), at("wk", "from-network", 1100.01, true, syn)];
  expect(pathOrder(list, A, "cp", "wk").path.map((x) => x.s.time)).toEqual([100, 100.01, 1100, 1100.01]);
  const local = [at("cp", "to-pod", 100.2), at("cp", "from-pod", 100)];
  expect(pathOrder(local, A, "cp", "cp").path.map((x) => x.s.time)).toEqual([100, 100.2]);
});
