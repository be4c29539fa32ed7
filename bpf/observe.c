/* gauze's flow observer in the kernel: a tc program on each of the node's interfaces, at
 * ingress and at egress (tcx, or a clsact filter on kernels before 6.6), that never changes a
 * verdict: it always returns GZ_NEXT (-1, TCX_NEXT / TC_ACT_UNSPEC).
 *
 * Each packet is keyed by where it was seen (ifindex, direction) and by its (inner) addresses,
 * protocol and ports, and counted in an LRU hash. Userspace hears of a flow only when it is
 * new, shows a TCP flag not seen before in this direction, ends (FIN or RST), or has not been
 * reported for the configured interval: Hubble's monitor aggregation, so a bulk transfer costs
 * an event a second, not one per packet. Packets matching the trace match userspace sets are
 * all reported. Each event carries the counters since the flow's previous event and the
 * frame's first bytes, for userspace's dissector. VXLAN on the configured UDP ports is keyed
 * on the inner frame, with the VNI and the outer header kept in the event.
 *
 * A flow key is one direction of a conversation at one hook: its reply is another key. That
 * keeps the program free of tuple ordering, and "flags seen" is per direction by construction.
 *
 * A packet of a flow this CPU saw last at this hook, with nothing to report, is only counted in
 * a per-CPU slot (flow_cache): no hash of the 44-byte key, no LRU, no atomics, no precise clock.
 * At 10 Gbit/s the hooks run some 200 000 times a second per node, and the LRU path cost about
 * half of each run (BPF_PROG_TEST_RUN: 190 ns a packet, 90 with the slot). The slot's counts go
 * into `flows` when the slot is needed for another flow or the flow has something to report;
 * until then userspace adds them itself (observer.ts: counted()).
 *
 * Headers are read directly from the skb's linear part when they are in it (the usual case),
 * else through bpf_skb_load_bytes (a non-linear skb: GRO on veth); a helper call per header
 * cost more than the rest of the parse. */
#include "gauze.h"
#include <linux/if_ether.h>
#include <linux/in.h>

#define MAX_VXLAN_PORTS 4
#define REASON_NEW 1
#define REASON_FLAGS 2
#define REASON_END 3
#define REASON_PERIODIC 4
#define REASON_TRACE 5

#define TCP_FIN 0x01
#define TCP_RST 0x04

#define DEFAULT_INTERVAL_NS 1000000000ULL

struct flow_key {
	__u32 ifindex;
	__u8 egress;
	__u8 family; /* 4, 6, or 0: not IP (ethertype in dport) */
	__u8 proto;
	__u8 tunnel; /* 1: the inner frame of VXLAN */
	__u32 src[4]; /* network order; IPv4 in src[0] */
	__u32 dst[4];
	__u16 sport; /* host order; ICMP echo: the id */
	__u16 dport; /* ICMP other than echo: type << 8 | code */
};

struct flow_state {
	__u64 first_ns;
	__u64 last_ns;
	__u64 last_report_ns;
	__u64 packets;
	__u64 bytes;
	__u64 reported_packets;
	__u64 reported_bytes;
	__u8 flags_seen;
	__u8 pad[7];
};

struct trace_match {
	__u8 enabled;
	__u8 family; /* 0: any */
	__u8 proto; /* 0: any */
	__u8 both_ways;
	__u8 has_src;
	__u8 has_dst;
	__u16 pad;
	__u16 sport; /* 0: any; ICMP: the echo id */
	__u16 dport;
	__u32 src[4];
	__u32 dst[4];
};

struct config {
	__u64 report_interval_ns; /* 0: one second */
	__u16 vxlan_ports[MAX_VXLAN_PORTS]; /* host order; 0: unused */
	struct trace_match trace;
	__u32 pad;
};

