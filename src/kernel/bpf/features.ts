// What this kernel and this process can do with eBPF, each answered by a tiny real attempt
// (a two-instruction program, a one-page map) and cached: { ok: true } or { ok: false, why:
// "not supported, because ..." }, never a throw, so a node missing a feature is told which one
// and why instead of failing part way (a node whose kernel lacked a feature leaving pods stuck
// is a known way eBPF datapaths fail).
import { BtfError, KIND, kernelBtf } from "./btf.ts";
import { HELPER, call, exit, mov64Imm, program } from "./asm.ts";
import { bpffsMounted } from "./pin.ts";
import { BpfProgram, VerifierError } from "./program.ts";
import { BpfError, closeFd, describeBpfErrno, linkCreate, mapCreate } from "./sys.ts";
import { ATTACH_TYPE, MAP_TYPE, PROG_TYPE } from "./uapi.ts";

export type Feature = { ok: true } | { ok: false; why: string };

const EPERM = 1, EINVAL = 22, ENODEV = 19, ENOSYS = 38;
const cache = new Map<string, Feature>();

function cached(name: string, probe: () => Feature): Feature {
  let f = cache.get(name);
  if (!f) {
    try {
      f = probe();
    } catch (e) {
      f = { ok: false, why: `not supported, because the probe failed: ${(e as Error).message}` };
    }
    cache.set(name, f);
  }
  return f;
}

/** Forget the answers (tests that change what the process may do). */
export function resetFeatureCache(): void {
  cache.clear();
}

const no = (why: string): Feature => ({ ok: false, why: `not supported, because ${why}` });
const returnZero = () => program(mov64Imm(0, 0), exit());

function refusal(e: unknown): string {
  if (!(e instanceof BpfError)) return (e as Error).message;
  if (e.errno === EPERM) return `bpf() is refused (EPERM): the process lacks CAP_BPF (with CAP_NET_ADMIN / CAP_PERFMON) or CAP_SYS_ADMIN`;
  if (e.errno === ENOSYS) return "the kernel has no bpf() syscall (CONFIG_BPF_SYSCALL)";
  return e.message;
}

/** bpf() at all: a socket filter that returns 0. */
export function bpfAllowed(): Feature {
  return cached("bpf", () => {
    try {
      BpfProgram.load({ name: "gz_probe", type: PROG_TYPE.SOCKET_FILTER, insns: returnZero(), license: "GPL" }).close();
      return { ok: true };
    } catch (e) {
      return no(refusal(e));
    }
  });
}

/** A tc program loads (SCHED_CLS). */
export function tcPrograms(): Feature {
  return cached("tc", () => {
    const base = bpfAllowed();
    if (!base.ok) return base;
    try {
      BpfProgram.load({ name: "gz_probe_tc", type: PROG_TYPE.SCHED_CLS, insns: program(mov64Imm(0, -1), exit()), license: "GPL" }).close();
      return { ok: true };
    } catch (e) {
      return no(`a tc (sched_cls) program is refused: ${refusal(e)}`);
    }
  });
}

/**
 * tcx (6.6 on): LINK_CREATE of a tc program on ifindex 0. A kernel with tcx looks the interface up
 * and answers ENODEV; one without rejects the attach type itself (EINVAL). Nothing is attached.
 */
export function tcx(): Feature {
  return cached("tcx", () => {
    const base = tcPrograms();
    if (!base.ok) return base;
    const p = BpfProgram.load({ name: "gz_probe_tcx", type: PROG_TYPE.SCHED_CLS, insns: program(mov64Imm(0, -1), exit()), license: "GPL" });
    try {
      const fd = linkCreate({ progFd: p.fd, target: 0, attachType: ATTACH_TYPE.TCX_INGRESS }, "tcx probe");
      closeFd(fd);
      return { ok: true };
    } catch (e) {
      if (e instanceof BpfError && e.errno === ENODEV) return { ok: true };
      if (e instanceof BpfError && e.errno === EINVAL) return no("the kernel has no tcx links (Linux 6.6 or later): gauze attaches through a clsact qdisc instead");
      return no(refusal(e));
    } finally {
      p.close();
    }
  });
}

/** BPF_MAP_TYPE_RINGBUF (5.8 on): a one-page ring. */
export function ringBuffer(): Feature {
  return cached("ringbuf", () => {
    const base = bpfAllowed();
    if (!base.ok) return base;
    try {
      closeFd(mapCreate({ name: "gz_probe_rb", type: MAP_TYPE.RINGBUF, keySize: 0, valueSize: 0, maxEntries: 4096 }));
      return { ok: true };
    } catch (e) {
      return no(e instanceof BpfError && e.errno === EINVAL ? "the kernel has no ring buffer maps (Linux 5.8 or later)" : refusal(e));
    }
  });
}

