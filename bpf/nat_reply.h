/* NAT reply path: a real server's reply (RIP:RPORT -> CIP:CPORT) rewritten back to VIP:VPORT and routed to the client. */
#ifndef XDPVS_NAT_REPLY_H
#define XDPVS_NAT_REPLY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "clock.h"
#include "conn.h"
#include "maps.h"
#include "nat.h"
#include "parse.h"
#include "stats.h"

/* The reply's connection state. IPVS's NAT state table sees both directions; on our folded states its
 * output row is what tcp_next_state does for the input (RST: CLOSE; SYN+ACK: stays SYN_RECV; FIN:
 * FIN_WAIT; ACK: ESTABLISHED unless closing), so both directions share it: the server's SYN+ACK keeps
 * SYN_RECV, the client's ACK (or the server's first ACK) gives ESTABLISHED. Written in place on a state
 * change or at most once a second, as the forward path does. */
static __always_inline void nat_conn_touch(struct vs_conn *c, const struct xdpvs_pkt *pkt, __u32 dest_id, __u64 now)
{
	__u8 state = pkt->flow.proto == IPPROTO_TCP ? tcp_next_state(c->state, pkt->tcp_flags) : XDPVS_CS_UDP;

	if (state != c->state || (__s64)(now - c->last_ns) >= (__s64)XDPVS_CONN_REFRESH_NS) {
		conns_move(dest_id, c->state, state); /* ActiveConn/InActConn of lc/wlc (bpf/sched_lc.h), as conn_select */
		c->state = state;
		c->last_ns = conn_touch_ns(c, now); /* no service lookup here: keeps an unchecked entry unchecked */
		c->expires_ns = now + state_timeout_ns(state);
	}
}

/* Whether a packet that is for no service may be a NAT reply: some destination forwards by NAT (nat_ctl). One
 * inlined array read instead of a hash lookup for every such packet of a director without NAT. */
static __always_inline int nat_in_use(void)
{
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&nat_ctl, &zero);

	return on && *on;
}

/* Called for TCP/UDP packets that are not addressed to a service. A packet that is no NAT reply stays
 * XDPVS_R_PASS_NO_SERVICE. A reply whose connection is gone is passed untouched (the kernel routes or
 * refuses it). Otherwise the source becomes VIP:VPORT and the kernel's FIB (bpf_fib_lookup, as the
 * kernel would forward it: input interface, forwarding enabled there, MTU checked) gives the egress
 * interface and both MACs:
 *  - found: out through XDP_TX / redirect, TTL decremented like any routed packet;
 *  - next hop without a resolved MAC (NO_NEIGH): the rewritten reply is passed to the kernel, which
 *    forwards it and resolves the neighbour on the way (queueing the packet meanwhile); the next replies
 *    then take the XDP path. Passing it rewritten matters: the original (RIP as source) would reach the
 *    client, which would answer it with a RST. The kernel accepts a packet whose source is its own VIP
 *    only with net.ipv4.conf.<private if>.accept_local=1 (and rp_filter 0 or 2), see README;
 *  - anything else (no route, forwarding disabled, too big for the egress MTU, TTL 1): passed untouched,
 *    so the kernel sends the ICMP error to the real server, which is what a router does.
 * Returns XDPVS_R_NAT_REPLY_TX / _REDIRECT (t->ifindex set) or a PASS reason.
 * Not inlined: its stack (the FIB query, the conns key, header pointers) get a frame of their own instead of adding to
 * the entry's, which together with the scheduler subprograms' frames would pass the verifier's 512-byte limit. */
