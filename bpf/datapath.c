/* gauze's eBPF datapath (`"Datapath": "ebpf"`): pod packets moved by redirects past the bridge,
 * netfilter and the node's routing, as Cilium's "BPF host routing" does. Two tc programs:
 *
 *  - from_pod, at the ingress of each pod's host-side veth (tcx, or a clsact filter before 6.6):
 *      to a pod on this node:        bpf_redirect_peer straight into that pod's namespace;
 *      to a pod on another node:     bpf_redirect_neigh out of the underlay link (host-gw,
 *                                    DirectRouting) or into the VXLAN device (the kernel still
 *                                    encapsulates), with the next hop the backend routes by;
 *  - from_net, at the ingress of the node's underlay link and of its VXLAN devices:
 *      from another node's pod to a pod on this node: bpf_redirect_peer into it.
 *
 * Everything else (to the node itself, to other networks, to Service addresses, ARP and
 * neighbour discovery, a TTL about to expire, a source address that is not the sending pod's)
 * returns GZ_NEXT: the classic path, unchanged. A packet routed to another node has its TTL /
 * hop limit decremented (and the IPv4 checksum fixed) as the classic path's router would; the
 * receiving node decrements again on the way into its pod, so a pod sees the same TTL on both
 * datapaths. Same-node delivery is the bridge's job on the classic path (switched, not routed),
 * so it keeps the TTL there too.
 *
 * NAT: skipping netfilter skips conntrack, and a connection that was DNATed (kube-proxy's
 * ClusterIP and NodePort rules) needs its replies to go back through the node that holds its
 * conntrack entry to be translated back. A third program, watch_nat, at the egress of the
 * underlay, tunnel and bridge devices, sees the packets of such connections leave (the agent's
 * nftables rule marks them with GZ_MARK_DNAT after NAT: `ct status dnat`) and records the
 * reply's 5-tuple in `nat_flows` (an LRU); from_pod and from_net send a packet whose 5-tuple is
 * there the classic way. Masqueraded traffic needs nothing: it leaves the pod network (classic
 * both ways) and its replies come back to the node's own address (classic too).
 *
 * Policy hook: an endpoint whose entry carries GZ_EP_CLASSIC is never redirected, to or from:
 * its packets take the classic path, where the NetworkPolicy rules are (nftables). The agent
 * sets the flag on every pod a policy isolates; a program that enforced policy itself would
 * clear it.
 *
 * The maps are the whole configuration: `endpoints` (this node's pods: address -> host veth
 * ifindex, the pod's MAC and the gateway MAC it expects replies from; written by the plugin at
 * ADD and by the agent) and `remotes` (an LPM trie of the other nodes' pod subnets -> next hop,
 * device and mode; kept by the agent from the leases). `stats` counts each decision per CPU. */
#include "gauze.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>

#define AF_INET 2
#define AF_INET6 10

/* Endpoint flags. */
#define GZ_EP_CLASSIC 1 /* the classic path for this pod, both ways (policy isolates it) */

/* Remote modes: how the next hop is reached (both through bpf_redirect_neigh). */
#define GZ_MODE_DIRECT 1 /* the peer node's underlay address, out of the underlay link */
#define GZ_MODE_TUNNEL 2 /* the peer's VTEP address, into the VXLAN device */

/* stats indexes (src/kernel/bpf/datapath.ts names them). */
#define S_LOCAL 0 /* pod -> pod on this node, bpf_redirect_peer */
#define S_DIRECT 1 /* pod -> another node, out of the underlay */
#define S_TUNNEL 2 /* pod -> another node, into the VXLAN device */
#define S_INBOUND 3 /* underlay/tunnel -> a pod on this node */
#define S_PASS 4 /* not ours: to the node, other networks, Services, not IP */
#define S_CLASSIC 5 /* an endpoint flagged for the classic path */
#define S_TTL 6 /* TTL / hop limit would expire: the kernel answers with ICMP */
#define S_SPOOF 7 /* a source address of another pod on this node */
#define S_NAT 8 /* a reply of a DNATed connection: conntrack translates it back */
#define S_NAT_SEEN 9 /* watch_nat recorded a DNATed connection's reply tuple */
#define S_MAX 10

/* skb->mark bit the agent's nftables rule sets on packets of DNATed connections. */
#define GZ_MARK_DNAT 0x20000000

/* One address of either family: IPv4 in addr[0]. Network byte order. */
struct endpoint_key {
	__u8 family; /* 4 or 6 */
	__u8 pad[3];
	__u32 addr[4];
};

struct endpoint {
	__u32 ifindex; /* the pod's host-side veth, in the node's namespace */
	__u32 flags;
	__u8 mac[6]; /* the pod's interface */
	__u8 gw_mac[6]; /* what the pod's gateway is to it (the bridge's MAC) */
	__u32 pad;
};

/* An LPM trie key: prefixlen counts the bits after it, so family and pad are the first 32 and
 * an IPv4 /24 is prefixlen 56. One trie serves both families. */
struct remote_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u32 addr[4];
};