struct flow_event {
	__u64 time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 first_ns;
	__u64 packets; /* since the flow's previous event, this packet included */
	__u64 bytes;
	__u32 ifindex;
	__u32 len; /* this packet's length at this hook (the inner frame's, for VXLAN) */
	__u8 egress;
	__u8 family;
	__u8 proto;
	__u8 reason;
	__u8 tcp_flags;
	__u8 flags_seen;
	__u8 icmp_type;
	__u8 icmp_code;
	__u16 sport;
	__u16 dport;
	__u16 icmp_id;
	__u16 icmp_seq;
	__u32 src[4];
	__u32 dst[4];
	__u8 traced;
	__u8 tunnel;
	__u8 outer_family;
	__u8 pad0;
	__u32 vni;
	__u16 outer_sport;
	__u16 outer_dport;
	__u32 outer_len;
	__u32 outer_src[4];
	__u32 outer_dst[4];
	__u16 ethertype;
	__u16 frame_len;
	__u32 pad1;
	__u8 frame[GZ_FLOW_FRAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

/* Pinned too: while no agent runs (a restart, a kill -9) the pinned links keep observing into
 * this ring, and the next agent reads what happened meanwhile (up to its size) instead of it
 * going into a ring nobody can read; two agents of one node overlapping share one ring. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

GZ_LOST_MAP(lost);

#define CACHE_SLOTS 1024

/* One flow's packets on one CPU since they were last added to its entry in `flows`. Its place
 * is cache_slot(key), which userspace computes too (flow-codec.ts: cacheSlot). */
struct flow_cache {
	struct flow_key key;
	__u32 valid;
	__u64 packets;
	__u64 bytes;
	__u64 last_ns; /* bpf_ktime_get_coarse_ns: a tick's precision is enough for "still going" */
	__u64 report_ns; /* the flow's last report: a packet an interval later goes the full way */
	__u8 flags_seen;
	__u8 pad[7];
};

/* Per-CPU, so no other writer: tc programs do not nest on a CPU. Pinned with the flow table, so
 * counts that wait here survive an agent restart with it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_cache);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_cache SEC(".maps");

/* The key's 11 words folded in two halves (so a reply, its addresses swapped, lands elsewhere),
 * each multiplied by a large odd constant. */
static __always_inline __u32 cache_slot(const struct flow_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u32 a = w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[5];
	__u32 b = w[6] ^ w[7] ^ w[8] ^ w[9] ^ w[10];
	__u32 h = (a * 0x9E3779B1u) ^ (b * 0x85EBCA77u);
	h ^= h >> 15;
	return h & (CACHE_SLOTS - 1);
}

static __always_inline int key_eq(const struct flow_key *a, const struct flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 d = 0;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(struct flow_key) / 4); i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* What one pass over the headers found. */
struct pkt {
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 tunnel;
	__u8 outer_family;
	__u8 pad;
	__u16 ethertype;
	__u16 sport;
	__u16 dport;
	__u16 icmp_id;
	__u16 icmp_seq;
	__u16 outer_sport;
	__u16 outer_dport;
	__u16 pad2;
	__u32 vni;
	__u32 l2_off; /* where the (inner) Ethernet header starts */
	__u32 src[4];
	__u32 dst[4];
	__u32 outer_src[4];
	__u32 outer_dst[4];
};

/* One struct pkt per CPU, off the stack: kept on the stack, clang splits it into registers and
 * spills them, and the program's stack came to 488 of the verifier's 512 bytes (168 now, and a
 * third of the verifier's work). Per-CPU is enough: tc programs do not nest on a CPU (egress
 * runs with bottom halves off, ingress in the softirq). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt);
} scratch SEC(".maps");

struct ip4 {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

struct ip6 {
	__u32 vtc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* The skb's linear part, read once: clang would otherwise re-read skb->data through a pointer
 * it has moved, which the verifier refuses. */
struct linear {
	void *data;
	void *end;
	int beyond; /* a direct read went past the linear part: the parse is redone by the helper */
};

/* `n` bytes at `off`. `direct` is a constant at every call, so each parse is one straight line
 * of code: from the linear part (a read past it marks the parse to be redone), or by the helper.
 * Choosing per read (direct, else the helper) doubled the verifier's paths at every header: the
 * program took 1.2 s to load, and a 30-node lab's agents were not ready in time. */
static __always_inline long ld(struct __sk_buff *skb, struct linear *lin, __u32 off, void *to, const __u32 n, const int direct)
{
	if (!direct)
		return bpf_skb_load_bytes(skb, off, to, n);
	if (off > 1024 || lin->data + off + n > lin->end) {
		lin->beyond = 1;
		return -1;
	}
	__builtin_memcpy(to, lin->data + off, n);
	return 0;
}

/* The L3 and L4 headers from an Ethernet header at `off`. Returns the L4 offset, or 0 when
 * there is none to read (not IP, a later fragment, a header cut short). */
static __always_inline __u32 parse_frame(struct __sk_buff *skb, struct linear *lin, __u32 off, struct pkt *p, const int direct)
{
	__be16 proto_be;
	if (ld(skb, lin, off + 12, &proto_be, 2, direct) < 0)
		return 0;
	__u16 proto = bpf_ntohs(proto_be);
	off += ETH_HLEN;
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		if (ld(skb, lin, off + 2, &proto_be, 2, direct) < 0)
			return 0;
		proto = bpf_ntohs(proto_be);
		off += 4;
	}
	p->ethertype = proto;
	__u8 l4 = 0;
	if (proto == ETH_P_IP) {
		struct ip4 h;
		if (ld(skb, lin, off, &h, sizeof(h), direct) < 0)
			return 0;
		p->family = 4;
		p->proto = h.proto;
		p->src[0] = h.saddr;
		p->src[1] = p->src[2] = p->src[3] = 0;
		p->dst[0] = h.daddr;
		p->dst[1] = p->dst[2] = p->dst[3] = 0;
		if (bpf_ntohs(h.frag) & 0x1fff)
			return 0; /* a later fragment: no L4 header */
		__u32 ihl = (h.vihl & 0x0f) * 4;
		if (ihl < 20)
			return 0;
		off += ihl;
		l4 = h.proto;
	} else if (proto == ETH_P_IPV6) {
		struct ip6 h;
		if (ld(skb, lin, off, &h, sizeof(h), direct) < 0)
			return 0;
		p->family = 6;
		__builtin_memcpy(p->src, h.saddr, 16);
		__builtin_memcpy(p->dst, h.daddr, 16);
		off += sizeof(h);
		l4 = h.nexthdr;
		/* A few extension headers: hop-by-hop, routing, destination options, fragment. */
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (l4 != 0 && l4 != 43 && l4 != 60 && l4 != 44)
				break;
			__u8 ext[2];
			if (ld(skb, lin, off, ext, 2, direct) < 0)
				return 0;
			if (l4 == 44) {
				__be16 fo;
				if (ld(skb, lin, off + 2, &fo, 2, direct) < 0)
					return 0;
				if (bpf_ntohs(fo) & 0xfff8) {
					p->proto = ext[0];
					return 0;
				}
				off += 8;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			l4 = ext[0];
		}
		p->proto = l4;
	} else {
		p->family = 0;
		p->proto = 0;
		p->dport = proto;
		return 0;
	}
	if (l4 == IPPROTO_TCP) {
		__u8 t[14];
		if (ld(skb, lin, off, t, sizeof(t), direct) < 0)
			return 0;
		p->sport = ((__u16)t[0] << 8) | t[1];
		p->dport = ((__u16)t[2] << 8) | t[3];
		p->tcp_flags = t[13];
	} else if (l4 == IPPROTO_UDP) {
		__u8 u[4];
		if (ld(skb, lin, off, u, sizeof(u), direct) < 0)
			return 0;
		p->sport = ((__u16)u[0] << 8) | u[1];
		p->dport = ((__u16)u[2] << 8) | u[3];
	} else if (l4 == IPPROTO_ICMP || l4 == 58 /* ICMPv6 */) {
		__u8 c[8];
		if (ld(skb, lin, off, c, sizeof(c), direct) < 0)
			return 0;
		p->icmp_type = c[0];
		p->icmp_code = c[1];
		__u16 id = ((__u16)c[4] << 8) | c[5];
		__u16 seq = ((__u16)c[6] << 8) | c[7];
		int echo = l4 == IPPROTO_ICMP ? (c[0] == 8 || c[0] == 0) : (c[0] == 128 || c[0] == 129);
		if (echo) {
			p->icmp_id = id;
			p->icmp_seq = seq;
			p->sport = id;
			p->dport = 0;
		} else {
			p->sport = 0;
			p->dport = ((__u16)c[0] << 8) | c[1];
		}
	} else {
		return 0;
	}
	return off;
}

static __always_inline int is_vxlan_port(struct config *cfg, __u16 port)
{
	if (!cfg || port == 0)
		return 0;
#pragma unroll
	for (int i = 0; i < MAX_VXLAN_PORTS; i++)
		if (cfg->vxlan_ports[i] == port)
			return 1;
	return 0;
}

static __always_inline int addr_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int match_one(struct trace_match *m, const __u32 *src, const __u32 *dst, __u16 sport, __u16 dport)
{
	if (m->has_src && !addr_eq(m->src, src))
		return 0;
	if (m->has_dst && !addr_eq(m->dst, dst))
		return 0;
	if (m->sport && m->sport != sport)
		return 0;
	if (m->dport && m->dport != dport)
		return 0;
	return 1;
}

static __always_inline int traced(struct config *cfg, struct pkt *p)
{
	if (!cfg || !cfg->trace.enabled)
		return 0;
	struct trace_match *m = &cfg->trace;
	if (m->family && m->family != p->family)
		return 0;
	if (m->proto && m->proto != p->proto)
		return 0;
	if (match_one(m, p->src, p->dst, p->sport, p->dport))
		return 1;
	return m->both_ways && match_one(m, p->dst, p->src, p->dport, p->sport);
}

static __always_inline void copy4(__u32 *to, const __u32 *from)
{
	to[0] = from[0];
	to[1] = from[1];
	to[2] = from[2];
	to[3] = from[3];
}

/* The frame's headers into `p`: the outer ones, and a VXLAN packet's inner frame. */
static __always_inline void parse_headers(struct __sk_buff *skb, struct linear *lin, struct pkt *p, struct config *cfg, const int direct)
{
	__u32 l4 = parse_frame(skb, lin, 0, p, direct);
	if (l4 && p->proto == IPPROTO_UDP && is_vxlan_port(cfg, p->dport)) {
		__u8 vx[8];
		if (ld(skb, lin, l4 + 8, vx, sizeof(vx), direct) == 0 && (vx[0] & 0x08)) {
			/* The outer header moves to outer_*, and the inner frame is parsed into the same struct. */
			p->tunnel = 1;
			p->vni = ((__u32)vx[4] << 16) | ((__u32)vx[5] << 8) | vx[6];
			p->outer_family = p->family;
			p->outer_sport = p->sport;
			p->outer_dport = p->dport;
			copy4(p->outer_src, p->src);
			copy4(p->outer_dst, p->dst);
			p->l2_off = l4 + 16;
			p->family = p->proto = p->tcp_flags = p->icmp_type = p->icmp_code = 0;
			p->ethertype = p->sport = p->dport = p->icmp_id = p->icmp_seq = 0;
			p->src[0] = p->src[1] = p->src[2] = p->src[3] = 0;
			p->dst[0] = p->dst[1] = p->dst[2] = p->dst[3] = 0;
			parse_frame(skb, lin, l4 + 16, p, direct);
		}
	}

}

static __always_inline int observe(struct __sk_buff *skb, __u8 egress)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct pkt *p = bpf_map_lookup_elem(&scratch, &zero);
	if (!p)
		return GZ_NEXT;
	__builtin_memset(p, 0, sizeof(*p));
	/* Direct reads first (headers are in the linear part but for a GRO'd or odd skb); a read
	 * past it and the parse starts over through the helper. */
	struct linear lin = { (void *)(long)skb->data, (void *)(long)skb->data_end, 0 };
	parse_headers(skb, &lin, p, cfg, 1);
	if (lin.beyond) {
		__builtin_memset(p, 0, sizeof(*p));
		parse_headers(skb, &lin, p, cfg, 0);
	}

