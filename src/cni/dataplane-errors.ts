// The dataplane's and the kernel's failures as the spec's error codes: a name that is not a
// bridge is a config problem (7), a taken interface name or a bad namespace is the caller's (4),
// and a refused kernel change is an I/O failure (5) whose message names the change.
import { DataplaneError } from "../dataplane/errors.ts";
import { NetlinkError, NetlinkParseError } from "../kernel/netlink/index.ts";
import { NetnsError } from "../kernel/netns.ts";
import { CniCode, CniError } from "./errors.ts";

export function dataplaneToCni(e: unknown): unknown {
  if (e instanceof DataplaneError) {
    const code = e.kind === "not-a-bridge" ? CniCode.InvalidConfig : e.kind === "ifname-taken" || e.kind === "bad-netns" ? CniCode.InvalidEnv : CniCode.IoFailure;
    return new CniError(code, e.message, e.hint, { cause: e });
  }
  if (e instanceof NetlinkError || e instanceof NetlinkParseError || e instanceof NetnsError) {
    return new CniError(CniCode.IoFailure, e.message, "the kernel refused or did not answer a request; the message names it", { cause: e });
  }
  return e;
}
