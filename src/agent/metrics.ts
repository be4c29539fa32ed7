// The agent's Prometheus metrics (prom-client), on its own registry.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics(node: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ node });
  collectDefaultMetrics({ register: registry, prefix: "gauze_agent_" });
  return {
    registry,
    ready: new Gauge({ name: "gauze_agent_ready", help: "1 when the device, subnet file, conflist and rules are in place", registers: [registry] }),
    peers: new Gauge({ name: "gauze_peers", help: "other nodes this node programs routes for", registers: [registry] }),
    reconciles: new Counter({ name: "gauze_reconcile_total", help: "reconcile passes", labelNames: ["result"], registers: [registry] }),
    reconcileSeconds: new Histogram({ name: "gauze_reconcile_duration_seconds", help: "time of one reconcile pass", buckets: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1], registers: [registry] }),
    kernelChanges: new Counter({ name: "gauze_kernel_changes_total", help: "route/neighbour/FDB entries added or removed", labelNames: ["op"], registers: [registry] }),
    kernelRefusals: new Counter({ name: "gauze_kernel_refusals_total", help: "changes the kernel refused during reconcile (each logged)", registers: [registry] }),
    repairs: new Counter({ name: "gauze_drift_repairs_total", help: "reconcile passes started by a kernel event (an owned entry changed by hand)", registers: [registry] }),
    invalidLeases: new Gauge({ name: "gauze_invalid_leases", help: "leases refused and not programmed (malformed, outside the pod network, overlapping, unusable by the backend); see the agent log and doctor", registers: [registry] }),
    leaseLosses: new Counter({ name: "gauze_lease_losses_total", help: "times this node's lease was found lost (expired and taken, or removed) and leased again", registers: [registry] }),
    leaseExpiry: new Gauge({ name: "gauze_lease_expiry_timestamp_seconds", help: "when this node's subnet lease expires", registers: [registry] }),
    registryErrors: new Counter({ name: "gauze_registry_errors_total", help: "failed registry calls", registers: [registry] }),
    packetsObserved: new Counter({ name: "gauze_observed_packets_total", help: "packets the flow observer read (at every interface of the node; sampled TCP bulk counts once)", registers: [registry] }),
    drops: new Counter({ name: "gauze_drops_total", help: "packet drops the kernel reported and this node claimed, by the kernel's reason and where the packet was last seen", labelNames: ["reason", "point"], registers: [registry] }),
    observerLost: new Counter({ name: "gauze_observer_lost_events_total", help: "flow events pushed out (full ring, slow reader, full flow table)", registers: [registry] }),
    feature: new Gauge({ name: "gauze_agent_feature_enabled", help: "1 when a feature of the agent is on, 0 when it is off (why and the fix: the agent's log, /readyz and doctor)", labelNames: ["feature"], registers: [registry] }),
    observerSampling: new Gauge({ name: "gauze_observer_sampling", help: "1 in this many TCP bulk segments is read (1: every packet)", registers: [registry] }),
  };
}

export type AgentMetrics = ReturnType<typeof createMetrics>;
