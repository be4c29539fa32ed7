// The one error catalogue of the plugin. Every failure leaves as the spec's error JSON on
// stdout ({cniVersion, code, msg, details}) with exit status 1; `msg` says what is wrong and
// `details` what to do about it.

/** Error codes of CNI SPEC 1.1.0 ("Error" section). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  ContainerUnknown: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  /** gauze's own (the spec leaves 100+ to plugins): CHECK found the attachment differs from prevResult. */
  CheckFailed: 100,
} as const;
export type CniCode = (typeof CniCode)[keyof typeof CniCode];

export class CniError extends Error {
  constructor(
    readonly code: CniCode,
    message: string,
    /** What the operator should do; goes to the error JSON's `details`. */
    readonly details?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "CniError";
  }
}

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function toErrorJson(err: unknown, cniVersion: string): CniErrorJson {
  if (err instanceof CniError) {
    return { cniVersion, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
  }
  const msg = err instanceof Error ? err.message : String(err);
  // An unexpected failure while touching the kernel or the disk: an I/O failure to the runtime.
  return { cniVersion, code: CniCode.IoFailure, msg, details: "unexpected error inside gauze; the message above names the operation that failed" };
}
