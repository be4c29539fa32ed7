// Which node a kernel drop belongs to, where the drop event itself does not say: the packet-ring
// observer and trace both join a kfree_skb event to the packet last seen before it, and this says
// whether that packet can have died that way at that point. (On one host, as in the lab, every
// node's agent sees every drop: this keeps a node from claiming one it did not have.)
import type { ObservationPoint } from "./flow-types.ts";

/**
 * Whether a drop can have happened to a packet last seen at this point: a tunnel's transmit
 * drop follows the packet going to the overlay device; a VXLAN receive drop, one arriving from
 * the network; a forwarding or filtering drop, one arriving at the node.
 */
export function plausible(d: { reason: string; location: string }, s: { point: ObservationPoint; egress: boolean }): boolean {
  if (/^(NO_TX_TARGET|TUNNEL_TXINFO|VXLAN_NO_REMOTE)$/.test(d.reason) || d.location.startsWith("vxlan_xmit")) return s.point === "to-overlay";
  if (/^VXLAN_|^MAC_INVALID_SOURCE$|^IP_TUNNEL_ECN$/.test(d.reason) || d.location.startsWith("vxlan_rcv")) return s.point === "from-network";
  // No socket for it: only a packet delivered here, into a pod (after its veth) or to the node
  // itself (arriving from the network), meets a socket lookup; a packet being forwarded never does.
  if (d.reason === "NO_SOCKET") return s.point === "to-pod" || s.point === "from-network" || s.point === "host";
  if (/^(NETFILTER_DROP|IP_INNOROUTES|IP_INADDRERRORS|IP_RPFILTER|OTHERHOST|IP_INHDR|IP_CSUM|PKT_TOO_BIG|IP_INVALID_SOURCE|IP_LOCAL_SOURCE)$/.test(d.reason)) return !s.egress;
  return true;
}

