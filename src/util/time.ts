// Times in gauze's JSON: RFC 3339 in UTC with nanoseconds ("2026-12-02T18:00:00.123456789Z"), as
// Hubble writes them, from whatever the source counts in (a capture's seconds and nanoseconds, an
// agent's epoch milliseconds with microseconds). One format for every command (docs/json.md).

/** RFC 3339 with nine fractional digits from whole seconds and nanoseconds since the epoch. */
export function rfc3339Nanos(sec: number, nsec: number): string {
  const iso = new Date(sec * 1000).toISOString(); // "...:SS.000Z"
  return `${iso.slice(0, 19)}.${String(nsec).padStart(9, "0")}Z`;
}

/** The same from epoch milliseconds (fractions kept to the nanosecond). */
export function rfc3339FromMs(ms: number): string {
  const sec = Math.floor(ms / 1000);
  const nsec = Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6));
  return rfc3339Nanos(sec, nsec);
}
