/* Tunnelling (-i): the client's IP packet, untouched, inside an outer IPv4 (protocol 4 / 41) or IPv6 (next header
 * 4 / 41) header from a director address to the real server, as IPVS's ip_vs_tunnel_xmit builds it. */
#ifndef XDPVS_ENCAP_H
#define XDPVS_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdpvs_shared.h"
#include "conn.h"
#include "csum_full.h"
#include "icmp.h"
#include "parse.h"

#define XDPVS_IP_DF 0x4000
#define XDPVS_L2_ETH 14  /* Ethernet header */
#define XDPVS_L2_VLAN 18 /* Ethernet header and one 802.1Q tag */

/* What the outer header takes from the inner one. */
struct encap_inner {
	__u32 len;       /* inner IP length, header and payload: the outer payload */
	__be32 flow_lbl; /* IPv6: the flow label (low 20 bits, network order), kept for ECMP on the way */
	__be16 id;       /* IPv4: identification */
	__u8 family;     /* XDPVS_AF_INET or XDPVS_AF_INET6 */
	__u8 tos;        /* IPv4 TOS / IPv6 traffic class, ECN bits included */
	__u8 ttl;        /* TTL / hop limit */
	__u8 df;         /* the outer header gets DF */
};

/* Reads the inner header at data + l2 (l2 a constant). Returns 0 or -1. */
static __always_inline int encap_read_inner(void *data, void *data_end, const __u32 l2, struct encap_inner *in)
{
	__be16 type;

	if (data + l2 > data_end)
		return -1;
	/* The EtherType is the last two bytes of the L2 header, after the tag if there is one. */
	type = *(__be16 *)(data + l2 - 2);
	if (type == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + l2;

		if ((void *)(iph + 1) > data_end)
			return -1;
		in->family = XDPVS_AF_INET;
		in->len = bpf_ntohs(iph->tot_len);
		in->tos = iph->tos;
		in->ttl = iph->ttl;
		in->id = iph->id;
		/* IPVS: "Copy DF, reset fragment offset and MF". */
		in->df = !!(iph->frag_off & bpf_htons(XDPVS_IP_DF));
		return 0;
	}
	if (type == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = data + l2;
		__u32 w0;

		if ((void *)(ip6h + 1) > data_end)
			return -1;
		w0 = bpf_ntohl(*(__be32 *)ip6h);
		in->family = XDPVS_AF_INET6;
		in->len = sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
		in->tos = (w0 >> 20) & 0xff;
		in->flow_lbl = bpf_htonl(w0 & 0xfffff);
		in->ttl = ip6h->hop_limit;
		/* IPv6 is never fragmented on the way: an IPv4 outer header carrying it says so too. */
		in->df = 1;
		return 0;
	}
	return -1;
}

/* RFC 6040 (normal mode, as INET_ECN_encapsulate): the outer ECN field copies the inner one, except that CE
 * becomes ECT(0). */
static __always_inline __u8 encap_tos(__u8 inner)
{
	return (inner & 3) == 3 ? (inner & ~3) | 2 : inner;
}

static __always_inline void encap_ipv4_hdr(struct iphdr *o, const struct vs_dest *dest, const struct encap_inner *in)
{
	*(__u8 *)o = 0x45; /* version 4, IHL 5 */
	o->tos = encap_tos(in->tos);
	o->tot_len = bpf_htons(in->len + sizeof(*o));
	/* The inner ID: a DF datagram's ID is never used for reassembly (RFC 6864), and a non-DF one's was chosen
	 * by the client to be unique for as long as it may be reassembled. */
	o->id = in->id;
	o->frag_off = in->df ? bpf_htons(XDPVS_IP_DF) : 0;
	o->ttl = in->ttl;
	o->protocol = in->family == XDPVS_AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	o->check = 0;
	o->saddr = dest->tun_src[0];
	o->daddr = dest->addr[0];
	o->check = csum_full_ipv4_hdr(o);
}

static __always_inline void encap_ipv6_hdr(struct ipv6hdr *o, const struct vs_dest *dest, const struct encap_inner *in)
{
	*(__be32 *)o = bpf_htonl(0x60000000 | ((__u32)encap_tos(in->tos) << 20)) | in->flow_lbl;
	o->payload_len = bpf_htons(in->len);
	o->nexthdr = in->family == XDPVS_AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
	o->hop_limit = in->ttl;
	__builtin_memcpy(&o->saddr, dest->tun_src, sizeof(o->saddr));
	__builtin_memcpy(&o->daddr, dest->addr, sizeof(o->daddr));
}

/* Inserts the outer header between the L2 header (l2 bytes, a constant; its tag kept, its MACs now the next
 * hop's) and the inner packet. Returns XDPVS_R_NEXT or the reason to give up. */
