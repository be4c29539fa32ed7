// Kernel prerequisites: br_netfilter, IP forwarding, reverse-path filtering, tracefs for the
// kernel's drop events, and eBPF for observing (the agent's report, else the kernel's probes).
import { readSysctl, sysctlPath } from "../../kernel/sysctl.ts";
import { writeText } from "../../kernel/files.ts";
import { BR_NETFILTER } from "../../agent/prereq.ts";
import { type Check, ok } from "../check.ts";
import { fixCommands } from "../context.ts";
import { TRACEFS, ensureMounted, mountedAt } from "../../kernel/pseudofs.ts";
import { EBPF_FIX, ebpfMissing } from "../../agent/observing.ts";

export const kernelChecks: Check[] = [
  {
    id: "kernel.br-netfilter", group: "kernel", title: "bridged pod traffic passes iptables (br_netfilter)",
    run() {
      const v = readSysctl("net.bridge.bridge-nf-call-iptables");
      if (v === undefined) {
        return {
          status: "fail",
          evidence: [`Failed to check br_netfilter: stat ${BR_NETFILTER}: no such file or directory`, "the agent (like flannel's) refuses to start without it: its pod CrashLoops"],
          fix: "modprobe br_netfilter && echo br_netfilter > /etc/modules-load.d/k8s.conf && sysctl -w net.bridge.bridge-nf-call-iptables=1",
        };
      }
      if (v !== "1") {
        return {
          status: "fail", evidence: [`${BR_NETFILTER} = ${v}`, "traffic between pods on one bridge bypasses iptables (Services, NetworkPolicy, masquerade)"],
          fix: "sysctl -w net.bridge.bridge-nf-call-iptables=1 (and persist it in /etc/sysctl.d/k8s.conf)",
          repair: () => { writeText(BR_NETFILTER, "1"); return "set net.bridge.bridge-nf-call-iptables=1"; },
        };
      }
      return ok(`${BR_NETFILTER} = 1`);
    },
  },
  {
    id: "kernel.ip-forward", group: "kernel", title: "the node forwards IPv4",
    run() {
      const v = readSysctl("net.ipv4.ip_forward");
      if (v === "1") return ok("net.ipv4.ip_forward = 1");
      return {
        status: "fail", evidence: [`net.ipv4.ip_forward = ${v ?? "unreadable"}`, "pod traffic to other nodes and to the outside is dropped on this node"],
        fix: "sysctl -w net.ipv4.ip_forward=1 (and persist it in /etc/sysctl.d/k8s.conf)",
        repair: () => { writeText("/proc/sys/net/ipv4/ip_forward", "1"); return "set net.ipv4.ip_forward=1"; },
      };
    },
  },
  {
    id: "kernel.rp-filter", group: "kernel", title: "reverse-path filtering does not drop overlay traffic",
    run(ctx) {
      // The effective value is the larger of "all" and the interface's own.
      const all = Number(readSysctl("net.ipv4.conf.all.rp_filter") ?? 0);
      const devs = [ctx.agent?.device, "cni0", ctx.agent?.iface].filter((d): d is string => !!d);
      const values = devs.map((d) => ({ d, v: readSysctl("net.ipv4.conf.{dev}.rp_filter", d) })).filter((x) => x.v !== undefined);
      const strict = values.filter((x) => Math.max(all, Number(x.v)) === 1).map((x) => x.d);
      if (strict.length === 0) return ok(`rp_filter: all=${all}${values.map((x) => `, ${x.d}=${x.v}`).join("")}`);
      return {
        status: "warn", evidence: strict.map((d) => `rp_filter is strict (1) on ${d}: replies that come back another way are dropped`),
        fix: `sysctl -w net.ipv4.conf.all.rp_filter=2 ${strict.map((d) => `net.ipv4.conf.${d.replace(".", "/")}.rp_filter=2`).join(" ")} (loose)`,
        repair: () => {
          writeText(sysctlPath("net.ipv4.conf.all.rp_filter"), "2");
          for (const d of strict) writeText(sysctlPath("net.ipv4.conf.{dev}.rp_filter", d), "2");
          return `set rp_filter=2 on all, ${strict.join(", ")}`;
        },
      };
    },
  },
  {
    id: "kernel.tracefs", group: "kernel", title: "tracefs is mounted (drops with the kernel's reason)",
    run(ctx) {
      const at = mountedAt(TRACEFS);
      const drops = ctx.agent?.features?.drops;
      if (at) {
        if (drops && !drops.on) return { status: "warn", evidence: [`tracefs is mounted at ${at}`, `but the agent reports drops off: ${drops.why ?? "unavailable"}`], fix: drops.fix ?? `${fixCommands(ctx).restartAgent} (it opens the drop watch at start)` };
        return ok(`tracefs is mounted at ${at}`);
      }
      return {
        status: "warn",
        evidence: [`tracefs is not mounted at ${TRACEFS.path}: ${TRACEFS.feature} are off on this node (gauze observe and trace show flows, but no drop and its reason)`,
          ...(drops && !drops.on ? [`the agent reports: drops off: ${drops.why ?? "unavailable"}`] : [])],
        fix: `${TRACEFS.fix} (the agent mounts it itself when it runs as root in the host's mount namespace; a DaemonSet mounts the host's ${TRACEFS.path})`,
        repair: () => {
          const r = ensureMounted(TRACEFS);
          if (!r.ok) throw new Error(r.why);
          return `mounted tracefs at ${r.at}`;
        },
      };
    },
  },
  {
    id: "kernel.ebpf", group: "kernel", title: "flows and drops are observed with eBPF (not the packet ring's per-packet copies)",
    run(ctx) {
      // The agent's own answer first: its capabilities are what count, not doctor's.
      const f = ctx.agent?.features?.ebpf;
      if (f?.on) return ok("the agent observes with eBPF: tc programs on every link, drops from kfree_skb with their namespace");
      if (f && !f.on) return { status: "warn", evidence: [`the agent reports ebpf off: ${f.why ?? "unavailable"}`, "flows cost a copy of every packet's headers (the packet ring), drops are attributed by address"], fix: f.fix ?? EBPF_FIX };
      const missing = ebpfMissing();
      if (missing) return { status: "warn", evidence: [`eBPF observing is not possible here: ${missing}`, "an agent falls back to the packet ring and tracefs"], fix: EBPF_FIX };
      return ok("the kernel allows eBPF observing (bpf(), tc programs, ring buffers, kfree_skb tracing)");
    },
  },
];
