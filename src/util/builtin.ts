// Small helpers without node built-ins: under bun, importing node:crypto or node:path costs
// start-up time the plugin pays on every call (see docs/benchmarks.md).

export function sha256Hex(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}

/** Joins path parts with "/" (node:path costs start-up time under bun; these are simple paths). */
export function joinPath(...parts: string[]): string {
  return parts.join("/").replace(/\/{2,}/g, "/");
}
