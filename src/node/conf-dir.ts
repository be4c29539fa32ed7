// Which CNI config a runtime would use from a config directory: as libcni does, the
// lexicographically first valid *.conflist / *.conf / *.json; with none, the NotReady message
// Kubernetes users see. The lab's runtime stand-in, the agent and doctor all judge net.d by this.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

export const NOT_INITIALIZED =
  "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

export interface NetworkList {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
  file: string;
}

export class NoNetworkError extends Error {}

/** The config libcni would pick from `confDir`, or the NotReady error when there is none. */
export function loadNetwork(confDir: string): NetworkList {
  let files: string[] = [];
  try {
    files = readdirSync(confDir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  } catch {
    // no directory: same as empty
  }
  const problems: string[] = [];
  for (const f of files) {
    try {
      const raw = JSON.parse(readFileSync(join(confDir, f), "utf8")) as Record<string, unknown>;
      if (f.endsWith(".conflist")) {
        if (!Array.isArray(raw.plugins) || raw.plugins.length === 0) throw new Error("no plugins");
        if (typeof raw.name !== "string" || typeof raw.cniVersion !== "string") throw new Error("missing name or cniVersion");
        return { cniVersion: raw.cniVersion, name: raw.name, plugins: raw.plugins as Record<string, unknown>[], file: f };
      }
      if (typeof raw.type !== "string" || typeof raw.name !== "string") throw new Error("missing type or name");
      return { cniVersion: String(raw.cniVersion ?? "0.2.0"), name: raw.name, plugins: [raw], file: f };
    } catch (e) {
      problems.push(`${f}: ${(e as Error).message}`);
    }
  }
  throw new NoNetworkError(NOT_INITIALIZED + (problems.length ? ` (skipped: ${problems.join("; ")})` : ""));
}
