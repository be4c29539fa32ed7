// etcd with TLS and with password authentication, as clusters run it: mutual TLS with a private
// CA, a client certificate against the system's CAs, user and password, and plain http accepted
// with a warning. Real etcd servers on loopback, a throwaway CA made with openssl.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { EtcdRegistry } from "../../src/store/etcd-registry.ts";
import { startEtcd, type TestEtcd } from "../support/etcd.ts";
import { makePki } from "../support/tls.ts";

const dir = mkdtempSync(join(tmpdir(), "gauze-etcd-auth-"));
const started: TestEtcd[] = [];
after(async () => {
  for (const e of started) await e.remove();
  rmSync(dir, { recursive: true, force: true });
});
const req = { node: "n1", publicIp: "172.18.0.9", backendType: "vxlan", backendData: { vtepMac: "0e:47:ac:12:00:09" } };

async function works(r: EtcdRegistry): Promise<string> {
  try {
    await r.setNetworkConfig({ Network: "10.244.0.0/16" });
    return (await r.acquireLease(req, 60_000)).subnet;
  } finally {
    r.close();
  }
}

async function refusal(r: EtcdRegistry): Promise<string> {
  try {
    await r.getNetworkConfig();
    return "no refusal";
  } catch (e) {
    return (e as Error).message;
  } finally {
    r.close();
  }
}

test("mutual TLS: with the CA, the client certificate and its key, gauze leases; without them etcd refuses and the error says why", async () => {
  const pki = makePki(dir);
  const etcd = await startEtcd({ slot: 1, tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca } });
  started.push(etcd);
  const base = { endpoints: [etcd.endpoint], prefix: "/tls", callTimeoutMs: 3000 };
  const full = new EtcdRegistry({ ...base, cafile: pki.ca, certfile: pki.clientCert, keyfile: pki.clientKey });
  assert.deepEqual(full.warnings, []);
  assert.equal(await works(full), "10.244.0.0/24");
  // Certificate and key without a CA file: etcd's certificate is checked against the system's
  // CAs, which do not know this test's CA: a TLS failure, not a silent plain connection.
  assert.match(await refusal(new EtcdRegistry({ ...base, certfile: pki.clientCert, keyfile: pki.clientKey })), /etcd https:\/\/127\.0\.0\.1:\d+: reading the network config: .*(certificate|self.signed|SSL|TLS|verify)/i);
  // The CA but no client certificate: etcd (client-cert-auth) refuses the handshake.
  assert.match(await refusal(new EtcdRegistry({ ...base, cafile: pki.ca })), /reading the network config: /);
  assert.throws(() => new EtcdRegistry({ ...base, certfile: pki.clientCert }), /a client certificate needs its key/);
  assert.throws(() => new EtcdRegistry({ ...base, cafile: join(dir, "nope.crt") }), /cannot read the CA file .*nope\.crt/);
});

test("password authentication: the user and its password file work; no user or a wrong password is a clear refusal", async () => {
  const etcd = await startEtcd({ slot: 2 });
  started.push(etcd);
  const admin = new Etcd3({ hosts: etcd.endpoint });
  await admin.user("root").create("rootpw");
  await admin.role("root").create().catch(() => undefined);
  await admin.user("root").addRole("root");
  await (admin as unknown as { auth: { authEnable(o: object): Promise<unknown> } }).auth.authEnable({});
  admin.close();
  const pw = join(dir, "pw");
  writeFileSync(pw, "rootpw\n", { mode: 0o600 });
  const base = { endpoints: [etcd.endpoint], prefix: "/auth", callTimeoutMs: 3000 };
  const r = new EtcdRegistry({ ...base, username: "root", passwordFile: pw });
  assert.match(r.warnings.join("\n"), /without TLS: leases travel in the clear, and so does the password; use https:\/\/ endpoints/);
  assert.equal(await works(r), "10.244.0.0/24");
  assert.match(await refusal(new EtcdRegistry(base)), /reading the network config: .*(user name is empty|permission denied|token)/i);
  const wrong = join(dir, "wrong");
  writeFileSync(wrong, "nope");
  assert.match(await refusal(new EtcdRegistry({ ...base, username: "root", passwordFile: wrong })), /authentication failed/i);
  assert.throws(() => new EtcdRegistry({ ...base, username: "root" }), /a user needs a password/);
});

test("plain http is accepted with a warning", () => {
  const r = new EtcdRegistry({ endpoints: ["http://127.0.0.1:1"], prefix: "/p" });
  assert.match(r.warnings[0] ?? "", /^etcd http:\/\/127\.0\.0\.1:1 without TLS: leases travel in the clear; use https:\/\/ endpoints$/);
  r.close();
});
