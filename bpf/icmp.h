/* "Too big" answers built in XDP: ICMP fragmentation-needed (RFC 792, 1191) and ICMPv6 packet-too-big (RFC 4443,
 * 8201), sent back to the client of a packet the tunnel cannot carry, so that it lowers its path MTU. */
#ifndef XDPVS_ICMP_H
#define XDPVS_ICMP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdpvs_shared.h"
#include "csum_full.h"

#define XDPVS_ICMP_TTL 64
/* IPTOS_PREC_INTERNETCONTROL, as the kernel marks its own ICMP errors. */
#define XDPVS_ICMP_TOS 0xc0
/* IPv4 quotes the offending header and 8 bytes of its payload (RFC 792). */
#define XDPVS_ICMP4_QUOTE_L4 8
/* IPv6 quotes as much as keeps the answer within the minimum MTU (RFC 4443, 2.4 (c)): 1280 - 40 - 8. A packet
 * too big for a tunnel on a link of at least 1280 bytes (every IPv6 link) is longer than that, so the quote always
 * has this one length, and its checksum takes three bpf_csum_diff calls and no loop. */
#define XDPVS_ICMP6_QUOTE 1232
#define XDPVS_IPV6_MIN_MTU 1280
#define XDPVS_IPV4_MIN_MTU 68

/* Grows the frame by `grow` bytes in front of its IP header and cuts it to l2 + keep bytes, so that the new frame is
 * [l2][grow bytes to fill][the first `keep` bytes of the old IP packet]. The L2 header moves to the front with its
 * MACs swapped (the answer goes back where the packet came from); a VLAN tag and the EtherType stay.
 * Returns 0, or the reason to give up. l2 is a constant (14 or 18); keep was checked against the packet. */
static __always_inline __u32 icmp_reframe(struct xdp_md *ctx, const __u32 l2, __u32 keep, const __u32 grow)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 old[18];

	if (data + l2 > data_end)
		return XDPVS_R_PASS_MALFORMED;
	__builtin_memcpy(old, data, l2);
	if (bpf_xdp_adjust_tail(ctx, (int)(l2 + keep) - (int)(data_end - data)))
		return XDPVS_R_DROP_NO_HEADROOM;
	if (bpf_xdp_adjust_head(ctx, -(int)grow))
		return XDPVS_R_DROP_NO_HEADROOM;

	/* Every packet pointer is stale after adjust_head/adjust_tail: start again from ctx. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + l2 > data_end)
		return XDPVS_R_PASS_MALFORMED;
	__builtin_memcpy(data, old + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(data + ETH_ALEN, old, ETH_ALEN);
	__builtin_memcpy(data + 2 * ETH_ALEN, old + 2 * ETH_ALEN, l2 - 2 * ETH_ALEN);
	return 0;
}

/* RFC 1122 3.2.2: no ICMP error about a packet whose source is not one host (0.0.0.0, broadcast, multicast, class E). */
static __always_inline int icmp4_source_ok(__be32 saddr)
{
	__u32 a = bpf_ntohl(saddr);

	return a != 0 && (a >> 28) < 14;
}

/* Answers the IPv4 packet (DF set) at data + l2 with "fragmentation needed" from its destination, quoting its
 * header and 8 bytes; `mtu` is the next-hop MTU to report. Returns XDPVS_R_TX_ICMP_TOO_BIG (send it back with
 * XDP_TX) or the reason to give up. */
static __always_inline __u32 icmp4_frag_needed(struct xdp_md *ctx, const __u32 l2, __u16 mtu)
{
	const __u32 grow = sizeof(struct iphdr) + sizeof(struct icmphdr);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + l2, *orig;
	struct icmphdr *icmp;
	__be32 client, vip;
	__u32 quote, r, *l4;
	__u64 sum;

	if ((void *)(iph + 1) > data_end)
		return XDPVS_R_PASS_MALFORMED;
	client = iph->saddr;
	vip = iph->daddr;
	if (!icmp4_source_ok(client))
		return XDPVS_R_DROP_TUN_TOO_BIG;
	quote = iph->ihl * 4;
	if (quote < sizeof(*iph))
		return XDPVS_R_PASS_MALFORMED;
	quote += XDPVS_ICMP4_QUOTE_L4;
	if ((void *)iph + quote > data_end)
		return XDPVS_R_PASS_MALFORMED;

	r = icmp_reframe(ctx, l2, quote, grow);
	if (r)
		return r;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	iph = data + l2;
	icmp = (void *)(iph + 1);
	if ((void *)(icmp + 1) > data_end)
		return XDPVS_R_PASS_MALFORMED;

	*(__u8 *)iph = 0x45; /* version 4, IHL 5 */
	iph->tos = XDPVS_ICMP_TOS;
	iph->tot_len = bpf_htons(grow + quote);
	iph->id = 0;
	iph->frag_off = 0;
	iph->ttl = XDPVS_ICMP_TTL;
	iph->protocol = IPPROTO_ICMP;
	iph->check = 0;
	iph->saddr = vip;
	iph->daddr = client;
	iph->check = csum_full_ipv4_hdr(iph);

	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(mtu);
	/* The message: our 8-byte header, the quoted IP header (IHL words), 8 bytes of what followed it. */
	sum = (__u64)((__u32 *)icmp)[0] + ((__u32 *)icmp)[1];
	orig = (void *)(icmp + 1);
	if ((void *)(orig + 1) > data_end)
		return XDPVS_R_PASS_MALFORMED;
	if (csum_full_add_iphdr(orig, data_end, &sum))
		return XDPVS_R_PASS_MALFORMED;
	l4 = (void *)orig + orig->ihl * 4;
	if ((void *)(l4 + 2) > data_end)
		return XDPVS_R_PASS_MALFORMED;
	sum += (__u64)l4[0] + l4[1];
	icmp->checksum = csum_full_fold(sum);
	return XDPVS_R_TX_ICMP_TOO_BIG;
}

