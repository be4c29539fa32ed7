// A stand-in API server for Nodes, for tests: the lab's own Nodes API (src/lab/kube/apiserver.ts) over
// plain HTTP on loopback, seeded with stored objects (test/fixtures/kube/nodes-cluster.json), with
// a kubeconfig that points at it. It records every request, and can answer a watch with 410 Gone,
// drop connections, or refuse a patch with 403, as real API servers do.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NodesApi, type NodeObject } from "../../src/lab/kube/apiserver.ts";
import { FIXTURES } from "./fake-apiserver.ts";

export interface FakeNodesApi extends NodesApi {
  kubeconfig: string;
}

/** `empty`: no Nodes at first (a contract test adds its own); otherwise the stored cluster's. */
export async function startFakeNodesApi(dir: string, o: { empty?: boolean } = {}): Promise<FakeNodesApi> {
  const list = JSON.parse(readFileSync(join(FIXTURES, "nodes-cluster.json"), "utf8")) as { items: NodeObject[] };
  const api = new NodesApi(o.empty ? [] : list.items) as FakeNodesApi;
  const url = await api.listen();
  api.kubeconfig = join(dir, "kubeconfig-nodes");
  writeFileSync(api.kubeconfig, ["apiVersion: v1", "kind: Config", "clusters:", "- name: kind", "  cluster:", `    server: ${url}`, "    insecure-skip-tls-verify: true",
    "users:", "- name: gauze", "  user:", "    token: not-a-secret", "contexts:", "- name: kind", "  context:", "    cluster: kind", "    user: gauze", "current-context: kind", ""].join("\n"));
  return api;
}
