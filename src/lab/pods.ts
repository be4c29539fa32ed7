// The lab's pods: a network namespace each, set up by the node's runtime stand-in with the real
// plugin, retried while the node is not ready as kubelet retries a sandbox, and torn down with a
// CNI DEL. The lab's "images": nginx runs gauze's HTTP server on :80, netshoot is a namespace to
// exec into.
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { gauzeExecutable, runSync } from "../kernel/spawn.ts";
import { addNetns, delNetns, netnsPath } from "../kernel/netns.ts";
import { RuntimeError, addPod, delPod, loadNetwork, runtimeFor } from "./runtime.ts";
import { spawnInNetns, stopProcess } from "./processes.ts";
import { type LabPod, type LabState, findNode, findPod, labDir, withLab } from "./state.ts";

function podRef(p: LabPod) {
  return { name: p.name, namespace: "default", uid: p.uid, containerId: p.containerId, netns: p.netns };
}

/** One sandbox set-up attempt, as kubelet makes them: Running, or ContainerCreating with the reason. */
function trySetUp(s: LabState, p: LabPod): void {
  const n = findNode(s, p.node);
  const rt = runtimeFor(n);
  try {
    loadNetwork(rt);
  } catch (e) {
    p.phase = "Pending";
    p.reason = `node ${n.name} is NotReady: ${(e as Error).message}`;
    return;
  }
  try {
    const { result } = addPod(rt, podRef(p));
    const ips = (result.ips as { address: string }[] | undefined) ?? [];
    p.ip = ips.find((i) => !i.address.includes(":"))?.address.split("/")[0];
    const ip6 = ips.find((i) => i.address.includes(":"))?.address.split("/")[0];
    if (ip6) p.ip6 = ip6;
    p.phase = "Running";
    delete p.reason;
    if (p.image === "nginx" && !p.serverPid) {
      p.serverPid = spawnInNetns(netnsPath(p.netns), [gauzeExecutable(), "lab", "serve-http", "--port", "80", "--pod", p.name], join(labDir(s.name), "pods", `${p.name}.log`));
    }
  } catch (e) {
    if (!(e instanceof RuntimeError)) throw e;
    p.phase = "ContainerCreating";
    p.reason = `Failed to create pod sandbox: ${e.message}`;
  }
}

const POD_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export async function podRun(lab: string, name: string, node: string, image: LabPod["image"]): Promise<LabPod> {
  if (!POD_NAME.test(name)) throw new Error(`pod name ${JSON.stringify(name)}: use lowercase letters, digits and '-' (up to 32)`);
  return withLab(lab, (s) => {
    if (s.pods.some((p) => p.name === name)) throw new Error(`pod ${name} exists already in lab ${lab}: gauze lab pod rm ${name} first`);
    const n = findNode(s, node);
    const p: LabPod = {
      name, node: n.name, image, netns: `gz-${lab}-pod-${name}`, containerId: randomBytes(32).toString("hex"), uid: randomUUID(), phase: "Pending",
    };
    addNetns(p.netns);
    s.pods.push(p);
    trySetUp(s, p);
    return p;
  });
}

export async function waitServing(p: LabPod, timeoutMs = 3000): Promise<void> {
  // The server binds :80 within a few ms of starting; probe from inside the pod.
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = runSync([gauzeExecutable(), "lab", "http-get", "http://127.0.0.1:80/", "--timeout", "300"], { netns: netnsPath(p.netns) });
    if (r.status === 0) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`pod ${p.name}: HTTP server did not come up on :80`);
}

export async function tearDownPod(s: LabState, p: LabPod): Promise<void> {
  await stopProcess(p.serverPid, 500);
  const n = s.nodes.find((x) => x.name === p.node);
  if (n) {
    try {
      delPod(runtimeFor(n), podRef(p));
    } catch {
      // the namespace goes next; GC would catch leftovers in a real cluster
    }
  }
  delNetns(p.netns);
}

export async function podRm(lab: string, name: string): Promise<void> {
  await withLab(lab, async (s) => {
    const p = findPod(s, name);
    await tearDownPod(s, p);
    s.pods = s.pods.filter((x) => x !== p);
  });
}

/** Retries sandboxes that are not Running (kubelet's loop); returns the state for display. */
export async function refresh(lab: string): Promise<LabState> {
  return withLab(lab, (s) => {
    for (const p of s.pods) if (p.phase !== "Running") trySetUp(s, p);
    return s;
  });
}
