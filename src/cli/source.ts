// Which nodes observe, trace and ui read: a lab's (--name, $GAUZE_LAB, or the only one), or this
// host's own agent (--host).
import type { ClusterSource } from "../observe/source.ts";

export async function pickSource(o: { name?: string; host?: boolean }): Promise<ClusterSource> {
  if (o.host) {
    const { hostSource } = await import("../observe/host-source.ts");
    return hostSource();
  }
  const { labSource } = await import("../lab/source.ts");
  return labSource(o.name);
}
