/* Connection table: keep a flow on its real server, track the TCP state, schedule new flows. */
#ifndef XDPVS_CONN_H
#define XDPVS_CONN_H

#include "clock.h"
#include "maps.h"
#include "nat.h"
#include "parse.h"
#include "persist.h"
#include "sched.h"
#include "sched_lc.h"
#include "stats.h"
#include "sync.h"

#define XDPVS_NSEC_PER_SEC 1000000000ULL
/* An entry whose state did not change is written back at most this often: an established flow's
 * packets then mostly read the entry, and its cache line is not bounced between CPUs. */
#define XDPVS_CONN_REFRESH_NS XDPVS_NSEC_PER_SEC

/* IPVS defaults (seconds), used where vs_config holds 0. */
#define XDPVS_DEF_TCP_TIMEOUT 900
#define XDPVS_DEF_TCPFIN_TIMEOUT 120
#define XDPVS_DEF_UDP_TIMEOUT 300
#define XDPVS_DEF_SYN_TIMEOUT 60
#define XDPVS_DEF_CLOSE_TIMEOUT 10

/* conn_known's answer when the packet needs its service looked up (conn_select): internal, never counted. */
#define XDPVS_R_LOOKUP (XDPVS_R_MAX + 1)

/* Where the packet goes: filled by conn_known or conn_select, ifindex by forward. */
struct xdpvs_target {
	const struct vs_dest *dest;
	__u32 dest_id;
	__u32 svc_id;
	__u32 ifindex;
};

static __always_inline __u32 cfg_or(__u32 v, __u32 def)
{
	return v ? v : def;
}

/* Timeout of a state, from `config` or the IPVS default. */
static __always_inline __u64 state_timeout_ns(__u8 state)
{
	__u32 zero = 0;
	struct vs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct vs_config none = {};
	__u32 s;

	if (!cfg)
		cfg = &none;
	switch (state) {
	case XDPVS_CS_ESTABLISHED:
		s = cfg_or(cfg->tcp_timeout, XDPVS_DEF_TCP_TIMEOUT);
		break;
	case XDPVS_CS_SYN_RECV:
		s = cfg_or(cfg->syn_timeout, XDPVS_DEF_SYN_TIMEOUT);
		break;
	case XDPVS_CS_FIN_WAIT:
		s = cfg_or(cfg->tcpfin_timeout, XDPVS_DEF_TCPFIN_TIMEOUT);
		break;
	case XDPVS_CS_UDP:
		s = cfg_or(cfg->udp_timeout, XDPVS_DEF_UDP_TIMEOUT);
		break;
	default: /* CLOSE, and NONE (a flagless segment) */
		s = cfg_or(cfg->close_timeout, XDPVS_DEF_CLOSE_TIMEOUT);
		break;
	}
	return (__u64)s * XDPVS_NSEC_PER_SEC;
}

/* IPVS's "input only" TCP table (in DR the director sees only the client's side), on our states.
 * Flags are tested in IPVS's order: RST, SYN, FIN, ACK. As in IPVS, a SYN does not demote an
 * established flow, and ACKs (the client's last ones) keep FIN_WAIT and CLOSE. One difference: an
 * ACK on a new entry gives ESTABLISHED (IPVS: CLOSE), since under mh/sh/dh it is a flow taken over
 * from another director. TIME_WAIT is folded into FIN_WAIT (same default timeout). */
static __always_inline __u8 tcp_next_state(__u8 old, __u8 flags)
{
	if (flags & XDPVS_TCP_RST)
		return XDPVS_CS_CLOSE;
	if (flags & XDPVS_TCP_SYN)
		return old == XDPVS_CS_ESTABLISHED ? XDPVS_CS_ESTABLISHED : XDPVS_CS_SYN_RECV;
	if (flags & XDPVS_TCP_FIN)
		return old == XDPVS_CS_CLOSE ? XDPVS_CS_CLOSE : XDPVS_CS_FIN_WAIT;
	if (flags & XDPVS_TCP_ACK)
		return (old == XDPVS_CS_FIN_WAIT || old == XDPVS_CS_CLOSE) ? old : XDPVS_CS_ESTABLISHED;
	return old;
}