	struct flow_key key = {};
	key.ifindex = skb->ifindex;
	key.egress = egress;
	key.family = p->family;
	key.proto = p->proto;
	key.tunnel = p->tunnel;
	copy4(key.src, p->src);
	copy4(key.dst, p->dst);
	key.sport = p->sport;
	key.dport = p->dport;

	__u32 len = skb->len;
	__u64 interval = cfg && cfg->report_interval_ns ? cfg->report_interval_ns : DEFAULT_INTERVAL_NS;
	__u8 trace = traced(cfg, p);
	__u32 slot = cache_slot(&key);
	struct flow_cache *c = bpf_map_lookup_elem(&flow_cache, &slot);
	if (c && c->valid && !trace && key_eq(&c->key, &key) && !(p->tcp_flags & ~c->flags_seen)) {
		/* Signed: the coarse clock may lag the precise one the report was stamped with. */
		__u64 coarse = bpf_ktime_get_coarse_ns();
		if ((__s64)(coarse - c->report_ns) < (__s64)interval) {
			c->packets += 1;
			c->bytes += len;
			c->last_ns = coarse;
			return GZ_NEXT;
		}
	}
	if (c && c->valid && c->packets) {
		/* The slot's count into `flows`: the slot emptied first, so userspace (which reads
		 * `flows`, then the slot) may see these packets a second late, never twice. */
		__u64 packets = c->packets, bytes = c->bytes, last = c->last_ns;
		c->packets = 0;
		c->bytes = 0;
		struct flow_state *o = bpf_map_lookup_elem(&flows, &c->key);
		if (o) {
			__sync_fetch_and_add(&o->packets, packets);
			__sync_fetch_and_add(&o->bytes, bytes);
			if (last > o->last_ns)
				o->last_ns = last;
		}
	}

