// The pods/exec subresource's wire, as the API server speaks it to the official clients
// (client-go's and @kubernetes/client-node's WebSocket executors, kubectl exec): an HTTP upgrade
// to a WebSocket (RFC 6455, written here: a server frames unmasked, reads masked frames) with
// one of the channel subprotocols, v5.channel.k8s.io or v4.channel.k8s.io. Every binary message
// starts with its channel: 0 stdin (client to server), 1 stdout, 2 stderr, 3 the error channel,
// which carries one Status as JSON when the command ends (Success, or Failure with
// NonZeroExitCode and the exit code as a cause); v5 adds 255 <channel>, which closes one stream
// (a client's stdin EOF). Then a close frame, 1000.
//
// What to run is the caller's business (apiserver.ts asks an Execer): errors found before the
// upgrade (no such pod, a container that is not running) are answered as plain HTTP Status
// objects, exactly as the real server answers them, so a client reads the reason.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex, Readable, Writable } from "node:stream";
import { type StatusObject, status } from "./rbac.ts";

export interface ExecRequest { namespace: string; pod: string; container?: string; command: string[]; stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }

/** A running command: its streams, and its exit code (or why it could not run). */
export interface ExecSession { stdout: Readable; stderr: Readable; stdin?: Writable; exited: Promise<number | { error: string }>; kill(): void }

/** Resolves a request to something to start, or the Status that refuses it (before any upgrade). */
export type Execer = (r: ExecRequest) => Promise<StatusObject | (() => ExecSession)>;

export const EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"] as const;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const CH = { stdin: 0, stdout: 1, stderr: 2, error: 3, close: 255 } as const;

/** The exec query: command (repeated), container, and the stdin/stdout/stderr/tty switches. */
export function execRequest(namespace: string, pod: string, q: URLSearchParams): ExecRequest | StatusObject {
  const command = q.getAll("command");
  if (!command.length) return status(400, "BadRequest", "you must specify at least 1 command");
  const on = (k: string) => q.get(k) === "true" || q.get(k) === "1";
  const r: ExecRequest = { namespace, pod, command, stdin: on("stdin"), stdout: on("stdout"), stderr: on("stderr"), tty: on("tty"), ...(q.get("container") ? { container: q.get("container")! } : {}) };
  if (!r.stdin && !r.stdout && !r.stderr) return status(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr");
  if (r.tty) return status(400, "BadRequest", "the lab's API runs exec without a TTY (tty=false)");
  return r;
}

/** The subprotocol to answer with, or undefined when the client offers none the server speaks. */
export function pickProtocol(req: IncomingMessage): string | undefined {
  const offered = String(req.headers["sec-websocket-protocol"] ?? "").split(",").map((x) => x.trim());
  return EXEC_PROTOCOLS.find((p) => offered.includes(p));
}

/** One frame, server to client: FIN set, never masked. */
function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255]) : Buffer.alloc(10);
  if (n >= 65536) { head[0] = 0x80 | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(n), 2); }
  return Buffer.concat([head, payload]);
}

/** Reads client frames (masked, maybe fragmented) and hands each whole message over. */
function frameReader(onMessage: (opcode: number, data: Buffer) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  let parts: Buffer[] = [];
  let firstOp = 0;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = (buf[0]! & 0x80) !== 0, op = buf[0]! & 0x0f, masked = (buf[1]! & 0x80) !== 0;
      let len = buf[1]! & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const need = off + (masked ? 4 : 0) + len;
      if (buf.length < need) return;
      const mask = masked ? buf.subarray(off, off + 4) : undefined;
      const data = Buffer.from(buf.subarray(need - len, need));
      if (mask) for (let i = 0; i < data.length; i++) data[i]! ^= mask[i & 3]!;
      buf = buf.subarray(need);
      if (op >= 8) { onMessage(op, data); continue; } // control frames are never fragmented
      if (op !== 0) firstOp = op;
      parts.push(data);
      if (fin) { onMessage(firstOp, Buffer.concat(parts)); parts = []; }
    }
  };
}

/** The error channel's Status when the command ended. */
export function exitStatus(command: string[], code: number | { error: string }): Record<string, unknown> {
  if (code === 0) return { metadata: {}, status: "Success" };
  if (typeof code === "object") return { metadata: {}, status: "Failure", message: code.error, reason: "InternalError", code: 500 };
  return { metadata: {}, status: "Failure", message: `command terminated with non-zero exit code: error executing command [${command.join(" ")}], exit code ${code}`, reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: String(code) }] } };
}

/**
 * Completes the upgrade on `socket` and runs the session: stdout and stderr onto their channels,
 * channel 0 into stdin (v5's close of channel 0 ends it), the Status on channel 3 at the end, then
 * close. The client going away kills the command.
 */
export function serveExec(req: IncomingMessage, socket: Duplex, protocol: string, r: ExecRequest, start: () => ExecSession): void {
  const accept = createHash("sha1").update(String(req.headers["sec-websocket-key"] ?? "") + GUID).digest("base64");
  socket.write(["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Accept: ${accept}`, `Sec-WebSocket-Protocol: ${protocol}`, "", ""].join("\r\n"));
  let open = true;
  const send = (ch: number, data: Buffer) => { if (open) socket.write(frame(0x2, Buffer.concat([Buffer.from([ch]), data]))); };
  const close = () => {
    if (!open) return;
    open = false;
    socket.end(frame(0x8, Buffer.from([0x03, 0xe8])));
  };
  let session: ExecSession;
  try {
    session = start();
  } catch (e) {
    send(CH.error, Buffer.from(JSON.stringify(exitStatus(r.command, { error: (e as Error).message }))));
    return close();
  }
  session.stdout.on("data", (d: Buffer) => { if (r.stdout) send(CH.stdout, d); });
  session.stderr.on("data", (d: Buffer) => { if (r.stderr) send(CH.stderr, d); });
  session.stdin?.on("error", () => { /* the command exited first: nothing more to hand it */ });
  const read = frameReader((op, data) => {
    if (op === 0x8) { session.kill(); return close(); }
    if (op === 0x9) return void (open && socket.write(frame(0xa, data)));
    if (op !== 0x2 && op !== 0x1) return;
    if (data[0] === CH.stdin && r.stdin) session.stdin?.write(data.subarray(1));
    else if (data[0] === CH.close && data[1] === CH.stdin) session.stdin?.end();
  });
  socket.on("data", read);
  socket.on("error", () => { /* the client went away: close below */ });
  socket.on("close", () => { if (open) { open = false; session.kill(); } });
  // stdout and stderr drained before the Status: a client reads every byte before the end.
  const drained = (s: Readable) => new Promise<void>((res) => { if (s.readableEnded) res(); else { s.once("end", res); s.once("close", res); } });
  void session.exited.then(async (code) => {
    await Promise.all([drained(session.stdout), drained(session.stderr)]);
    send(CH.error, Buffer.from(JSON.stringify(exitStatus(r.command, code))));
    close();
  });
}