/* Whether a connection was last written before the services last changed (or at the same time): its service may be
 * gone or no longer the packet's, so it is looked up again. Signed, as the refresh test below. */
static __always_inline int conn_unchecked(const struct vs_conn *c, const struct vs_svc_gate *gate)
{
	return (__s64)(c->last_ns - gate->changed_ns) <= 0;
}

/* conn_unchecked against the gate as it is now (an inlined array read). */
static __always_inline int svc_gate_unchecked(const struct vs_conn *c)
{
	__u32 zero = 0;
	const struct vs_svc_gate *g = bpf_map_lookup_elem(&svc_gate, &zero);

	return g && conn_unchecked(c, g);
}

/* The last_ns of a write made without looking the service up (a NAT reply's refresh): now, except that an entry
 * still unchecked stays so, or conn_known would take it for one conn_select checked: it gets the services' change
 * time, and looks that old (its replies write it each) until the client's next packet goes through conn_select. */
static __always_inline __u64 conn_touch_ns(const struct vs_conn *c, __u64 now)
{
	__u32 zero = 0;
	const struct vs_svc_gate *g = bpf_map_lookup_elem(&svc_gate, &zero);

	if (g && conn_unchecked(c, g) && (__s64)(now - g->changed_ns) > 0)
		return g->changed_ns;
	return now;
}

/* The established flow's path, which needs no service lookup (a helper call, most of a packet's cost): a live
 * connection, written since the services last changed, whose state this packet leaves as it is, and whose
 * destination slot still holds its destination. conn_select found the packet's service to be the connection's
 * when it last wrote the entry, and since then no service was added or removed (vs_svc_gate.changed_ns), so it
 * would find the same now: the answer is the one conn_select gives, without the entry write it does not do either.
 * Returns XDPVS_R_NEXT with *t set, or XDPVS_R_LOOKUP; *cp is the entry (or NULL) for conn_select. */
static __always_inline __u32 conn_known(const struct xdpvs_pkt *pkt, const struct vs_svc_gate *gate,
					struct vs_conn **cp, struct xdpvs_target *t)
{
	struct vs_conn *c = bpf_map_lookup_elem(&conns, &pkt->flow);
	__u64 now = clock_now_ns();
	struct vs_dest *d;
	__u32 id;
	__u8 state;

	*cp = c;
	if (!c || now >= c->expires_ns || conn_unchecked(c, gate))
		return XDPVS_R_LOOKUP;
	/* A state change or a due refresh writes the entry: conn_select's (a SYN on a closing entry changes it too). */
	state = pkt->flow.proto == IPPROTO_TCP ? tcp_next_state(c->state, pkt->tcp_flags) : XDPVS_CS_UDP;
	if (state != c->state || (__s64)(now - c->last_ns) >= (__s64)XDPVS_CONN_REFRESH_NS)
		return XDPVS_R_LOOKUP;
	id = c->dest_id;
	d = bpf_map_lookup_elem(&dests, &id);
	if (!d || !d->family || d->gen != c->dest_gen || d->svc_id != c->svc_id)
		return XDPVS_R_LOOKUP;
	t->dest = d;
	t->dest_id = id;
	t->svc_id = c->svc_id;
	return XDPVS_R_NEXT;
}

/* The flow's destination: its connection c (conn_known's lookup, may be NULL) when still valid, else a newly
 * scheduled one. Returns XDPVS_R_NEXT with t->dest, t->dest_id and t->svc_id set, or the PASS/DROP reason. */
static __always_inline __u32 conn_select(const struct xdpvs_pkt *pkt, const struct vs_service *svc,
					 struct vs_conn *c, struct xdpvs_target *t)
{
	int is_tcp = pkt->flow.proto == IPPROTO_TCP;
	/* A connection opener: SYN without ACK (nor RST). */
	int syn = is_tcp && (pkt->tcp_flags & (XDPVS_TCP_SYN | XDPVS_TCP_ACK | XDPVS_TCP_RST)) == XDPVS_TCP_SYN;
	__u64 now = clock_now_ns();
	struct vs_dest *d;
	__u32 id, r;
	__u8 state;
	__u32 old_id = XDPVS_NO_DEST;
	__u8 old_state = 0;

