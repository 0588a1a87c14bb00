/* Decapsulation on a real server: the maps of bpf/xdpvs_decap.bpf.c and the one pass that strips an outer header. */
#ifndef XDPVS_DECAP_H
#define XDPVS_DECAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdpvs_shared.h"
#include "parse.h"

/* Inner destination (a VIP of this real server) -> 0 (reserved for flags). Written by `xdpvsd --role realserver`
 * from its --vip options; read here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct vs_decap_key);
	__type(value, __u32);
} decap_vips SEC(".maps");

/* Outer destination (an address of this host) -> 0 (reserved). Written by `xdpvsd --role realserver` from the
 * host's addresses, and kept up to date while it runs; read here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct vs_decap_key);
	__type(value, __u32);
} decap_local SEC(".maps");

/* enum xdpvs_decap_reason -> per-CPU packet count. Written here (one increment per packet); read by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPVS_DECAP_R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_reasons SEC(".maps");

/* "Go on" inside the decap pass: one past its last reason, never counted. */
#define XDPVS_DECAP_R_NEXT XDPVS_DECAP_R_MAX

static __always_inline void decap_count(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&decap_reasons, &reason);

	if (n)
		*n += 1;
}

/* Is addr (4 or 16 bytes) in map? The key is zeroed first: hash keys compare their padding too. */
static __always_inline int decap_known(void *map, const void *addr, __u8 family)
{
	struct vs_decap_key key = {};

	if (family == XDPVS_AF_INET)
		key.addr[0] = *(const __be32 *)addr;
	else
		__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	key.family = family;
	return bpf_map_lookup_elem(map, &key) != NULL;
}

/* RFC 6040 decapsulation: an outer CE mark moves to an ECN-capable inner packet (fixing the IPv4 checksum
 * incrementally, RFC 1624); a CE mark on a packet that is not ECN-capable cannot be delivered. Returns -1 to drop. */
static __always_inline int decap_ecn(__u8 outer_ecn, void *inner, __u8 inner_family)
{
	if (outer_ecn != 3)
		return 0;
	if (inner_family == XDPVS_AF_INET) {
		struct iphdr *iph = inner;
		__u16 old = *(__u16 *)iph;
		__u32 sum;

		if ((iph->tos & 3) == 0)
			return -1;
		iph->tos |= 3;
		sum = (__u16)~iph->check + (__u16)~old + *(__u16 *)iph;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		iph->check = (__u16)~sum;
	} else {
		/* Traffic class straddles bytes 0 and 1: its ECN bits are bits 4-5 of byte 1. */
		__u8 *b = inner;

		if (((b[1] >> 4) & 3) == 0)
			return -1;
		b[1] |= 3 << 4;
	}
	return 0;
}

/* The most bytes of L2 header we carry over: Ethernet and one 802.1Q tag. */
#define XDPVS_DECAP_L2_MAX 18

