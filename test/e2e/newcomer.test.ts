// What a newcomer trips on (issue 24), on one lab: hints that paste as they are, `lab logs` and
// `lab podman`, one shape for the lab's commands (positional names, a help line each, the values
// accepted, one success line), capture on any interface, filters that name the valid words.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { GAUZE, sh, must } from "./helpers.ts";

const name = `t${process.pid % 1000}nc`;
const g = (...args: string[]) => sh([GAUZE, ...args]);

before(() => {
  g("lab", "down", "--name", name);
  const r = g("lab", "up", "--name", name);
  assert.equal(r.status, 0, r.stderr);
});
after(() => { g("lab", "down", "--name", name); });

test("lab logs: a node's agent log (it said \"check the agent's log\" with no path); an unknown name lists the names", () => {
  const out = must([GAUZE, "lab", "logs", "worker", "--name", name]);
  assert.match(out, /"msg":"ready: subnet leased/);
  const bad = g("lab", "logs", "nope", "--name", name);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, new RegExp(`no node or DaemonSet pod named nope \\(logs: ${name}-control-plane, ${name}-worker\\)`));
});

test("lab podman: podman on the lab's own storage (a bare podman sees none of a manifest lab's containers)", () => {
  const r = g("lab", "podman", "--name", name, "--", "ps", "-a", "--format", "{{.Names}}");
  assert.equal(r.status, 0, r.stderr);
  const info = must([GAUZE, "lab", "podman", "--name", name, "--", "info", "--format", "{{.Store.GraphRoot}}"]);
  assert.match(info.trim(), new RegExp(`/var/lib/gauze/lab/${name}/podman/root$`));
});