struct remote {
	__u32 nexthop[4]; /* network order; IPv4 in nexthop[0] */
	__u32 ifindex; /* the underlay link or the VXLAN device */
	__u8 family; /* the next hop's: 4 or 6 */
	__u8 mode;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct remote_key);
	__type(value, struct remote);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} remotes SEC(".maps");

/* A reply's 5-tuple: as the reply will carry it. Ports in network order. */
struct nat_key {
	__u8 family;
	__u8 proto;
	__u16 pad;
	__u16 sport;
	__u16 dport;
	__u32 src[4];
	__u32 dst[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct nat_key);
	__type(value, __u64); /* when last seen leaving (bpf_ktime_get_ns) */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, S_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

static __always_inline int count(__u32 what, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &what);
	if (n)
		*n += 1; /* per-CPU: no other writer */
	return verdict;
}

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

/* What the header pass found: the addresses as map keys, the TTL, and for TCP and UDP the ports. */
struct hdr {
	struct endpoint_key src;
	struct endpoint_key dst;
	__u8 ttl;
	__u8 proto; /* TCP or UDP, else 0 */
	__u16 l4; /* where the ports are */
};

/* Reads the Ethernet and IP headers by direct packet access. 0: not IP (or cut short). Makes the
 * first bytes linear first when they are not (GRO on veth can leave headers in fragments). */
static __always_inline int read_hdr(struct __sk_buff *skb, struct hdr *h)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u32 need = sizeof(struct ethhdr) + sizeof(struct ip6);
	if (data + sizeof(struct ethhdr) + sizeof(struct ip4) > end) {
		if (bpf_skb_pull_data(skb, need) < 0)
			return 0;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct ip4 *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || (ip->vihl >> 4) != 4)
			return 0;
		h->src.family = 4;
		h->src.addr[0] = ip->saddr;
		h->dst.family = 4;
		h->dst.addr[0] = ip->daddr;
		h->ttl = ip->ttl;
		/* Ports only where they are: the first fragment, a protocol that has them. */
		if ((ip->proto == IPPROTO_TCP || ip->proto == IPPROTO_UDP) && !(ip->frag & bpf_htons(0x1fff))) {
			h->proto = ip->proto;
			h->l4 = sizeof(struct ethhdr) + (ip->vihl & 0x0f) * 4;
		}
		return 4;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ip6 *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end) {
			if (bpf_skb_pull_data(skb, need) < 0)
				return 0;
			data = (void *)(long)skb->data;
			end = (void *)(long)skb->data_end;
			eth = data;
			ip = (void *)(eth + 1);
			if ((void *)(ip + 1) > end)
				return 0;
		}
		if ((bpf_ntohl(ip->vtc_flow) >> 28) != 6)
			return 0;
		h->src.family = 6;
		h->dst.family = 6;
		__builtin_memcpy(h->src.addr, ip->saddr, 16);
		__builtin_memcpy(h->dst.addr, ip->daddr, 16);
		h->ttl = ip->hop_limit;
		if (ip->nexthdr == IPPROTO_TCP || ip->nexthdr == IPPROTO_UDP) { /* no extension headers: the common case */
			h->proto = ip->nexthdr;
			h->l4 = sizeof(struct ethhdr) + sizeof(struct ip6);
		}
		return 6;
	}
	return 0;
}

/* The packet's 5-tuple, or the reverse (its reply's). 0 when it has no ports. */
static __always_inline int nat_key_of(struct __sk_buff *skb, struct hdr *h, struct nat_key *k, int reverse)
{
	__u16 ports[2];
	if (!h->proto || bpf_skb_load_bytes(skb, h->l4, ports, sizeof(ports)) < 0)
		return 0;
	k->family = h->src.family;
	k->proto = h->proto;
	k->sport = reverse ? ports[1] : ports[0];
	k->dport = reverse ? ports[0] : ports[1];
	__builtin_memcpy(k->src, reverse ? h->dst.addr : h->src.addr, 16);
	__builtin_memcpy(k->dst, reverse ? h->src.addr : h->dst.addr, 16);
	return 1;
}

/* Whether conntrack must see this packet: it belongs to a connection that was DNATed. */
static __always_inline int natted(struct __sk_buff *skb, struct hdr *h)
{
	struct nat_key k = {};
	return nat_key_of(skb, h, &k, 0) && bpf_map_lookup_elem(&nat_flows, &k);
}

/* One hop as a router makes it: TTL - 1 and the IPv4 checksum updated incrementally (the
 * kernel's ip_decrease_ttl: the TTL is the high byte of its 16-bit word), or hop limit - 1. */
static __always_inline int decrement_ttl(struct __sk_buff *skb, int family)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if (family == 4) {
		struct ip4 *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return -1;
		__u32 check = ip->check;
		check += bpf_htons(0x0100);
		ip->check = (__u16)(check + (check >= 0xFFFF));
		ip->ttl--;
		return 0;
	}
	struct ip6 *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return -1;
	ip->hop_limit--;
	return 0;
}

/* The frame as the pod receives it: to its MAC, from `src` (the sender's MAC on the same node,
 * the gateway's from elsewhere). */
static __always_inline int set_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, dst, 6);
	if (src)
		__builtin_memcpy(eth->h_source, src, 6);
	return 0;
}

