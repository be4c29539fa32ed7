/* What every gauze BPF program shares: libbpf's conventions (SEC, BTF-defined maps through
 * __uint/__type, helper prototypes from libbpf-dev's headers, which the build machine has and
 * a node never needs), the tc verdict the observers return, and the lost-event counter a
 * program bumps when its ring buffer is full, so userspace can say how much it missed. */
#ifndef GAUZE_H
#define GAUZE_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* TCX_NEXT (linux/bpf.h from 6.6 on) and TC_ACT_UNSPEC are both -1: "no opinion, go on".
 * Observers return it always, under tcx and under a clsact filter alike. */
#define GZ_NEXT (-1)

#define GZ_FRAME_MAX 128
/* A flow event's frame: VXLAN over IPv6 with an inner IPv6 TCP header is 14 + 40 + 8 + 8 + 14 +
 * 40 + 20 = 144 bytes; the trace and the packet view need the inner L4 header. */
#define GZ_FLOW_FRAME_MAX 192

/* One per-CPU slot: events the program could not put in the ring (bpf_ringbuf_reserve failed). */
#define GZ_LOST_MAP(name)                        \
	struct {                                     \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
		__uint(max_entries, 1);                  \
		__type(key, __u32);                      \
		__type(value, __u64);                    \
	} name SEC(".maps")

static __always_inline void gz_count_lost(void *lost_map)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(lost_map, &zero);
	if (n)
		*n += 1; /* per-CPU: no other writer */
}

/* min(n, max) in a form the verifier can follow: clang may otherwise compare one copy of the
 * register and pass another (sign-extended) one to the helper, whose size the verifier then
 * cannot bound. The empty asm pins the value to one register before the comparison. */
static __always_inline __u64 gz_clamp(__u64 n, __u64 max)
{
	asm volatile("" : "+r"(n));
	if (n > max)
		n = max;
	return n;
}

#endif
