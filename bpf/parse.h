/* Packet parsing: a header cursor (xdp-tutorial style) and the one pass that fills struct xdpvs_pkt. */
#ifndef XDPVS_PARSE_H
#define XDPVS_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdpvs_shared.h"

/* "No verdict yet, go on to the next step": one past the last reason, never counted. */
#define XDPVS_R_NEXT XDPVS_R_MAX

/* IPv4 frag_off bits (include/net/ip.h is not uapi). */
#define XDPVS_IP_MF 0x2000
#define XDPVS_IP_OFFSET 0x1fff

/* TCP flag bits as in byte 13 of the header. */
#define XDPVS_TCP_FIN 0x01
#define XDPVS_TCP_SYN 0x02
#define XDPVS_TCP_RST 0x04
#define XDPVS_TCP_ACK 0x10

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/* Where the parser is: the first byte not yet consumed. */
struct hdr_cursor {
	void *pos;
};

/* What the rest of the program needs from a packet. flow is the `conns` key, built in place
 * (the caller zero-initialises the whole struct, so its padding compares equal). */
struct xdpvs_pkt {
	struct vs_flow_key flow;
	__u32 len;       /* IP length (header + payload): bytes counted in the stats, as IPVS */
	__u8 tcp_flags;  /* byte 13 of the TCP header (XDPVS_TCP_*); 0 for UDP */
};

static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet plus at most one VLAN tag. Returns the next EtherType (network order) or -1. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end, struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_hdr *vlh;
	__u16 h_proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	*ethhdr = eth;
	h_proto = eth->h_proto;

	if (proto_is_vlan(h_proto)) {
		vlh = nh->pos;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		nh->pos = vlh + 1;
		h_proto = vlh->h_vlan_encapsulated_proto;
	}
	return h_proto;
}

/* IPv4 with any IHL >= 5; total length must fit in the frame (trailing Ethernet padding is fine).
 * Returns the protocol or -1; *l4_len is the IP payload length. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct iphdr **iphdr, __u32 *l4_len)
{
	struct iphdr *iph = nh->pos;
	__u32 hdrsize, tot_len;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < sizeof(*iph))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;
	tot_len = bpf_ntohs(iph->tot_len);
	/* Compared as lengths, not as iph + tot_len: a packet pointer plus a 16-bit unknown can exceed
	 * the verifier's packet-offset bound. */
	if (tot_len < hdrsize || tot_len > (__u32)(data_end - (void *)iph))
		return -1;

	nh->pos += hdrsize;
	*iphdr = iph;
	*l4_len = tot_len - hdrsize;
	return iph->protocol;
}

/* IPv6 fixed header only. Returns the next header or -1; *l4_len is the payload length. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end, struct ipv6hdr **ip6hdr, __u32 *l4_len)
{
	struct ipv6hdr *ip6h = nh->pos;
	__u32 plen;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	if (ip6h->version != 6)
		return -1;
	plen = bpf_ntohs(ip6h->payload_len);
	/* As lengths, like the IPv4 total length above. */
	if (plen > (__u32)(data_end - (void *)(ip6h + 1)))
		return -1;

	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	*l4_len = plen;
	return ip6h->nexthdr;
}

/* TCP with its options; the header must lie within the IP payload. Returns 0 or -1. */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end, __u32 l4_len, struct tcphdr **tcphdr)
{
	struct tcphdr *h = nh->pos;
	__u32 hdrsize;

	if ((void *)(h + 1) > data_end)
		return -1;
	hdrsize = h->doff * 4;
	if (hdrsize < sizeof(*h) || hdrsize > l4_len)
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;

	nh->pos += hdrsize;
	*tcphdr = h;
	return 0;
}

/* UDP; its length field must cover the header and fit in the IP payload. Returns 0 or -1. */
static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end, __u32 l4_len, struct udphdr **udphdr)
{
	struct udphdr *h = nh->pos;
	__u32 len;

	if ((void *)(h + 1) > data_end)
		return -1;
	len = bpf_ntohs(h->len);
	if (len < sizeof(*h) || len > l4_len)
		return -1;

	nh->pos = h + 1;
	*udphdr = h;
	return 0;
}

/* IPv6 extension headers (IANA "IPv6 Extension Header Types"): we do not walk them. */
static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	switch (nexthdr) {
	case 0:   /* hop-by-hop options */
	case 43:  /* routing */
	case 44:  /* fragment */
	case 50:  /* ESP */
	case 51:  /* AH */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
	case 253: /* experiments */
	case 254:
		return 1;
	}
	return 0;
}

/* Fills pkt (flow key, flags, length). Returns XDPVS_R_NEXT, or the PASS reason. */
static __always_inline __u32 parse_packet(struct xdp_md *ctx, struct xdpvs_pkt *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = data };
	struct ethhdr *eth;
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct tcphdr *tcph;
	struct udphdr *udph;
	__u32 l4_len = 0;
	int eth_type, proto;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type < 0)
		return XDPVS_R_PASS_MALFORMED;

	if (eth_type == bpf_htons(ETH_P_IP)) {
		proto = parse_iphdr(&nh, data_end, &iph, &l4_len);
		if (proto < 0)
			return XDPVS_R_PASS_MALFORMED;
		if (iph->frag_off & bpf_htons(XDPVS_IP_MF | XDPVS_IP_OFFSET))
			return XDPVS_R_PASS_FRAGMENT;
		/* Bytes are counted from the IP header, as IPVS does (skb->len at layer 3). */
		pkt->len = bpf_ntohs(iph->tot_len);
		pkt->flow.family = XDPVS_AF_INET;
		pkt->flow.src[0] = iph->saddr;
		pkt->flow.dst[0] = iph->daddr;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		proto = parse_ip6hdr(&nh, data_end, &ip6h, &l4_len);
		if (proto < 0)
			return XDPVS_R_PASS_MALFORMED;
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
			return ipv6_is_ext(proto) ? XDPVS_R_PASS_IPV6_EXT : XDPVS_R_PASS_NOT_L4;
		pkt->len = sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
		pkt->flow.family = XDPVS_AF_INET6;
		__builtin_memcpy(pkt->flow.src, &ip6h->saddr, sizeof(pkt->flow.src));
		__builtin_memcpy(pkt->flow.dst, &ip6h->daddr, sizeof(pkt->flow.dst));
	} else {
		return XDPVS_R_PASS_NOT_IP;
	}

	if (proto == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, l4_len, &tcph) < 0)
			return XDPVS_R_PASS_MALFORMED;
		pkt->flow.sport = tcph->source;
		pkt->flow.dport = tcph->dest;
		pkt->tcp_flags = ((__u8 *)tcph)[13];
	} else if (proto == IPPROTO_UDP) {
		if (parse_udphdr(&nh, data_end, l4_len, &udph) < 0)
			return XDPVS_R_PASS_MALFORMED;
		pkt->flow.sport = udph->source;
		pkt->flow.dport = udph->dest;
	} else {
		return XDPVS_R_PASS_NOT_L4;
	}
	pkt->flow.proto = proto;
	return XDPVS_R_NEXT;
}

#endif
