// A tc program on kernels without tcx (before 6.6): a clsact qdisc on the interface and a "bpf"
// filter on its ingress or egress hook, in direct-action mode, through route netlink (the
// client in ../netlink, its writer and attribute reader; only the tc message shapes are here).
// A filter is named (TCA_BPF_NAME) so gauze finds and removes its own and no one else's.
import { NetlinkError, NetlinkSocket, type Request } from "../netlink/index.ts";
import { Attrs, type NlWriter } from "../netlink/wire.ts";
import { NLM_F } from "../netlink/uapi.ts";

/** Numbers from linux/rtnetlink.h, pkt_sched.h and pkt_cls.h (checked by test/unit/bpf-uapi.test.ts). */
export const TC = {
  RTM_NEWQDISC: 36, RTM_DELQDISC: 37, RTM_NEWTFILTER: 44, RTM_DELTFILTER: 45, RTM_GETTFILTER: 46,
  TCA_KIND: 1, TCA_OPTIONS: 2,
  TCA_BPF_FD: 6, TCA_BPF_NAME: 7, TCA_BPF_FLAGS: 8, TCA_BPF_ID: 11, TCA_BPF_FLAG_ACT_DIRECT: 1,
  TC_H_CLSACT: 0xfffffff1, TC_H_MIN_INGRESS: 0xfff2, TC_H_MIN_EGRESS: 0xfff3,
  ETH_P_ALL: 3,
} as const;

const TCMSG_LEN = 20;
const CLSACT_HANDLE = 0xffff0000;

export type Direction = "ingress" | "egress";

export interface TcFilter {
  ifindex: number;
  direction: Direction;
  priority: number;
  handle: number;
  name: string;
  progId: number;
}

function tcmsg(w: NlWriter, ifindex: number, handle: number, parent: number, info: number): void {
  const at = w.fixed(TCMSG_LEN);
  w.view.setInt32(at + 4, ifindex, true);
  w.view.setUint32(at + 8, handle >>> 0, true);
  w.view.setUint32(at + 12, parent >>> 0, true);
  w.view.setUint32(at + 16, info >>> 0, true);
}

const hook = (d: Direction) => ((TC.TC_H_CLSACT & 0xffff0000) | (d === "ingress" ? TC.TC_H_MIN_INGRESS : TC.TC_H_MIN_EGRESS)) >>> 0;
/** tcm_info of a filter: its priority, and the protocol (all) in network order. */
const filterInfo = (priority: number) => ((priority << 16) | ((TC.ETH_P_ALL >> 8) | ((TC.ETH_P_ALL & 0xff) << 8))) >>> 0;

export function addClsact(ifindex: number): Request {
  return {
    what: `add clsact qdisc to interface ${ifindex}`, type: TC.RTM_NEWQDISC, flags: NLM_F.CREATE | NLM_F.EXCL,
    body: (w) => { tcmsg(w, ifindex, CLSACT_HANDLE, TC.TC_H_CLSACT, 0); w.string(TC.TCA_KIND, "clsact"); },
  };
}

export function delClsact(ifindex: number): Request {
  return {
    what: `delete clsact qdisc of interface ${ifindex}`, type: TC.RTM_DELQDISC, flags: 0,
    body: (w) => { tcmsg(w, ifindex, CLSACT_HANDLE, TC.TC_H_CLSACT, 0); w.string(TC.TCA_KIND, "clsact"); },
  };
}

/** A direct-action bpf filter (replacing one at the same priority and handle). */
export function addBpfFilter(ifindex: number, d: Direction, progFd: number, name: string, priority: number, handle: number): Request {
  return {
    what: `attach bpf filter ${name} to interface ${ifindex} ${d}`, type: TC.RTM_NEWTFILTER, flags: NLM_F.CREATE | NLM_F.REPLACE,
    body: (w) => {
      tcmsg(w, ifindex, handle, hook(d), filterInfo(priority));
      w.string(TC.TCA_KIND, "bpf");
      w.beginNest(TC.TCA_OPTIONS);
      w.u32(TC.TCA_BPF_FD, progFd);
      w.string(TC.TCA_BPF_NAME, name);
      w.u32(TC.TCA_BPF_FLAGS, TC.TCA_BPF_FLAG_ACT_DIRECT);
      w.endNest();
    },
  };
}

export function delBpfFilter(ifindex: number, d: Direction, priority: number, handle: number): Request {
  return {
    what: `detach bpf filter ${priority}:${handle} from interface ${ifindex} ${d}`, type: TC.RTM_DELTFILTER, flags: 0,
    body: (w) => { tcmsg(w, ifindex, handle, hook(d), filterInfo(priority)); w.string(TC.TCA_KIND, "bpf"); },
  };
}

/** The bpf filters on one hook of an interface. */
export function listBpfFilters(sock: NetlinkSocket, ifindex: number, d: Direction): TcFilter[] {
  const out: TcFilter[] = [];
  try {
    sock.dump({
      what: `list filters of interface ${ifindex} ${d}`, type: TC.RTM_GETTFILTER, flags: 0,
      body: (w) => tcmsg(w, ifindex, 0, hook(d), 0),
    }, (buf, view, m) => {
      if (m.end - m.body < TCMSG_LEN) return;
      const handle = view.getUint32(m.body + 8, true), info = view.getUint32(m.body + 16, true);
      const a = new Attrs(buf, view, m.body + TCMSG_LEN, m.end, TC.TCA_OPTIONS);
      if (a.string(TC.TCA_KIND) !== "bpf" || handle === 0) return;
      const o = a.nested(TC.TCA_OPTIONS, TC.TCA_BPF_ID);
      out.push({ ifindex, direction: d, priority: info >>> 16, handle, name: o?.string(TC.TCA_BPF_NAME) ?? "", progId: o?.u32(TC.TCA_BPF_ID) ?? 0 });
    });
  } catch (e) {
    // No clsact qdisc: nothing attached (EINVAL from the kernel: no such parent).
    if (e instanceof NetlinkError && (e.errno === 22 || e.notFound)) return [];
    throw e;
  }
  return out;
}

/** Runs requests, throwing the first refusal that `ok` does not accept. */
export function runTc(sock: NetlinkSocket, reqs: Request[], ok: (e: NetlinkError) => boolean = () => false): void {
  const out = sock.exchange(reqs);
  for (const e of out) if (e && !ok(e)) throw e;
}
