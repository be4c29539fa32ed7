// How the relay (client.ts) reaches one node's agent API when it is not a unix socket on this
// host: a function that performs one GET and streams the body. A cluster source (cluster-source.ts)
// gives each endpoint one that runs `gauze agent-api GET <path>` inside the node's agent container
// through the API server's pods/exec, so the agent opens no TCP port and RBAC decides who observes.
// The lab's and this host's endpoints have none: client.ts speaks HTTP to their socket itself.
import type { AgentEndpoint } from "./source.ts";

/** One request in flight: `done` resolves when the body has ended, rejects with why it could not be had. */
export interface AgentCall {
  done: Promise<void>;
  stop(): void;
}

/**
 * Performs GET `path` on the agent's API and hands the body over as it comes. A status other than
 * 200 rejects `done` with "HTTP <code>: <body>"; a transport failure with its reason.
 */
export type AgentTransport = (path: string, onData: (chunk: string) => void, o: { timeoutMs?: number }) => AgentCall;

/** An endpoint reached through a transport: `socket` is the agent's socket path on its node (for messages). */
export interface RemoteAgentEndpoint extends AgentEndpoint {
  transport: AgentTransport;
}

export function transportOf(ep: AgentEndpoint): AgentTransport | undefined {
  const t = (ep as Partial<RemoteAgentEndpoint>).transport;
  return typeof t === "function" ? t : undefined;
}
