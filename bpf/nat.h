/* NAT (-m, "Masq"): address and port rewrites with incremental checksums, the reverse table, the forward path. */
#ifndef XDPVS_NAT_H
#define XDPVS_NAT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"
#include "parse.h"

/* ---- Checksums ------------------------------------------------------------------------------------
 * Internet checksums (RFC 1071) are updated, never recomputed: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'),
 * for every 16-bit word m that becomes m'. Words are summed as they lie in memory (loaded without byte
 * swapping): a ones' complement sum is the same whichever way round each word is read, as long as the
 * checksum field is read the same way. From a correct checksum, eqn. 3 yields exactly what a full
 * recomputation would (never 0xffff), byte for byte; test/datapath/nat.test.ts recomputes them to check. */

/* ~m + m' for one 16-bit word. */
static __always_inline __u32 csum_delta16(__u16 old, __u16 new)
{
	return (__u16)~old + (__u32)new;
}

/* ~m + m' for both 16-bit halves of a 32-bit word. */
static __always_inline __u32 csum_delta32(__u32 old, __u32 new)
{
	return (~old & 0xffff) + (~old >> 16) + (new & 0xffff) + (new >> 16);
}

/* ~(~HC + delta), folded. delta is a sum of at most a few dozen csum_delta terms (no u32 overflow). */
static __always_inline __u16 csum_apply(__u16 check, __u32 delta)
{
	__u32 s = (__u16)~check + delta;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* ---- Headers --------------------------------------------------------------------------------------- */

/* The headers a rewrite touches, found again from the packet (parse_packet keeps only the flow). Kept small:
 * it lives on the NAT functions' stack frames, which share the verifier's 512 bytes with the entry's. */
struct nat_hdrs {
	void *l3;   /* struct iphdr, or struct ipv6hdr when v6 */
	void *l4;   /* struct tcphdr when tcp, else struct udphdr */
	__u8 v6;
	__u8 tcp;
};

/* Fills h for a TCP or UDP packet over IPv4 or IPv6 (the packet passed parse_packet already; the
 * verifier needs these pointers checked anew). The Ethernet header is at ctx->data. Returns 0 or -1. */
static __always_inline int nat_headers(struct xdp_md *ctx, struct nat_hdrs *h)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct ethhdr *eth;
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct tcphdr *tcph;
	struct udphdr *udph;
	__u32 l4_len = 0;
	int eth_type, proto;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type == bpf_htons(ETH_P_IP)) {
		proto = parse_iphdr(&nh, data_end, &iph, &l4_len);
		h->l3 = iph;
		h->v6 = 0;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		proto = parse_ip6hdr(&nh, data_end, &ip6h, &l4_len);
		h->l3 = ip6h;
		h->v6 = 1;
	} else {
		return -1;
	}
	if (proto == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, l4_len, &tcph) < 0)
			return -1;
		h->l4 = tcph;
		h->tcp = 1;
		return 0;
	}
	if (proto == IPPROTO_UDP) {
		if (parse_udphdr(&nh, data_end, l4_len, &udph) < 0)
			return -1;
		h->l4 = udph;
		h->tcp = 0;
		return 0;
	}
	return -1;
}

/* Writes the frame's MACs. Returns 0, or -1 when the frame is shorter than an Ethernet header. */
static __always_inline int nat_set_macs(struct xdp_md *ctx, const __u8 *dst, const __u8 *src)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
	return 0;
}

#define NAT_SRC 0
#define NAT_DST 1

/* Replaces the source (NAT_SRC) or destination (NAT_DST) address and port of the packet with addr
 * (1 word for IPv4, 4 for IPv6) and port, keeping the IPv4 header checksum and the TCP/UDP checksum
 * (whose pseudo-header holds the addresses) correct. With dec_ttl, also takes one off the IPv4 TTL /
 * IPv6 hop limit (the caller checked it is above 1): what a router does to what it forwards.
 * UDP: an IPv4 datagram without checksum (0) keeps none; an updated checksum that comes out 0 is sent
 * as 0xffff (RFC 768). IPv6 UDP with a zero checksum is invalid (RFC 8200): it is left zero, and the
 * receiver drops it as it would have without the director. */