	__u64 now = bpf_ktime_get_ns();
	__u8 reason = 0;
	__u64 since_packets = 1, since_bytes = len, first_ns = now;
	__u8 seen = p->tcp_flags;
	struct flow_state *st = bpf_map_lookup_elem(&flows, &key);
	if (!st) {
		struct flow_state fresh = {};
		fresh.first_ns = fresh.last_ns = fresh.last_report_ns = now;
		fresh.packets = fresh.reported_packets = 1;
		fresh.bytes = fresh.reported_bytes = len;
		fresh.flags_seen = p->tcp_flags;
		bpf_map_update_elem(&flows, &key, &fresh, BPF_ANY);
		reason = REASON_NEW;
	} else {
		__sync_fetch_and_add(&st->packets, 1);
		__sync_fetch_and_add(&st->bytes, len);
		st->last_ns = now;
		first_ns = st->first_ns;
		__u8 fresh_flags = p->tcp_flags & ~st->flags_seen;
		if (fresh_flags) {
			st->flags_seen |= p->tcp_flags;
			reason = (fresh_flags & (TCP_FIN | TCP_RST)) ? REASON_END : REASON_FLAGS;
		} else if (now - st->last_report_ns >= interval) {
			reason = REASON_PERIODIC;
		}
		seen = st->flags_seen;
	}
	if (c) {
		/* The slot is this flow's now; its next packets stop here until there is news. */
		c->key = key;
		c->valid = 1;
		c->packets = 0;
		c->bytes = 0;
		c->last_ns = now;
		c->flags_seen = seen;
		c->report_ns = reason || !st ? now : st->last_report_ns;
	}
	if (!reason && !trace)
		return GZ_NEXT;

