// The lab knows its processes by PID and by what only each has on its command line: a recycled
// PID running another gauze process (another lab's agent or API server) is never taken for, or
// stopped as, ours. Real processes; /proc is the truth.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { agentRunning, apiServerRunning, processEnded, stopAgentProcess } from "../../src/lab/processes.ts";

test("an agent is ours by its whole --root argument; another node's or lab's is not, and is not stopped", async () => {
  // A stand-in with an agent's command-line shape (sleep ignores its arguments' meaning).
  const p = spawn("sh", ["-c", "sleep 30", "gauze", "agent", "--node", "l-worker2", "--root", "/var/lib/gauze/lab/l/nodes/l-worker2"], { stdio: "ignore" });
  try {
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(agentRunning({ agentPid: p.pid, root: "/var/lib/gauze/lab/l/nodes/l-worker2" }), true);
    assert.equal(agentRunning({ agentPid: p.pid, root: "/var/lib/gauze/lab/l/nodes/l-worker" }), false, "a prefix of the root is another node");
    assert.equal(apiServerRunning("l", p.pid), false, "not the lab's API server");
    assert.equal(await stopAgentProcess({ agentPid: p.pid, root: "/var/lib/gauze/lab/l/nodes/l-worker" }, 100), false, "not stopped as another node's agent");
    assert.equal(p.exitCode, null, "still running");
    assert.equal(await stopAgentProcess({ agentPid: p.pid, root: "/var/lib/gauze/lab/l/nodes/l-worker2" }, 500), true);
  } finally {
    p.kill("SIGKILL");
  }
});

test("ended means gone or a zombie, not \"another command line\": a process still starting is not taken for dead", async () => {
  // sh starts a short sleep and becomes a long one that never reaps it: the short one, once done, is a zombie.
  const p = spawn("sh", ["-c", "sleep 0.05 & echo $!; exec sleep 30"], { stdio: ["ignore", "pipe", "ignore"] });
  try {
    const child = Number(await new Promise<string>((r) => p.stdout!.once("data", (d: Buffer) => r(d.toString().trim()))));
    assert.equal(processEnded(p.pid), false, "running (whatever its command line says)");
    await new Promise((r) => setTimeout(r, 300));
    assert.match(readFileSync(`/proc/${child}/stat`, "utf8"), /\) Z /, "the short sleep is a zombie now");
    assert.equal(processEnded(child), true, "a zombie has ended");
    assert.equal(processEnded(undefined), true);
  } finally {
    p.kill("SIGKILL");
  }
  await new Promise((r) => p.once("close", r));
  assert.equal(processEnded(p.pid), true, "gone");
});
