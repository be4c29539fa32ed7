// The programs stamp events with bpf_ktime_get_ns (CLOCK_MONOTONIC); gauze reports wall-clock
// time. The offset between the two clocks, sampled when events are read, converts one to the
// other (a clock step between the event and the read shows as that step, as with any such
// conversion).
import { libc } from "../libc.ts";

const CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1;
/** A sample whose two monotonic reads are this close is as good as another: stop there. */
const TIGHT_NS = 20_000n;

/**
 * CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds. The realtime read is bracketed by two
 * monotonic reads and the tightest of three brackets is used: a process preempted between two
 * plain reads (a loaded node) would put every event it converts that much later, enough for two
 * agents' sightings of one packet to come out in the wrong order.
 */
export function monotonicToRealtime(): bigint {
  const c = libc();
  const ts = new BigInt64Array(2);
  const now = (clock: number): bigint => {
    c.clock_gettime(clock, ts);
    return ts[0]! * 1_000_000_000n + ts[1]!;
  };
  let best = 0n, window = -1n;
  for (let i = 0; i < 3 && (window < 0n || window > TIGHT_NS); i++) {
    const before = now(CLOCK_MONOTONIC);
    const real = now(CLOCK_REALTIME);
    const after = now(CLOCK_MONOTONIC);
    if (window < 0n || after - before < window) {
      window = after - before;
      best = real - (before + after) / 2n;
    }
  }
  return best;
}