static __noinline __u32 nat_reply(struct xdp_md *ctx, const struct xdpvs_pkt *pkt, struct xdpvs_target *t)
{
	const struct vs_flow_key *f = &pkt->flow;
	/* The connection's key first, the FIB query after it: one stack slot for both. */
	union {
		struct vs_flow_key ck;
		struct bpf_fib_lookup fib;
	} u;
	struct nat_hdrs h = {};
	const struct vs_nat_rev *rv;
	struct vs_conn *c;
	struct vs_dest *d;
	__be16 vport;
	__u32 id, gen, svc_id;
	__u64 now;
	long rc;

	rv = bpf_map_lookup_elem(&nat_reverse, f);
	if (!rv)
		return XDPVS_R_PASS_NO_SERVICE;
	vport = rv->vport;
	id = rv->dest_id;
	gen = rv->dest_gen;

	/* Its connection, keyed as the client's packets are: CIP:CPORT -> VIP:VPORT. It must be alive and
	 * still the one the entry was made for (a flow rescheduled elsewhere has a new entry of its own).
	 * Zeroed first: a hash key compares all its bytes. */
	__builtin_memset(&u, 0, sizeof(u));
	__builtin_memcpy(u.ck.src, f->dst, sizeof(u.ck.src));
	__builtin_memcpy(u.ck.dst, rv->vaddr, sizeof(u.ck.dst));
	u.ck.sport = f->dport;
	u.ck.dport = vport;
	u.ck.proto = f->proto;
	u.ck.family = f->family;
	now = clock_now_ns();
	c = bpf_map_lookup_elem(&conns, &u.ck);
	if (!c || now >= c->expires_ns || c->dest_id != id || c->dest_gen != gen)
		return XDPVS_R_PASS_NAT_NO_CONN;
	/* Its destination slot must still hold that destination (removed, re-methoded ones keep it). */
	d = bpf_map_lookup_elem(&dests, &id);
	if (!d || !d->family || d->gen != gen)
		return XDPVS_R_PASS_NAT_NO_CONN;
	svc_id = c->svc_id;

	if (nat_headers(ctx, &h) < 0)
		return XDPVS_R_PASS_MALFORMED;
	__builtin_memset(&u, 0, sizeof(u));
	u.fib.family = f->family;
	u.fib.l4_protocol = f->proto;
	u.fib.sport = vport;
	u.fib.dport = f->dport;
	u.fib.ifindex = ctx->ingress_ifindex;
	if (!h.v6) {
		struct iphdr *iph = h.l3;

		if (iph->ttl <= 1)
			return XDPVS_R_PASS_NAT_KERNEL;
		u.fib.tos = iph->tos;
		u.fib.tot_len = bpf_ntohs(iph->tot_len);
		u.fib.ipv4_src = rv->vaddr[0];
		u.fib.ipv4_dst = iph->daddr;
	} else {
		struct ipv6hdr *ip6h = h.l3;

		if (ip6h->hop_limit <= 1)
			return XDPVS_R_PASS_NAT_KERNEL;
		u.fib.flowinfo = *(__be32 *)ip6h & bpf_htonl(0x0fffffff);
		u.fib.tot_len = sizeof(struct ipv6hdr) + bpf_ntohs(ip6h->payload_len);
		__builtin_memcpy(u.fib.ipv6_src, rv->vaddr, sizeof(u.fib.ipv6_src));
		__builtin_memcpy(u.fib.ipv6_dst, &ip6h->daddr, sizeof(u.fib.ipv6_dst));
	}
	rc = bpf_fib_lookup(ctx, &u.fib, sizeof(u.fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDPVS_R_PASS_NAT_KERNEL;

	nat_conn_touch(c, pkt, id, now);
	/* The TTL is the kernel's to decrement when it forwards the packet itself. */
	nat_rewrite(&h, NAT_SRC, rv->vaddr, vport, rc == BPF_FIB_LKUP_RET_SUCCESS);
	count_replied(svc_id, id, pkt->len);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDPVS_R_PASS_NAT_NO_NEIGH;

	if (nat_set_macs(ctx, u.fib.dmac, u.fib.smac) < 0)
		return XDPVS_R_PASS_MALFORMED;
	t->dest_id = id;
	t->ifindex = u.fib.ifindex;
	return u.fib.ifindex == ctx->ingress_ifindex ? XDPVS_R_NAT_REPLY_TX : XDPVS_R_NAT_REPLY_REDIRECT;
}

#endif