/* Into a local pod: its MACs on the frame, then straight to its namespace's ingress. */
static __always_inline int to_local(struct __sk_buff *skb, struct endpoint *ep, int family, int routed, __u32 stat)
{
	if (routed && decrement_ttl(skb, family) < 0)
		return count(S_PASS, GZ_NEXT);
	if (set_macs(skb, ep->mac, routed ? ep->gw_mac : 0) < 0)
		return count(S_PASS, GZ_NEXT);
	return count(stat, bpf_redirect_peer(ep->ifindex, 0));
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct hdr h = {};
	int family = read_hdr(skb, &h);
	if (!family)
		return count(S_PASS, GZ_NEXT); /* ARP, ND's link layer: classic */
	/* Only a pod's own address is redirected: anything else (a spoofed source, a pod routing
	 * for others) goes the classic way, with whatever the node's rules say about it. */
	struct endpoint *self = bpf_map_lookup_elem(&endpoints, &h.src);
	if (!self)
		return count(S_PASS, GZ_NEXT); /* link-local, unknown: not a pod's address */
	if (self->ifindex != skb->ifindex)
		return count(S_SPOOF, GZ_NEXT); /* another pod's address */
	if (self->flags & GZ_EP_CLASSIC)
		return count(S_CLASSIC, GZ_NEXT);
	if (natted(skb, &h))
		return count(S_NAT, GZ_NEXT);
	struct endpoint *ep = bpf_map_lookup_elem(&endpoints, &h.dst);
	if (ep) {
		if (ep->flags & GZ_EP_CLASSIC)
			return count(S_CLASSIC, GZ_NEXT);
		if (ep->ifindex == skb->ifindex)
			return count(S_PASS, GZ_NEXT); /* to itself: hairpin is the bridge's */
		return to_local(skb, ep, family, 0, S_LOCAL);
	}
	struct remote_key k = { .prefixlen = 32 + (family == 4 ? 32 : 128), .family = h.dst.family };
	__builtin_memcpy(k.addr, h.dst.addr, 16);
	struct remote *r = bpf_map_lookup_elem(&remotes, &k);
	if (!r)
		return count(S_PASS, GZ_NEXT); /* the node, Services, the world: classic */
	if (h.ttl <= 1)
		return count(S_TTL, GZ_NEXT);
	/* Copied before the packet changes: map values stay valid, but keep the helper's input plain. */
	struct bpf_redir_neigh nh = {};
	__u32 ifindex = r->ifindex;
	__u32 stat = r->mode == GZ_MODE_TUNNEL ? S_TUNNEL : S_DIRECT;
	if (r->family == 4) {
		nh.nh_family = AF_INET;
		nh.ipv4_nh = r->nexthop[0];
	} else {
		nh.nh_family = AF_INET6;
		__builtin_memcpy(nh.ipv6_nh, r->nexthop, 16);
	}
	if (decrement_ttl(skb, family) < 0)
		return count(S_PASS, GZ_NEXT);
	return count(stat, bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0));
}

SEC("tc")
int from_net(struct __sk_buff *skb)
{
	struct hdr h = {};
	int family = read_hdr(skb, &h);
	if (!family)
		return count(S_PASS, GZ_NEXT);
	struct endpoint *ep = bpf_map_lookup_elem(&endpoints, &h.dst);
	if (!ep)
		return count(S_PASS, GZ_NEXT); /* the node's own traffic, VXLAN before decapsulation */
	if (ep->flags & GZ_EP_CLASSIC)
		return count(S_CLASSIC, GZ_NEXT);
	/* Only from another node's pod: a packet from anywhere else (a node, a NodePort client, the
	 * world) gets a reply that leaves the pod network, which takes the classic path and this
	 * node's masquerade; conntrack must have seen the way in too, or the reply is masqueraded
	 * as a connection of its own. */
	struct remote_key from = { .prefixlen = 32 + (family == 4 ? 32 : 128), .family = h.src.family };
	__builtin_memcpy(from.addr, h.src.addr, 16);
	if (!bpf_map_lookup_elem(&remotes, &from))
		return count(S_PASS, GZ_NEXT);
	if (h.ttl <= 1)
		return count(S_TTL, GZ_NEXT);
	if (natted(skb, &h))
		return count(S_NAT, GZ_NEXT);
	return to_local(skb, ep, family, 1, S_INBOUND);
}

/* At the egress of the underlay, tunnel and bridge devices: a packet of a DNATed connection
 * (marked after NAT by the agent's nftables rule) leaves; its replies must come back this way. */
SEC("tc")
int watch_nat(struct __sk_buff *skb)
{
	if (!(skb->mark & GZ_MARK_DNAT))
		return GZ_NEXT;
	struct hdr h = {};
	struct nat_key k = {};
	if (!read_hdr(skb, &h) || !nat_key_of(skb, &h, &k, 1))
		return GZ_NEXT;
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&nat_flows, &k, &now, BPF_ANY);
	return count(S_NAT_SEEN, GZ_NEXT);
}

char LICENSE[] SEC("license") = "GPL";
