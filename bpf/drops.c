/* gauze's drop tracer: the kernel's kfree_skb tracepoint (a packet freed because it was
 * dropped, with the kernel's reason and where), kept only for the network namespaces userspace
 * lists (the node's and its pods') and without the reasons it marks as an endpoint's own
 * business. Each event says why (reason), where (the caller's address), on which device and in
 * which namespace (its inode, as /proc/<pid>/ns/net shows it), and carries the packet's first
 * bytes from its network header (and the link-layer header, when the skb has a valid one).
 *
 * Two entry points with one body: tp_btf (typed, BTF-attached: kernels with BTF) and a
 * raw_tracepoint variant for kernels that cannot attach through BTF. Every kernel structure is
 * read through CO-RE relocations (kernel.h), so the offsets are this kernel's. */
#include "gauze.h"
#include <bpf/bpf_core_read.h>
#include "kernel.h"

#define MAC_MAX 16
#define SKIP_REASONS 1024

struct drop_event {
	__u64 time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 location;
	__u32 reason;
	__u32 ifindex;
	__u32 netns;
	__u32 skb_len;
	__u16 protocol; /* host order (an ethertype) */
	__u16 frame_len;
	__u16 mac_len;
	__u8 has_dev;
	__u8 pad;
	__u8 mac[MAC_MAX];
	__u8 frame[GZ_FRAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} drop_events SEC(".maps");

/* The namespaces whose drops are reported: inode -> 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} netns_filter SEC(".maps");

/* Reasons not reported (an endpoint's own, e.g. a socket closed before it read): reason -> 1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SKIP_REASONS);
	__type(key, __u32);
	__type(value, __u8);
} skip_reasons SEC(".maps");

GZ_LOST_MAP(drop_lost);

static __always_inline int on_drop(struct sk_buff *skb, __u64 location, __u32 reason)
{
	__u8 *skip = bpf_map_lookup_elem(&skip_reasons, &reason);
	if (skip && *skip)
		return 0;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct net *net = 0;
	__u32 ifindex = 0;
	if (dev) {
		ifindex = BPF_CORE_READ(dev, ifindex);
		net = BPF_CORE_READ(dev, nd_net.net);
	} else {
		struct sock *sk = BPF_CORE_READ(skb, sk);
		if (sk)
			net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	}
	if (!net)
		return 0;
	__u32 inum = BPF_CORE_READ(net, ns.inum);
	if (!bpf_map_lookup_elem(&netns_filter, &inum))
		return 0;

	struct drop_event *ev = bpf_ringbuf_reserve(&drop_events, sizeof(*ev), 0);
	if (!ev) {
		gz_count_lost(&drop_lost);
		return 0;
	}
	ev->time_ns = bpf_ktime_get_ns();
	ev->location = location;
	ev->reason = reason;
	ev->ifindex = ifindex;
	ev->netns = inum;
	ev->skb_len = BPF_CORE_READ(skb, len);
	ev->protocol = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	ev->has_dev = dev != 0;
	ev->pad = 0;

	unsigned char *head = BPF_CORE_READ(skb, head);
	__u32 nh = BPF_CORE_READ(skb, network_header);
	__u32 tail = BPF_CORE_READ(skb, tail);
	__u32 mh = 0xffff;
	if (bpf_core_field_exists(skb->mac_header))
		mh = BPF_CORE_READ(skb, mac_header);

	/* The linear bytes from the network header: up to GZ_FRAME_MAX. */
	__u64 n = 0;
	if (nh != 0xffff && tail > nh) {
		n = gz_clamp(tail - nh, GZ_FRAME_MAX);
		if (bpf_probe_read_kernel(ev->frame, n, head + nh) < 0)
			n = 0;
	}
	ev->frame_len = n;

	/* The link-layer header, when the skb has one before the network header. */
	__u64 m = 0;
	if (mh != 0xffff && nh != 0xffff && nh > mh) {
		m = gz_clamp(nh - mh, MAC_MAX);
		if (bpf_probe_read_kernel(ev->mac, m, head + mh) < 0)
			m = 0;
	}
	ev->mac_len = m;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

/* trace_kfree_skb(skb, location, reason, rx_sk): the arguments in order, as u64 each. */
SEC("tp_btf/kfree_skb")
int drops_btf(__u64 *ctx)
{
	return on_drop((struct sk_buff *)ctx[0], ctx[1], (__u32)ctx[2]);
}

SEC("raw_tracepoint/kfree_skb")
int drops_raw(struct bpf_raw_tracepoint_args *ctx)
{
	return on_drop((struct sk_buff *)ctx->args[0], ctx->args[1], (__u32)ctx->args[2]);
}

char LICENSE[] SEC("license") = "GPL";
