// What can go wrong while building a pod's attachment, as the dataplane sees it. cni/ maps
// these kinds to the spec's error codes; the dataplane knows nothing of CNI.
export type DataplaneFailure =
  /** A link with the bridge's name exists and is something else. */
  | "not-a-bridge"
  /** The interface name asked for the pod is taken inside the pod's namespace. */
  | "ifname-taken"
  /** The pod's namespace path is not a network namespace. */
  | "bad-netns"
  /** The kernel refused a change (the message names it). */
  | "kernel";

export class DataplaneError extends Error {
  constructor(readonly kind: DataplaneFailure, message: string, readonly hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DataplaneError";
  }
}