/* RFC 4443 2.4 (e): no error about a packet from the unspecified or a multicast address. */
static __always_inline int icmp6_source_ok(const struct in6_addr *a)
{
	if (a->s6_addr[0] == 0xff)
		return 0;
	return a->s6_addr32[0] | a->s6_addr32[1] | a->s6_addr32[2] | a->s6_addr32[3];
}

/* Answers the IPv6 packet at data + l2 with "packet too big" from its destination, quoting its first 1232 bytes
 * (the answer fills 1280); `mtu` is the MTU to report (at least 1280). A packet shorter than the quote (an egress
 * MTU below IPv6's 1280) gets no answer: XDPVS_R_DROP_TUN_TOO_BIG. Returns XDPVS_R_TX_ICMP_TOO_BIG or the reason. */
static __always_inline __u32 icmp6_pkt_too_big(struct xdp_md *ctx, const __u32 l2, __u32 mtu)
{
	const __u32 grow = sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6h = data + l2;
	struct icmp6hdr *icmp;
	struct in6_addr client, vip;
	void *quote;
	__u64 sum = 0;
	__u32 r;
	int i;

	if ((void *)(ip6h + 1) > data_end)
		return XDPVS_R_PASS_MALFORMED;
	__builtin_memcpy(&client, &ip6h->saddr, sizeof(client));
	__builtin_memcpy(&vip, &ip6h->daddr, sizeof(vip));
	if (!icmp6_source_ok(&client))
		return XDPVS_R_DROP_TUN_TOO_BIG;
	if (sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len) < XDPVS_ICMP6_QUOTE)
		return XDPVS_R_DROP_TUN_TOO_BIG;
	if ((void *)ip6h + XDPVS_ICMP6_QUOTE > data_end)
		return XDPVS_R_PASS_MALFORMED;

	r = icmp_reframe(ctx, l2, XDPVS_ICMP6_QUOTE, grow);
	if (r)
		return r;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6h = data + l2;
	icmp = (void *)(ip6h + 1);
	quote = icmp + 1;
	if (quote + XDPVS_ICMP6_QUOTE > data_end)
		return XDPVS_R_PASS_MALFORMED;

	*(__be32 *)ip6h = bpf_htonl(0x60000000); /* version 6, traffic class 0, flow label 0 */
	ip6h->payload_len = bpf_htons(sizeof(*icmp) + XDPVS_ICMP6_QUOTE);
	ip6h->nexthdr = IPPROTO_ICMPV6;
	ip6h->hop_limit = XDPVS_ICMP_TTL;
	__builtin_memcpy(&ip6h->saddr, &vip, sizeof(vip));
	__builtin_memcpy(&ip6h->daddr, &client, sizeof(client));

	icmp->icmp6_type = ICMPV6_PKT_TOOBIG;
	icmp->icmp6_code = 0;
	icmp->icmp6_cksum = 0;
	icmp->icmp6_mtu = bpf_htonl(mtu);
	/* Pseudo-header (RFC 8200 8.1): addresses, upper-layer length, next header. */
	for (i = 0; i < 4; i++)
		sum += (__u64)vip.s6_addr32[i] + client.s6_addr32[i];
	sum += bpf_htonl(sizeof(*icmp) + XDPVS_ICMP6_QUOTE);
	sum += bpf_htonl(IPPROTO_ICMPV6);
	/* The message: our 8-byte header, then the quote in bpf_csum_diff's largest pieces (512 bytes). */
	sum += (__u64)((__u32 *)icmp)[0] + ((__u32 *)icmp)[1];
	csum_full_add_const(quote, 512, &sum);
	csum_full_add_const(quote + 512, 512, &sum);
	csum_full_add_const(quote + 1024, XDPVS_ICMP6_QUOTE - 1024, &sum);
	icmp->icmp6_cksum = csum_full_fold(sum);
	return XDPVS_R_TX_ICMP_TOO_BIG;
}

#endif