	/* Valid: not expired, same service, and its destination slot still holds the same destination
	 * (whether or not it is still in the schedule table, or its weight is 0). A SYN on a closing
	 * entry opens a new connection. */
	if (c && now < c->expires_ns && c->svc_id == svc->id &&
	    !(syn && (c->state == XDPVS_CS_FIN_WAIT || c->state == XDPVS_CS_CLOSE))) {
		id = c->dest_id;
		d = bpf_map_lookup_elem(&dests, &id);
		if (d && d->family && d->gen == c->dest_gen && d->svc_id == svc->id) {
			state = is_tcp ? tcp_next_state(c->state, pkt->tcp_flags) : XDPVS_CS_UDP;
			/* Written in place, and only on a state change, once a second, or when the services changed
			 * since the last write (which conn_known then waits for). Signed: another CPU may have stored
			 * a last_ns a tick newer than our now. */
			if (state != c->state || (__s64)(now - c->last_ns) >= (__s64)XDPVS_CONN_REFRESH_NS ||
			    svc_gate_unchecked(c)) {
				conns_move(id, c->state, state); /* ActiveConn/InActConn (bpf/sched_lc.h) */
				if (svc->flags & XDPVS_SVC_F_PERSIST)
					xdpvs_persist_touch(pkt, svc, id, now);
				__u8 was = c->state;
				c->state = state;
				c->last_ns = now;
				c->expires_ns = now + state_timeout_ns(state);
				if (was != state)
					sync_emit(&pkt->flow, c); /* the peers' copy follows the state and its timeout */
			}
			t->dest = d;
			t->dest_id = id;
			t->svc_id = svc->id;
			return XDPVS_R_NEXT;
		}
	}

	/* New connection. As IPVS, only a SYN opens one, except under hash schedulers, which give the
	 * same answer for any packet of the flow (another director's flows after a failover). */
	if (is_tcp && !syn && !sched_is_hash(svc->sched))
		return XDPVS_R_PASS_TCP_NOT_SYN;
	/* A SYN reopening a live closing entry ends that connection (IPVS reuses the entry likewise). */
	if (c && now < c->expires_ns && dest_gen_of(c->dest_id) == c->dest_gen) {
		old_id = c->dest_id;
		old_state = c->state;
	}
	r = persist_pick(pkt, svc, now, &id); /* the template's real server, or the scheduler's choice */
	if (r != XDPVS_R_NEXT)
		return r;
	d = bpf_map_lookup_elem(&dests, &id);
	if (!d || !d->family || d->svc_id != svc->id)
		return XDPVS_R_DROP_BAD_DEST;

	state = is_tcp ? tcp_next_state(XDPVS_CS_NONE, pkt->tcp_flags) : XDPVS_CS_UDP;
	struct vs_conn nc = {
		.dest_id = id,
		.dest_gen = d->gen,
		.svc_id = svc->id,
		.state = state,
		.last_ns = now,
		.expires_ns = now + state_timeout_ns(state),
	};
	if (bpf_map_update_elem(&conns, &pkt->flow, &nc, BPF_ANY))
		return XDPVS_R_DROP_CONN_TABLE;
	/* NAT: replies find their connection through `nat_reverse`, written with it (bpf/nat.h). */
	if (d->method == XDPVS_FWD_NAT && nat_track(&pkt->flow, d, id)) {
		bpf_map_delete_elem(&conns, &pkt->flow);
		return XDPVS_R_DROP_CONN_TABLE;
	}
	count_new_conn(svc->id, id);
	if (old_id != XDPVS_NO_DEST)
		xdpvs_conns_unbind(old_id, old_state);
	xdpvs_conns_bind(id, state);
	sync_emit(&pkt->flow, &nc); /* to the other directors, when they are configured (bpf/sync.h) */

	t->dest = d;
	t->dest_id = id;
	t->svc_id = svc->id;
	return XDPVS_R_NEXT;
}

#endif
