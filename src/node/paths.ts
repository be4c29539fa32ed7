// Where a node's contract files live: the agent writes them, the plugin, the runtime, doctor and
// the lab read them. Real paths on a node, or the same paths under a node root (the lab gives
// each node its own tree).
export const CONFLIST_NAME = "10-gauze.conflist";

export interface NodePaths {
  subnetFile: string;
  confDir: string;
  dataDir: string;
  statusFile: string;
  /** The agent's local API (flows, sightings, pods): a unix socket, root only. */
  apiSocket: string;
  /** The plugin's pod records. */
  podRecords: string;
}

export function nodePaths(root = ""): NodePaths {
  return {
    subnetFile: `${root}/run/gauze/subnet.env`,
    confDir: `${root}/etc/cni/net.d`,
    dataDir: `${root}/var/lib/cni/networks`,
    statusFile: `${root}/run/gauze/agent.json`,
    apiSocket: `${root}/run/gauze/agent.sock`,
    podRecords: `${root}/run/gauze/pods`,
  };
}
