// What a doctor check is: a stable id, a status, the evidence it saw, the fix (as advice), and
// optionally a repair that --fix may apply because it is safe.

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

export interface CheckResult {
  id: string;
  group: string;
  title: string;
  status: CheckStatus;
  evidence: string[];
  fix?: string;
  /** Set by --fix: what was done. */
  fixed?: string;
}

export interface Check {
  id: string;
  group: string;
  title: string;
  run(ctx: import("./context.ts").DoctorContext): Promise<Outcome> | Outcome;
}

export interface Outcome {
  status: CheckStatus;
  evidence: string[];
  fix?: string;
  /** A safe repair for --fix; returns what it did. */
  repair?: () => Promise<string> | string;
}

export const ok = (...evidence: string[]): Outcome => ({ status: "ok", evidence });
export const skip = (why: string): Outcome => ({ status: "skip", evidence: [why] });
