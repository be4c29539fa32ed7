// What an etcd failure means, in gauze's words. The etcd3 client wraps a dead endpoint in grpc
// and circuit-breaker errors ("Execution prevented because the circuit breaker is open", "14
// UNAVAILABLE: No connection established"): a newcomer learns nothing from them. Failures of
// reach (refused, timed out, no route, the breaker open after those) become "etcd <endpoints>
// unreachable (<cause>) while <what>" with what the agent does meanwhile; anything else (a
// permission, a bad request) keeps the client's text, which is then the useful part.
import { isBrokenCircuitError } from "cockatiel";
import { GRPCDeadlineExceededError, isRecoverableError } from "etcd3";

export interface EtcdFailure {
  message: string;
  fix: string;
  /** The endpoints could not be reached at all (as opposed to etcd answering with an error). */
  unreachable: boolean;
}

/** What keeps working while etcd is away: said with every unreachable failure. */
export const MEANWHILE = "meanwhile the dataplane stays as last programmed (pods keep talking) and the agent tries again, reconciling once etcd answers";

const TLS_WORDS = /certificate|self[ -]signed|\bSSL\b|\bTLS\b|handshake|unable to verify/i;

/** The cause of a reach failure, short ("connection refused"); undefined when etcd did answer. */
export function reachCause(e: unknown): string | undefined {
  if (isBrokenCircuitError(e)) return "no answer to the last attempts: the client waits before trying again";
  if (e instanceof GRPCDeadlineExceededError) return "no answer before the deadline";
  const text = e instanceof Error ? e.message : String(e);
  const os = /\b(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ECONNRESET)\b/.exec(text)?.[1];
  const words: Record<string, string> = {
    ECONNREFUSED: "connection refused: nothing listens there", ETIMEDOUT: "connection timed out", EHOSTUNREACH: "no route to the host",
    ENETUNREACH: "network unreachable", ENOTFOUND: "the name does not resolve", EAI_AGAIN: "the name does not resolve (yet)", ECONNRESET: "connection reset",
  };
  if (os) return words[os];
  // grpc reports a refused certificate as UNAVAILABLE too: that etcd answered, and said no.
  if (TLS_WORDS.test(text)) return undefined;
  if (/DEADLINE_EXCEEDED|deadline/i.test(text)) return "no answer before the deadline";
  if (/UNAVAILABLE|No connection established|circuit breaker/i.test(text)) return "no connection";
  if (e instanceof Error && isRecoverableError(e)) return "no connection";
  return undefined;
}

export function describeEtcdFailure(e: unknown, what: string, endpoints: string[]): EtcdFailure {
  const where = endpoints.join(",");
  const cause = reachCause(e);
  if (cause) return { message: `etcd ${where} unreachable (${cause}) while ${what}; ${MEANWHILE}`, fix: "check that etcd runs and that this node reaches it", unreachable: true };
  const text = e instanceof Error ? e.message : String(e);
  const fix = TLS_WORDS.test(text) ? "give the CA that signed etcd's certificate (--etcd-cafile) and, when etcd asks for one, a client certificate and key (--etcd-certfile, --etcd-keyfile)" : "check that etcd runs and that this node can reach it";
  return { message: `etcd ${where}: ${what}: ${text}`, fix, unreachable: false };
}
