// Text from the network (a runtime's CNI_ARGS, an API's objects, a capture, a peer's report) is
// input: Kubernetes names are checked as Kubernetes checks them before gauze keeps them, and
// anything gauze prints that came from elsewhere has its control characters made visible, so a
// name cannot forge a line or send escape codes to a terminal.

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A Kubernetes namespace name (RFC 1123 label: at most 63 lowercase letters, digits and '-'). */
export function isNamespaceName(s: unknown): s is string {
  return typeof s === "string" && s.length <= 63 && DNS1123_LABEL.test(s);
}

/** A Kubernetes pod name (RFC 1123 subdomain: at most 253, labels of [a-z0-9-] joined by '.'). */
export function isPodName(s: unknown): s is string {
  return typeof s === "string" && s.length > 0 && s.length <= 253 && s.split(".").every((l) => l.length <= 63 && DNS1123_LABEL.test(l));
}

/** Why a name is refused, for a log line (the name itself shown printable and cut short). */
export function badName(what: string, s: string): string {
  return `${what} ${JSON.stringify(printable(s.length > 80 ? `${s.slice(0, 80)}...` : s))} is not a valid Kubernetes name (RFC 1123, ${what === "namespace" ? 63 : 253} characters at most)`;
}

// C0 controls, DEL and C1 controls (ESC, CSI, newline, carriage return, backspace ...).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** The text with every control character written as \xNN: safe on a terminal, one line. */
export function printable(s: string): string {
  return s.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Like printable, but keeps line breaks (multi-line reports); every other control is made visible. */
export function printableLines(s: string): string {
  return s.replace(CONTROL, (c) => (c === "\n" ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
}

/** A count with its noun in the right number: "1 packet", "8 packets" (`many` for irregular plurals). */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
