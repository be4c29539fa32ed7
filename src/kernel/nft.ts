// nftables through `nft`, the one tool gauze runs for its NetworkPolicy table (chosen over an
// nf_tables netlink client of its own: see docs/benchmarks.md, "NetworkPolicy programming").
// A script goes on stdin as one transaction: all of it takes effect, or none of it. Argument
// arrays only; the script is written by the compiler from checked data, never from raw input.
import { runSync } from "./spawn.ts";

export class NftError extends Error {
  constructor(message: string, readonly missing: boolean) {
    super(message);
    this.name = "NftError";
  }
}

function nft(args: string[], input?: string, netns?: string) {
  const r = runSync(["nft", ...args], { ...(input !== undefined ? { input } : {}), ...(netns ? { netns } : {}) });
  if (r.status === 127) throw new NftError("nft is not installed (apt-get install nftables; the image carries it)", true);
  return r;
}

/** Applies a script as one transaction; the error names nft's complaint (its first lines). */
export function nftApply(script: string, o: { netns?: string } = {}): void {
  const r = nft(["-f", "-"], script, o.netns);
  if (r.status !== 0) throw new NftError(`nft refused the policy transaction: ${r.stderr.trim().split("\n").slice(0, 6).join(" | ")}`, false);
}

/** Whether a table of the inet family exists. */
export function nftHasTable(table: string, o: { netns?: string } = {}): boolean {
  return nft(["list", "table", "inet", table], undefined, o.netns).status === 0;
}

/** Removes a table of the inet family (quiet when it is not there). */
export function nftDeleteTable(table: string, o: { netns?: string } = {}): boolean {
  return nft(["delete", "table", "inet", table], undefined, o.netns).status === 0;
}

/** A table as nft's JSON (`nft -j list table inet <t>`), parsed; undefined when there is none. */
export function nftTableJson(table: string, o: { netns?: string } = {}): unknown {
  const r = nft(["-j", "list", "table", "inet", table], undefined, o.netns);
  if (r.status !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as unknown;
  } catch {
    return undefined;
  }
}
