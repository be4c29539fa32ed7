import { expect, test } from "bun:test";
import { publicReason } from "../../src/agent/http.ts";

test("publicReason hides endpoints and secrets but keeps the sentence readable", () => {
  expect(publicReason("etcd http://10.0.0.1:2379: connection refused")).toBe("etcd <endpoint>: connection refused");
  expect(publicReason("etcd https://user:pw@etcd.example:2379/v3, http://b:2379 down")).toBe("etcd <endpoint>, <endpoint> down");
  expect(publicReason("login failed password=hunter2 token=abc")).toBe("login failed password=<hidden> token=<hidden>");
  expect(publicReason("network full: no free /24 in 10.244.0.0/16")).toBe("network full: no free /24 in 10.244.0.0/16");
  expect(publicReason("listing leases: 14 UNAVAILABLE: connect ECONNREFUSED 172.18.0.1:2379")).toBe("listing leases: 14 UNAVAILABLE: connect ECONNREFUSED <endpoint>");
});
