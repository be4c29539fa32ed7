// The programs stamp events with bpf_ktime_get_ns (CLOCK_MONOTONIC); gauze reports wall-clock
// time. The offset between the two clocks, sampled when events are read, converts one to the
// other (a clock step between the event and the read shows as that step, as with any such
// conversion).
import { libc } from "../libc.ts";

const CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1;

/** CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds. */
export function monotonicToRealtime(): bigint {
  const c = libc();
  const ts = new BigInt64Array(2);
  c.clock_gettime(CLOCK_MONOTONIC, ts);
  const mono = ts[0]! * 1_000_000_000n + ts[1]!;
  c.clock_gettime(CLOCK_REALTIME, ts);
  return ts[0]! * 1_000_000_000n + ts[1]! - mono;
}