/* Strips the outer IPv4/IPv6 header of an IP-in-IP packet to this host for a configured VIP. Returns the reason. */
static __always_inline __u32 decap_packet(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = data };
	struct ethhdr *eth;
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	__u32 outer_len, l2, outer_payload, inner_payload;
	__u8 l2hdr[XDPVS_DECAP_L2_MAX];
	__u8 outer_ecn;
	__be16 inner_type;
	int eth_type, proto;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type < 0)
		return XDPVS_DECAP_R_PASS_MALFORMED;
	l2 = nh.pos - data;

	if (eth_type == bpf_htons(ETH_P_IP)) {
		proto = parse_iphdr(&nh, data_end, &iph, &outer_payload);
		if (proto < 0)
			return XDPVS_DECAP_R_PASS_MALFORMED;
		if (proto != IPPROTO_IPIP && proto != IPPROTO_IPV6)
			return XDPVS_DECAP_R_PASS_NOT_TUNNEL;
		if (iph->frag_off & bpf_htons(XDPVS_IP_MF | XDPVS_IP_OFFSET))
			return XDPVS_DECAP_R_PASS_FRAGMENT;
		if (!decap_known(&decap_local, &iph->daddr, XDPVS_AF_INET))
			return XDPVS_DECAP_R_PASS_NOT_LOCAL;
		outer_len = iph->ihl * 4;
		outer_ecn = iph->tos & 3;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		proto = parse_ip6hdr(&nh, data_end, &ip6h, &outer_payload);
		if (proto < 0)
			return XDPVS_DECAP_R_PASS_MALFORMED;
		/* Extension headers (a fragment header among them) are not walked: the packet is not ours. */
		if (proto != IPPROTO_IPIP && proto != IPPROTO_IPV6)
			return XDPVS_DECAP_R_PASS_NOT_TUNNEL;
		if (!decap_known(&decap_local, &ip6h->daddr, XDPVS_AF_INET6))
			return XDPVS_DECAP_R_PASS_NOT_LOCAL;
		outer_len = sizeof(*ip6h);
		outer_ecn = (bpf_ntohl(*(__be32 *)ip6h) >> 20) & 3;
	} else {
		return XDPVS_DECAP_R_PASS_NOT_TUNNEL;
	}

	/* The inner packet must fill the outer payload exactly. */
	if (proto == IPPROTO_IPIP) {
		if (parse_iphdr(&nh, data_end, &iph, &inner_payload) < 0)
			return XDPVS_DECAP_R_PASS_MALFORMED;
		if (bpf_ntohs(iph->tot_len) != outer_payload)
			return XDPVS_DECAP_R_PASS_MALFORMED;
		if (!decap_known(&decap_vips, &iph->daddr, XDPVS_AF_INET))
			return XDPVS_DECAP_R_PASS_NOT_VIP;
		if (decap_ecn(outer_ecn, iph, XDPVS_AF_INET))
			return XDPVS_DECAP_R_DROP_ECN;
		inner_type = bpf_htons(ETH_P_IP);
	} else {
		if (parse_ip6hdr(&nh, data_end, &ip6h, &inner_payload) < 0)
			return XDPVS_DECAP_R_PASS_MALFORMED;
		if (inner_payload + sizeof(*ip6h) != outer_payload)
			return XDPVS_DECAP_R_PASS_MALFORMED;
		if (!decap_known(&decap_vips, &ip6h->daddr, XDPVS_AF_INET6))
			return XDPVS_DECAP_R_PASS_NOT_VIP;
		if (decap_ecn(outer_ecn, ip6h, XDPVS_AF_INET6))
			return XDPVS_DECAP_R_DROP_ECN;
		inner_type = bpf_htons(ETH_P_IPV6);
	}

	/* The head moves past the outer header, and the L2 header (MACs, the tag if any) follows it. */
	if (data + sizeof(l2hdr) > data_end)
		return XDPVS_DECAP_R_PASS_MALFORMED;
	__builtin_memcpy(l2hdr, data, sizeof(l2hdr));
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return XDPVS_DECAP_R_PASS_MALFORMED; /* shrinking does not fail; nothing was changed if it did */

	/* Every packet pointer is stale after adjust_head: start again from ctx. An IP header follows the L2 one, so
	 * the frame is longer than XDPVS_DECAP_L2_MAX whatever its tag. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + XDPVS_DECAP_L2_MAX > data_end)
		return XDPVS_DECAP_R_PASS_MALFORMED;
	__builtin_memcpy(data, l2hdr, 2 * ETH_ALEN);
	if (l2 == sizeof(struct ethhdr)) {
		*(__be16 *)(data + 2 * ETH_ALEN) = inner_type;
	} else {
		__builtin_memcpy(data + 2 * ETH_ALEN, l2hdr + 2 * ETH_ALEN, 4);
		*(__be16 *)(data + 2 * ETH_ALEN + 4) = inner_type;
	}
	return XDPVS_DECAP_R_DECAP;
}

#endif