static __always_inline __u32 encap_push(struct xdp_md *ctx, const struct vs_dest *dest, const struct encap_inner *in,
					const __u32 l2)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 tag[4];

	if (data + l2 > data_end)
		return XDPVS_R_PASS_MALFORMED;
	if (l2 == XDPVS_L2_VLAN)
		__builtin_memcpy(tag, data + 2 * ETH_ALEN, sizeof(tag));

	if (dest->family == XDPVS_AF_INET6) {
		struct ipv6hdr *o;

		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*o)))
			return XDPVS_R_DROP_NO_HEADROOM;
		/* adjust_head invalidated every packet pointer: start again from ctx. */
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		o = data + l2;
		if ((void *)(o + 1) > data_end)
			return XDPVS_R_PASS_MALFORMED;
		*(__be16 *)(data + l2 - 2) = bpf_htons(ETH_P_IPV6);
		encap_ipv6_hdr(o, dest, in);
	} else {
		struct iphdr *o;

		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*o)))
			return XDPVS_R_DROP_NO_HEADROOM;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		o = data + l2;
		if ((void *)(o + 1) > data_end)
			return XDPVS_R_PASS_MALFORMED;
		*(__be16 *)(data + l2 - 2) = bpf_htons(ETH_P_IP);
		encap_ipv4_hdr(o, dest, in);
	}
	__builtin_memcpy(data, dest->mac_dst, ETH_ALEN);
	__builtin_memcpy(data + ETH_ALEN, dest->mac_src, ETH_ALEN);
	if (l2 == XDPVS_L2_VLAN)
		__builtin_memcpy(data + 2 * ETH_ALEN, tag, sizeof(tag)); /* TPID and TCI as they came */
	return XDPVS_R_NEXT;
}

/* Too big for the egress MTU once encapsulated (mtu: what the tunnel can carry): tell the client (IPv4 with DF,
 * IPv6), or drop (IPv4 without DF: it would need fragmenting, which XDP cannot do).
 * A global function, so the verifier checks it once on its own instead of on every path that reaches it: it must not
 * make the director program's verification grow with what the other steps do. Returns the reason. */
__attribute__((noinline)) int xdpvs_tun_too_big(struct xdp_md *ctx, __u32 l2, __u32 inner_family, __u32 df, __u32 mtu)
{
	if (inner_family == XDPVS_AF_INET) {
		if (!df)
			return XDPVS_R_DROP_TUN_TOO_BIG;
		if (mtu < XDPVS_IPV4_MIN_MTU)
			mtu = XDPVS_IPV4_MIN_MTU;
		if (l2 == XDPVS_L2_VLAN)
			return icmp4_frag_needed(ctx, XDPVS_L2_VLAN, mtu);
		return icmp4_frag_needed(ctx, XDPVS_L2_ETH, mtu);
	}
	/* Below 1280 the client would ignore the answer (RFC 8201, 4). */
	if (mtu < XDPVS_IPV6_MIN_MTU)
		mtu = XDPVS_IPV6_MIN_MTU;
	if (l2 == XDPVS_L2_VLAN)
		return icmp6_pkt_too_big(ctx, XDPVS_L2_VLAN, mtu);
	return icmp6_pkt_too_big(ctx, XDPVS_L2_ETH, mtu);
}

static __always_inline __u32 encap_l2(struct xdp_md *ctx, const struct vs_dest *dest, const __u32 l2)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct encap_inner in = {};
	__u32 outer_len = dest->family == XDPVS_AF_INET6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);

	if (encap_read_inner(data, data_end, l2, &in))
		return XDPVS_R_PASS_MALFORMED;
	if (dest->mtu && in.len + outer_len > dest->mtu)
		return xdpvs_tun_too_big(ctx, l2, in.family, in.df, dest->mtu > outer_len ? dest->mtu - outer_len : 0);
	return encap_push(ctx, dest, &in, l2);
}

/* Encapsulates the packet for dest (or answers it, when too big). A global function for the same reason as
 * xdpvs_tun_too_big. Returns XDPVS_R_NEXT when encapsulated, else the reason. */
__attribute__((noinline)) int xdpvs_tun_encap(struct xdp_md *ctx, const struct vs_dest *dest)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	/* A global function's pointer argument may be NULL as far as the verifier knows. */
	if (!dest)
		return XDPVS_R_DROP_BAD_DEST;
	if ((void *)(eth + 1) > data_end)
		return XDPVS_R_PASS_MALFORMED;
	/* Two copies, one per L2 length, so that every offset below is a constant. */
	if (proto_is_vlan(eth->h_proto))
		return encap_l2(ctx, dest, XDPVS_L2_VLAN);
	return encap_l2(ctx, dest, XDPVS_L2_ETH);
}

/* IP-in-IP to the real server. Returns XDPVS_R_FWD_TX, XDPVS_R_FWD_REDIRECT (t->ifindex set),
 * XDPVS_R_TX_ICMP_TOO_BIG (the answer to the client, out of the receiving interface) or a DROP/PASS reason. */
static __always_inline __u32 forward_tun(struct xdp_md *ctx, struct xdpvs_target *t)
{
	const struct vs_dest *dest = t->dest;
	__u32 r;

	if (!(dest->flags & XDPVS_DEST_F_MAC_VALID))
		return XDPVS_R_DROP_DEST_NO_MAC;
	r = xdpvs_tun_encap(ctx, dest);
	if (r != XDPVS_R_NEXT)
		return r;
	t->ifindex = dest->ifindex;
	return t->ifindex == ctx->ingress_ifindex ? XDPVS_R_FWD_TX : XDPVS_R_FWD_REDIRECT;
}

#endif