static __always_inline void nat_rewrite(struct nat_hdrs *h, int side, const __be32 *addr, __be16 port, int dec_ttl)
{
	__u32 l4 = 0; /* delta of the TCP/UDP checksum */
	__be16 *pp;
	__u16 *check;

	if (!h->v6) {
		struct iphdr *iph = h->l3;
		__be32 *a = side == NAT_DST ? &iph->daddr : &iph->saddr;
		__u32 ip = csum_delta32(*a, addr[0]);

		l4 = ip;
		*a = addr[0];
		if (dec_ttl) {
			/* TTL and protocol share one 16-bit word. */
			__u16 *w = (__u16 *)&iph->ttl;
			__u16 old = *w;

			iph->ttl--;
			ip += csum_delta16(old, *w);
		}
		iph->check = csum_apply(iph->check, ip);
	} else {
		struct ipv6hdr *ip6h = h->l3;
		__be32 *a = side == NAT_DST ? ip6h->daddr.in6_u.u6_addr32 : ip6h->saddr.in6_u.u6_addr32;

		l4 = csum_delta32(a[0], addr[0]) + csum_delta32(a[1], addr[1]) +
		     csum_delta32(a[2], addr[2]) + csum_delta32(a[3], addr[3]);
		a[0] = addr[0];
		a[1] = addr[1];
		a[2] = addr[2];
		a[3] = addr[3];
		if (dec_ttl)
			ip6h->hop_limit--;
	}

	if (h->tcp) {
		struct tcphdr *tcph = h->l4;

		pp = side == NAT_DST ? &tcph->dest : &tcph->source;
		check = &tcph->check;
	} else {
		struct udphdr *udph = h->l4;

		pp = side == NAT_DST ? &udph->dest : &udph->source;
		check = &udph->check;
	}
	l4 += csum_delta16(*pp, port);
	*pp = port;
	if (!h->tcp && *check == 0)
		return;
	*check = csum_apply(*check, l4);
	if (!h->tcp && *check == 0)
		*check = 0xffff;
}

/* ---- The reverse table ------------------------------------------------------------------------------ */

/* Records, for a new connection `flow` (as the client sent it) scheduled to NAT destination d (id
 * dest_id), how its replies look when they arrive (RIP:RPORT -> CIP:CPORT) and what they become. Called
 * by conn_select with the `conns` entry. Returns 0, or the map update's error. */
static __always_inline int nat_track(const struct vs_flow_key *flow, const struct vs_dest *d, __u32 dest_id)
{
	/* Zeroed: hash keys compare all bytes, and IPv4 leaves words 1..3 at zero. */
	struct vs_flow_key rk = {};
	struct vs_nat_rev rv = {};

	__builtin_memcpy(rk.src, d->addr, sizeof(rk.src));
	__builtin_memcpy(rk.dst, flow->src, sizeof(rk.dst));
	rk.sport = d->port;
	rk.dport = flow->sport;
	rk.proto = flow->proto;
	rk.family = flow->family;

	__builtin_memcpy(rv.vaddr, flow->dst, sizeof(rv.vaddr));
	rv.vport = flow->dport;
	rv.dest_id = dest_id;
	rv.dest_gen = d->gen;
	return bpf_map_update_elem(&nat_reverse, &rk, &rv, BPF_ANY);
}

/* ---- Forward path ------------------------------------------------------------------------------------ */

/* Masquerading (-m): the destination becomes RIP:RPORT (the port may differ from the VIP's: port
 * mapping), the MACs those of the next hop towards the real server (itself when directly connected, else
 * its gateway), out of dest->ifindex: normally the private side. TTL is left alone, as IPVS does for
 * packets to the VIP (they are delivered to the director, not routed through it).
 * Returns XDPVS_R_FWD_TX, XDPVS_R_FWD_REDIRECT (*ifindex set) or the reason the packet does not go.
 * Not inlined, like nat_reply(): its header pointers stay off the entry's stack frame (the verifier's 512 bytes
 * are shared by the entry and the subprograms it calls). */
static __noinline __u32 nat_forward(struct xdp_md *ctx, const struct vs_dest *dest, __u32 *ifindex)
{
	struct nat_hdrs h = {};

	if (!(dest->flags & XDPVS_DEST_F_MAC_VALID))
		return XDPVS_R_DROP_DEST_NO_MAC;
	if (nat_headers(ctx, &h) < 0)
		return XDPVS_R_PASS_MALFORMED;
	/* The balancer never mixes families for NAT; a record that does is not ours to follow. */
	if ((h.v6 ? XDPVS_AF_INET6 : XDPVS_AF_INET) != dest->family)
		return XDPVS_R_DROP_BAD_DEST;

	nat_rewrite(&h, NAT_DST, dest->addr, dest->port, 0);
	if (nat_set_macs(ctx, dest->mac_dst, dest->mac_src) < 0)
		return XDPVS_R_PASS_MALFORMED;

	*ifindex = dest->ifindex;
	return *ifindex == ctx->ingress_ifindex ? XDPVS_R_FWD_TX : XDPVS_R_FWD_REDIRECT;
}

#endif
