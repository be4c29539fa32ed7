/* The few kernel structures the drop tracer reads, declared minimally with
 * preserve_access_index: clang records each field access as a CO-RE relocation and gauze's
 * loader (src/kernel/bpf/core.ts) rewrites the offsets against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux), so no vmlinux.h from the build machine is baked in. Field names
 * and types must match the kernel's; their order and offsets here do not matter. */
#ifndef GAUZE_KERNEL_H
#define GAUZE_KERNEL_H

#include <linux/types.h>

#define __gz_core __attribute__((preserve_access_index))

struct ns_common {
	unsigned int inum;
} __gz_core;

struct net {
	struct ns_common ns;
} __gz_core;

/* The kernel's possible_net_t: a typedef of an anonymous struct holding the namespace pointer. */
typedef struct {
	struct net *net;
} __gz_core possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __gz_core;

struct sock_common {
	possible_net_t skc_net;
} __gz_core;

struct sock {
	struct sock_common __sk_common;
} __gz_core;

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	unsigned char *head;
	unsigned int tail; /* sk_buff_data_t: an offset from head on 64-bit kernels */
	__u16 network_header;
	__u16 mac_header;
	__be16 protocol;
} __gz_core;

#endif