/** The kernel's BTF, which CO-RE and tp_btf need. */
export function kernelBtfPresent(): Feature {
  return cached("btf", () => {
    try {
      const k = kernelBtf();
      if (!k.find("sk_buff", KIND.STRUCT).length) return no("the kernel's BTF has no struct sk_buff");
      return { ok: true };
    } catch (e) {
      return no(e instanceof BtfError ? e.message.replace(/^BTF: /, "") : (e as Error).message);
    }
  });
}

/** CO-RE: field offsets can be resolved against this kernel. */
export function coRe(): Feature {
  return cached("core", () => kernelBtfPresent());
}

/** tp_btf/<tracepoint> loads (BTF-typed tracing; attaching it needs nothing more). */
export function tpBtf(tracepoint = "kfree_skb"): Feature {
  return cached(`tp_btf/${tracepoint}`, () => {
    const base = bpfAllowed();
    if (!base.ok) return base;
    const btf = kernelBtfPresent();
    if (!btf.ok) return btf;
    const ids = kernelBtf().find(`btf_trace_${tracepoint}`, KIND.TYPEDEF);
    if (!ids.length) return no(`the kernel's BTF has no tracepoint ${tracepoint} (btf_trace_${tracepoint})`);
    try {
      BpfProgram.load({
        name: "gz_probe_tp", type: PROG_TYPE.TRACING, expectedAttachType: ATTACH_TYPE.TRACE_RAW_TP, attachBtfId: ids[0]!,
        insns: returnZero(), license: "GPL",
      }).close();
      return { ok: true };
    } catch (e) {
      return no(`a tp_btf/${tracepoint} program is refused: ${refusal(e)}`);
    }
  });
}

/** raw_tracepoint programs (the fallback for kernels where tp_btf is refused). */
export function rawTracepoint(): Feature {
  return cached("raw_tracepoint", () => {
    const base = bpfAllowed();
    if (!base.ok) return base;
    try {
      BpfProgram.load({ name: "gz_probe_rtp", type: PROG_TYPE.RAW_TRACEPOINT, insns: returnZero(), license: "GPL" }).close();
      return { ok: true };
    } catch (e) {
      return no(`a raw_tracepoint program is refused: ${refusal(e)}`);
    }
  });
}

function helperProbe(name: keyof typeof HELPER, id: number, args: Uint8Array[]): Feature {
  return cached(`helper/${name}`, () => {
    const base = tcPrograms();
    if (!base.ok) return base;
    try {
      BpfProgram.load({ name: `gz_probe_h${id}`, type: PROG_TYPE.SCHED_CLS, insns: program(...args, call(id), mov64Imm(0, -1), exit()), license: "GPL" }).close();
      return { ok: true };
    } catch (e) {
      if (e instanceof VerifierError && /unknown func|invalid func/.test(e.log)) return no(`the kernel has no bpf_${name} helper`);
      return no(`bpf_${name} is refused: ${e instanceof BpfError ? describeBpfErrno(e.errno) : (e as Error).message}`);
    }
  });
}

/** bpf_redirect_peer (5.10 on): into a veth peer's namespace from tc ingress. */
export function redirectPeer(): Feature {
  return helperProbe("redirect_peer", HELPER.redirect_peer, [mov64Imm(1, 1), mov64Imm(2, 0)]);
}

/** bpf_redirect_neigh (5.10 on): out of another device with the kernel's neighbour lookup. */
export function redirectNeigh(): Feature {
  return helperProbe("redirect_neigh", HELPER.redirect_neigh, [mov64Imm(1, 1), mov64Imm(2, 0), mov64Imm(3, 0), mov64Imm(4, 0)]);
}

/** bpffs at `path` (where gauze pins). */
export function bpffs(path = "/sys/fs/bpf"): Feature {
  return bpffsMounted(path) ? { ok: true } : no(`bpffs is not mounted at ${path} (fix: mount -t bpf bpf /sys/fs/bpf)`);
}

/** Every probe, by name (for doctor and the agent's report). */
export function allFeatures(): Record<string, Feature> {
  return {
    bpf: bpfAllowed(), bpffs: bpffs(), tc: tcPrograms(), tcx: tcx(), ringbuf: ringBuffer(), btf: kernelBtfPresent(),
    core: coRe(), "tp_btf/kfree_skb": tpBtf(), raw_tracepoint: rawTracepoint(), redirect_peer: redirectPeer(), redirect_neigh: redirectNeigh(),
  };
}
