/* The director's XDP program: parse, find the service, keep or schedule the connection, forward. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpvs_shared.h"
#include "parse.h"
#include "maps.h"
#include "service.h"
#include "conn.h"
#include "forward.h"
#include "nat_reply.h"
#include "stats.h"
#include "host.h"

/* Every step returns XDPVS_R_NEXT or the reason the packet leaves; only here is a reason turned into
 * an XDP action, and exactly one reason is counted per packet. A frame for another host is left alone; an
 * established flow's packet takes the first path (filter, connection, destination); everything else looks its
 * service up. */
SEC("xdp")
int xdpvs_lb(struct xdp_md *ctx)
{
	struct xdpvs_pkt pkt = {};
	struct vs_service svc = {};
	struct xdpvs_target t = {};
	const struct vs_svc_gate *gate = 0;
	struct vs_conn *c = 0;
	__u32 r;

	r = frame_for_host(ctx);
	if (r == XDPVS_R_NEXT)
		r = parse_packet(ctx, &pkt);
	if (r == XDPVS_R_NEXT)
		r = service_gate(&pkt, &gate);
	if (r == XDPVS_R_NEXT && gate)
		r = conn_known(&pkt, gate, &c, &t);
	if (r == XDPVS_R_LOOKUP) {
		r = service_lookup(&pkt, &svc);
		if (r == XDPVS_R_NEXT)
			r = conn_select(&pkt, &svc, c, &t);
	}
	/* Not for a service: perhaps a real server's reply to a NAT connection (counts its own stats). */
	if (r == XDPVS_R_PASS_NO_SERVICE && nat_in_use())
		r = nat_reply(ctx, &pkt, &t);
	if (r == XDPVS_R_NEXT)
		r = forward(ctx, &t);
	if (r == XDPVS_R_FWD_TX || r == XDPVS_R_FWD_REDIRECT)
		count_forwarded(t.svc_id, t.dest_id, pkt.len);
	count_reason(r);

	switch (r) {
	case XDPVS_R_FWD_TX:
	case XDPVS_R_NAT_REPLY_TX:
	case XDPVS_R_TX_ICMP_TOO_BIG: /* the answer goes back to the client */
		return XDP_TX;
	case XDPVS_R_FWD_REDIRECT:
	case XDPVS_R_NAT_REPLY_REDIRECT:
		return bpf_redirect(t.ifindex, 0);
	case XDPVS_R_DROP_NO_DEST:
	case XDPVS_R_DROP_DEST_NO_MAC:
	case XDPVS_R_DROP_CONN_TABLE:
	case XDPVS_R_DROP_BAD_DEST:
	case XDPVS_R_DROP_TUN_TOO_BIG:
	case XDPVS_R_DROP_NO_HEADROOM:
		return XDP_DROP;
	default:
		return XDP_PASS;
	}
}

char LICENSE[] SEC("license") = "GPL";
