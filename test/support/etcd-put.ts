// Writes or deletes raw keys in an etcd (the lab's, from inside its underlay namespace): tests use
// it to put records no gauze agent would write.   etcd-put.ts <endpoint> put <key> <value> ... | del <key> ...
import { Etcd3 } from "etcd3";

const [endpoint, op, ...rest] = process.argv.slice(2);
const etcd = new Etcd3({ hosts: endpoint! });
if (op === "put") {
  for (let i = 0; i + 1 < rest.length; i += 2) await etcd.put(rest[i]!).value(rest[i + 1]!);
} else if (op === "del") {
  for (const k of rest) await etcd.delete().key(k);
}
etcd.close();