	struct flow_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		gz_count_lost(&lost);
		return GZ_NEXT;
	}
	if (st) {
		/* Counters since the previous event: the totals less what that event reported. */
		__u64 packets = st->packets, bytes = st->bytes;
		since_packets = packets - st->reported_packets;
		since_bytes = bytes - st->reported_bytes;
		st->reported_packets = packets;
		st->reported_bytes = bytes;
		st->last_report_ns = now;
	}
	ev->time_ns = now;
	ev->first_ns = first_ns;
	ev->packets = since_packets;
	ev->bytes = since_bytes;
	ev->ifindex = key.ifindex;
	ev->len = len - p->l2_off;
	ev->egress = egress;
	ev->family = p->family;
	ev->proto = p->proto;
	ev->reason = reason ? reason : REASON_TRACE;
	ev->tcp_flags = p->tcp_flags;
	ev->flags_seen = seen;
	ev->icmp_type = p->icmp_type;
	ev->icmp_code = p->icmp_code;
	ev->sport = p->sport;
	ev->dport = p->dport;
	ev->icmp_id = p->icmp_id;
	ev->icmp_seq = p->icmp_seq;
	copy4(ev->src, p->src);
	copy4(ev->dst, p->dst);
	ev->traced = trace;
	ev->tunnel = p->tunnel;
	ev->outer_family = p->outer_family;
	ev->pad0 = 0;
	ev->vni = p->vni;
	ev->outer_sport = p->outer_sport;
	ev->outer_dport = p->outer_dport;
	ev->outer_len = p->tunnel ? len : 0;
	copy4(ev->outer_src, p->outer_src);
	copy4(ev->outer_dst, p->outer_dst);
	ev->ethertype = p->ethertype;
	ev->pad1 = 0;
	__u32 n = len < GZ_FLOW_FRAME_MAX ? len : GZ_FLOW_FRAME_MAX;
	if (n == 0 || bpf_skb_load_bytes(skb, 0, ev->frame, n) < 0)
		n = 0;
	ev->frame_len = n;
	bpf_ringbuf_submit(ev, 0);
	return GZ_NEXT;
}

SEC("tc")
int observe_ingress(struct __sk_buff *skb)
{
	return observe(skb, 0);
}

SEC("tc")
int observe_egress(struct __sk_buff *skb)
{
	return observe(skb, 1);
}

char LICENSE[] SEC("license") = "GPL";
