/* Forwarding: rewrite the packet for the destination's method and say how it leaves (TX or REDIRECT). */
#ifndef XDPVS_FORWARD_H
#define XDPVS_FORWARD_H

#include "conn.h"
#include "encap.h"
#include "nat.h"
#include "parse.h"

/* Direct routing (-g): only the MACs change; VLAN tag, IP and TCP/UDP stay as they are. */
static __always_inline __u32 forward_dr(struct xdp_md *ctx, struct xdpvs_target *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct vs_dest *dest = t->dest;
	struct ethhdr *eth = data;

	if (!(dest->flags & XDPVS_DEST_F_MAC_VALID))
		return XDPVS_R_DROP_DEST_NO_MAC;
	/* Parsed already, but the verifier needs the check on this pointer. */
	if ((void *)(eth + 1) > data_end)
		return XDPVS_R_PASS_MALFORMED;

	__builtin_memcpy(eth->h_dest, dest->mac_dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, dest->mac_src, ETH_ALEN);

	t->ifindex = dest->ifindex;
	return t->ifindex == ctx->ingress_ifindex ? XDPVS_R_FWD_TX : XDPVS_R_FWD_REDIRECT;
}

/* Returns XDPVS_R_FWD_TX, XDPVS_R_FWD_REDIRECT (t->ifindex set) or a DROP reason. */
static __always_inline __u32 forward(struct xdp_md *ctx, struct xdpvs_target *t)
{
	switch (t->dest->method) {
	case XDPVS_FWD_DR:
		return forward_dr(ctx, t);
	case XDPVS_FWD_NAT:
		return nat_forward(ctx, t->dest, &t->ifindex);
	case XDPVS_FWD_TUN:
		return forward_tun(ctx, t);
	default:
		return XDPVS_R_DROP_BAD_DEST;
	}
}

#endif
