/* Connection counts per destination, IPVS's thresholds, and the schedulers that read the counts:
 * lc, wlc, sed, nq, fo, ovf (one walk over the service's candidates) and lblc, lblcr (a table per destination
 * address in front of that walk). Selection rules as net/netfilter/ipvs/ip_vs_<name>.c; see docs/schedulers.md. */
#ifndef XDPVS_SCHED_LC_H
#define XDPVS_SCHED_LC_H

#include "maps.h"
#include "parse.h"

/* "No destination chosen yet" in the walks below (destination ids are < XDPVS_MAX_DESTS). */
#define XDPVS_NO_DEST 0xffffffffu
/* IPVS's lblc_expiration / lblcr_expiration default: 24 hours. */
#define XDPVS_LBLC_EXPIRATION_NS (24ULL * 3600 * 1000000000ULL)

/* A destination as IPVS's schedulers see it. */
struct dest_load {
	__u32 active;     /* activeconns */
	__u32 inactive;   /* inactconns */
	__u32 weight;
	__u32 overloaded; /* IP_VS_DEST_F_OVERLOAD */
};

/* Counter plus the daemon's correction, never below 0 (u32 wrap-around arithmetic, as both sides write it). */
static __always_inline __u32 conns_effective(__u32 counted, __s32 adj)
{
	__s32 v = (__s32)(counted + (__u32)adj);

	return v < 0 ? 0 : (__u32)v;
}

/* IPVS sets IP_VS_DEST_F_OVERLOAD when a connection is bound and the total reaches the upper threshold, and
 * clears it when a connection ends below the lower one (ip_vs_bind_dest / ip_vs_unbind_dest). Ends are silent
 * here (expiry, LRU eviction), so the clearing test runs whenever the flag is read: the flag only matters when a
 * destination is chosen, and the total only falls through ends, so every choice sees what IPVS would. A change of
 * thresholds that IPVS clears the flag for (-e with no upper or a higher one) bumps vs_dest_sched.epoch. */
static __always_inline int dest_overload_check(struct vs_dest_conns *dc, const struct vs_dest_sched *ds, __u32 total)
{
	if (!ds->u_threshold || !ds->epoch || dc->overload != ds->epoch)
		return 0;
	/* Widened: IPVS computes total * 4 < upper * 3 in int. */
	if (ds->l_threshold ? total < ds->l_threshold : (__u64)total * 4 < (__u64)ds->u_threshold * 3) {
		dc->overload = 0;
		return 0;
	}
	return 1;
}

/* The load of destination id. Returns 0, or -1 when its slot is out of range. */
static __always_inline int dest_load_of(__u32 id, struct dest_load *l)
{
	struct vs_dest_conns *dc = bpf_map_lookup_elem(&dest_conns, &id);
	struct vs_dest_sched *ds = bpf_map_lookup_elem(&dest_sched, &id);

	if (!dc || !ds)
		return -1;
	l->active = conns_effective(dc->active, ds->active_adj);
	l->inactive = conns_effective(dc->inactive, ds->inactive_adj);
	l->weight = ds->weight;
	l->overloaded = dest_overload_check(dc, ds, l->active + l->inactive);
	return 0;
}

/* The hooks below the main program calls are global functions: verified once on their own instead of
 * multiplying the main program's paths (see xdpvs_lblc_pick). */

/* IPVS's is_unavailable() of sh and mh: weight 0 or overloaded. */
__attribute__((noinline)) int xdpvs_dest_unavailable(__u32 id)
{
	struct dest_load l;

	if (dest_load_of(id, &l) < 0)
		return 1;
	return l.weight == 0 || l.overloaded;
}

static __always_inline int state_active(__u8 state)
{
	return state == XDPVS_CS_ESTABLISHED;
}

/* A new connection in `state` was bound to destination id (ip_vs_bind_dest). Returns 0. */
__attribute__((noinline)) int xdpvs_conns_bind(__u32 id, __u32 state)
{
	struct vs_dest_conns *dc = bpf_map_lookup_elem(&dest_conns, &id);
	struct vs_dest_sched *ds = bpf_map_lookup_elem(&dest_sched, &id);
	__u32 total = 0;

	if (!dc)
		return 0;
	if (ds && ds->u_threshold) {
		total = conns_effective(dc->active, ds->active_adj) + conns_effective(dc->inactive, ds->inactive_adj);
		dest_overload_check(dc, ds, total);
	}
	if (state_active(state))
		__sync_fetch_and_add(&dc->active, 1);
	else
		__sync_fetch_and_add(&dc->inactive, 1);
	if (ds && ds->u_threshold && ds->epoch && total + 1 >= ds->u_threshold)
		dc->overload = ds->epoch;
	return 0;
}

/* A live connection in `state` to destination id ended here (a SYN reopened its closing entry). Returns 0. */
__attribute__((noinline)) int xdpvs_conns_unbind(__u32 id, __u32 state)
{
	struct vs_dest_conns *dc = bpf_map_lookup_elem(&dest_conns, &id);

	if (!dc)
		return 0;
	if (state_active(state))
		__sync_fetch_and_sub(&dc->active, 1);
	else
		__sync_fetch_and_sub(&dc->inactive, 1);
	return 0;
}

__attribute__((noinline)) int xdpvs_conns_move(__u32 id, __u32 to_active);

/* A connection of destination id went from state `from` to `to`: ESTABLISHED in or out moves it between the
 * counters (IPVS's IP_VS_CONN_F_INACTIVE flips). */
static __always_inline void conns_move(__u32 id, __u8 from, __u8 to)
{
	if (state_active(from) != state_active(to))
		xdpvs_conns_move(id, state_active(to));
}

/* The moving itself (into ESTABLISHED when to_active), out of line. Returns 0. */
__attribute__((noinline)) int xdpvs_conns_move(__u32 id, __u32 to_active)
{
	struct vs_dest_conns *dc = bpf_map_lookup_elem(&dest_conns, &id);

	if (!dc)
		return 0;
	if (to_active) {
		__sync_fetch_and_sub(&dc->inactive, 1);
		__sync_fetch_and_add(&dc->active, 1);
	} else {
		__sync_fetch_and_sub(&dc->active, 1);
		__sync_fetch_and_add(&dc->inactive, 1);
	}
	return 0;
}

static __always_inline int sched_is_lc(__u8 sched)
{
	switch (sched) {
	case XDPVS_SCHED_LC:
	case XDPVS_SCHED_WLC:
	case XDPVS_SCHED_SED:
	case XDPVS_SCHED_NQ:
	case XDPVS_SCHED_FO:
	case XDPVS_SCHED_OVF:
	case XDPVS_SCHED_LBLC:
	case XDPVS_SCHED_LBLCR:
		return 1;
	default:
		return 0;
	}
}

/* One walk over the service's candidates (its schedule table: each real server with weight > 0 and a resolved
 * next hop once, in IPVS's list order). */
struct lc_walk {
	__u32 slot;       /* ring slot of the candidates */
	__u32 len;
	__u8 sched;
	__u8 any_under;   /* lblc/lblcr: some candidate has active * 2 < weight (their is_overloaded()) */
	__u8 pad[2];
	__u32 best;       /* chosen destination id, XDPVS_NO_DEST for none */
	__u32 best_weight;
	__u64 best_oh;    /* its overhead */
};

/* The lc/wlc overhead: ip_vs_dest_conn_overhead(). */
static __always_inline __u64 conn_overhead(const struct dest_load *l)
{
	return ((__u64)l->active << 8) + l->inactive;
}

/* Whether overhead oh at weight w beats the best so far, compared as h1/w1 > h2/w2 <=> h1*w2 > h2*w1 (strictly:
 * on a tie the one met first stays, as in IPVS). */
static __always_inline int lighter(const struct lc_walk *w, __u64 oh, __u32 weight)
{
	return w->best_oh * weight > oh * w->best_weight;
}

static __always_inline void take(struct lc_walk *w, __u32 id, __u64 oh, __u32 weight)
{
	w->best = id;
	w->best_oh = oh;
	w->best_weight = weight;
}

/* One candidate; bpf_loop stops when this returns 1. */
static long lc_step(__u32 i, void *data)
{
	struct lc_walk *w = data;
	struct dest_load l;
	__u32 slot = w->slot;
	__u32 *idp;
	void *ring;
	__u32 id;
	__u64 oh;

	if (i >= w->len)
		return 1;
	ring = bpf_map_lookup_elem(&rings, &slot);
	if (!ring)
		return 1;
	idp = bpf_map_lookup_elem(ring, &i);
	if (!idp)
		return 1;
	id = *idp;
	if (dest_load_of(id, &l) < 0)
		return 0;
	if (l.weight && l.active * 2 < l.weight)
		w->any_under = 1;

	switch (w->sched) {
	case XDPVS_SCHED_LC: /* least (active << 8) + inactive; weight only excludes 0 */
		if (l.overloaded || !l.weight)
			return 0;
		oh = conn_overhead(&l);
		if (w->best == XDPVS_NO_DEST || oh < w->best_oh)
			take(w, id, oh, l.weight);
		return 0;
	case XDPVS_SCHED_SED: /* least (active + 1) / weight */
	case XDPVS_SCHED_NQ:  /* an idle server at once, else as sed */
		if (l.overloaded || !l.weight)
			return 0;
		oh = (__u64)l.active + 1;
		if (w->sched == XDPVS_SCHED_NQ && l.active == 0) {
			take(w, id, oh, l.weight);
			return 1;
		}
		if (w->best == XDPVS_NO_DEST || lighter(w, oh, l.weight))
			take(w, id, oh, l.weight);
		return 0;
	case XDPVS_SCHED_FO: /* the highest weight (the first of equals) */
		if (l.overloaded)
			return 0;
		if (l.weight > w->best_weight)
			take(w, id, 0, l.weight);
		return 0;
	case XDPVS_SCHED_OVF: /* the highest weight whose active connections do not exceed it */
		if (l.overloaded || l.active > l.weight || !l.weight)
			return 0;
		if (w->best == XDPVS_NO_DEST || l.weight > w->best_weight)
			take(w, id, 0, l.weight);
		return 0;
	default: /* wlc, and the least-loaded server of lblc and lblcr */
		if (l.overloaded || !l.weight)
			return 0;
		oh = conn_overhead(&l);
		if (w->best == XDPVS_NO_DEST || lighter(w, oh, l.weight))
			take(w, id, oh, l.weight);
		return 0;
	}
}

/* Walks the candidates with rule `sched`. */
static __always_inline void lc_walk_run(const struct vs_service *svc, __u8 sched, struct lc_walk *w)
{
	__u32 n = svc->ring_len;

	w->slot = svc->ring_slot;
	w->len = n;
	w->sched = sched;
	w->any_under = 0;
	w->best = XDPVS_NO_DEST;
	w->best_weight = 0;
	w->best_oh = 0;
	if (n > XDPVS_LC_MAX_DESTS)
		n = XDPVS_LC_MAX_DESTS;
	bpf_loop(n, lc_step, w, 0);
}

/* Whether destination id (of generation gen) may still take connections of service svc_id: its slot holds it,
 * it was not removed, its next hop is known. (IP_VS_DEST_F_AVAILABLE; the next hop is ours.) */
static __always_inline int dest_usable(__u32 id, __u32 gen, __u32 svc_id)
{
	struct vs_dest_sched *ds;
	struct vs_dest *d;

	d = bpf_map_lookup_elem(&dests, &id);
	if (!d || !d->family || d->gen != gen || d->svc_id != svc_id || !(d->flags & XDPVS_DEST_F_MAC_VALID))
		return 0;
	ds = bpf_map_lookup_elem(&dest_sched, &id);
	return ds && (ds->flags & XDPVS_DS_F_AVAILABLE);
}

static __always_inline __u32 dest_gen_of(__u32 id)
{
	struct vs_dest *d = bpf_map_lookup_elem(&dests, &id);

	return d ? d->gen : 0;
}

/* lblc/lblcr's is_overloaded(): more active connections than its weight while another server is under half. */
static __always_inline int lblc_overloaded(const struct dest_load *l, const struct lc_walk *w)
{
	return l->active > l->weight && w->any_under;
}

static __always_inline void lblc_key(const struct xdpvs_pkt *pkt, const struct vs_service *svc, struct vs_svc_addr_key *k)
{
	__builtin_memcpy(k->addr, pkt->flow.dst, sizeof(k->addr));
	k->svc_id = svc->id;
	k->family = pkt->flow.family;
}

/* lblc, lblcr and the walk below are global functions, which the verifier checks once on their own: inlined,
 * their loops and branches multiply with the rest of the program's paths beyond its budget. It sees their
 * pointer arguments as possibly NULL, hence the checks. */

/* lblc: the destination address keeps its server while that is usable, has weight and is not overloaded;
 * otherwise the least-loaded server (wlc) takes it over. */
__attribute__((noinline)) int xdpvs_lblc_pick(const struct xdpvs_pkt *pkt, const struct vs_service *svc, __u64 now,
					      __u32 *dest_id)
{
	struct vs_svc_addr_key key = {};
	struct vs_lblc *en, *entry;
	struct dest_load l;
	struct lc_walk w;
	__u32 id, zero = 0;

	if (!pkt || !svc || !dest_id)
		return XDPVS_R_DROP_BAD_DEST;
	lblc_key(pkt, svc, &key);
	lc_walk_run(svc, XDPVS_SCHED_WLC, &w);
	en = bpf_map_lookup_elem(&lblc, &key);
	if (en && (__s64)(now - en->lastuse_ns) < (__s64)XDPVS_LBLC_EXPIRATION_NS && en->size) {
		en->lastuse_ns = now;
		id = en->dest_id[0];
		if (dest_usable(id, en->dest_gen[0], svc->id) && dest_load_of(id, &l) == 0 && l.weight > 0 &&
		    !lblc_overloaded(&l, &w)) {
			*dest_id = id;
			return XDPVS_R_NEXT;
		}
	}
	if (w.best == XDPVS_NO_DEST)
		return XDPVS_R_DROP_NO_DEST;
	*dest_id = w.best;
	entry = bpf_map_lookup_elem(&lblc_scratch, &zero);
	if (!entry)
		return XDPVS_R_NEXT;
	__builtin_memset(entry, 0, sizeof(*entry));
	entry->lastuse_ns = now;
	entry->lastmod_ns = now;
	entry->size = 1;
	entry->dest_id[0] = w.best;
	entry->dest_gen[0] = dest_gen_of(w.best);
	bpf_map_update_elem(&lblc, &key, entry, BPF_ANY); /* as IPVS: without a table entry, still schedule */
	return XDPVS_R_NEXT;
}

/* lblcr's set walks (ip_vs_dest_set_min and _max) over the entry in lblc_scratch, one bpf_loop step per member: as
 * plain loops their branches multiply the verifier's states (a few hundred thousand instructions). */
struct set_walk {
	__u32 svc_id;
	__u32 best;      /* set_min: destination id, XDPVS_NO_DEST for none */
	__u32 bw;        /* its weight */
	__s32 most;      /* set_max: member index, -1 for none */
	__u64 boh;       /* its overhead */
	struct dest_load l; /* set_min: the chosen member's load */
};

static __always_inline struct vs_lblc *lblc_scratch_entry(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lblc_scratch, &zero);
}

static long set_min_step(__u32 i, void *data)
{
	struct set_walk *w = data;
	struct vs_lblc *en = lblc_scratch_entry();
	struct dest_load l;
	__u32 id;
	__u64 oh;

	if (!en || i >= XDPVS_LBLCR_SET_MAX || i >= en->size)
		return 1;
	id = en->dest_id[i];
	if (!dest_usable(id, en->dest_gen[i], w->svc_id) || dest_load_of(id, &l) < 0)
		return 0;
	if (l.overloaded || !l.weight)
		return 0;
	oh = conn_overhead(&l);
	if (w->best == XDPVS_NO_DEST || w->boh * l.weight > oh * w->bw) {
		w->best = id;
		w->boh = oh;
		w->bw = l.weight;
		w->l = l;
	}
	return 0;
}

static long set_max_step(__u32 i, void *data)
{
	struct set_walk *w = data;
	struct vs_lblc *en = lblc_scratch_entry();
	struct dest_load l;
	__u64 oh;

	if (!en || i >= XDPVS_LBLCR_SET_MAX || i >= en->size)
		return 1;
	if (dest_load_of(en->dest_id[i], &l) < 0 || !l.weight)
		return 0;
	oh = conn_overhead(&l);
	if (w->most < 0 || w->boh * l.weight < oh * w->bw) {
		w->most = i;
		w->boh = oh;
		w->bw = l.weight;
	}
	return 0;
}

/* lblcr's ip_vs_dest_set_min() over the scratch entry: the least-loaded usable member (wlc rule), XDPVS_NO_DEST
 * for none; its load into *out. */
static __always_inline __u32 lblcr_set_min(__u32 svc_id, struct dest_load *out)
{
	struct set_walk w = { .svc_id = svc_id, .best = XDPVS_NO_DEST, .most = -1 };

	bpf_loop(XDPVS_LBLCR_SET_MAX, set_min_step, &w, 0);
	*out = w.l;
	return w.best;
}

/* lblcr's ip_vs_dest_set_max() over the scratch entry: the index of the most-loaded member with weight, -1 for
 * none. */
static __always_inline int lblcr_set_max(void)
{
	struct set_walk w = { .best = XDPVS_NO_DEST, .most = -1 };

	bpf_loop(XDPVS_LBLCR_SET_MAX, set_max_step, &w, 0);
	return w.most;
}

/* Removes member idx (0 <= idx < size) from the set. */
static __always_inline void lblcr_erase(struct vs_lblc *en, int idx)
{
	__u32 i;

	for (i = 0; i + 1 < XDPVS_LBLCR_SET_MAX; i++) {
		if ((int)i >= idx && i + 1 < en->size) {
			en->dest_id[i] = en->dest_id[i + 1];
			en->dest_gen[i] = en->dest_gen[i + 1];
		}
	}
	if (en->size)
		en->size--;
}

/* Adds id at the head of the set unless it is in it (ip_vs_dest_set_insert with check). */
static __always_inline void lblcr_insert(struct vs_lblc *en, __u32 id, __u32 gen, __u64 now)
{
	__u32 i;

	for (i = 0; i < XDPVS_LBLCR_SET_MAX; i++) {
		if (i < en->size && en->dest_id[i] == id && en->dest_gen[i] == gen)
			return;
	}
	for (i = XDPVS_LBLCR_SET_MAX - 1; i > 0; i--) {
		en->dest_id[i] = en->dest_id[i - 1];
		en->dest_gen[i] = en->dest_gen[i - 1];
	}
	en->dest_id[0] = id;
	en->dest_gen[0] = gen;
	if (en->size < XDPVS_LBLCR_SET_MAX)
		en->size++;
	en->lastmod_ns = now;
}

/* lblcr: the destination address has a set of servers; the least loaded of them takes the connection unless it
 * is overloaded, then the least-loaded server of the service joins the set. A set that has not changed for the
 * expiration time loses its most-loaded member. Two CPUs changing one set at once: the last write wins (IPVS
 * takes a lock); the set is a cache, a lost insertion costs nothing but locality. */
__attribute__((noinline)) int xdpvs_lblcr_pick(const struct xdpvs_pkt *pkt, const struct vs_service *svc, __u64 now,
					       __u32 *dest_id)
{
	struct vs_svc_addr_key key = {};
	struct vs_lblc *en, *entry;
	struct dest_load l = {};
	struct lc_walk w;
	__u32 id, zero = 0;
	int m;

	if (!pkt || !svc || !dest_id)
		return XDPVS_R_DROP_BAD_DEST;
	entry = bpf_map_lookup_elem(&lblc_scratch, &zero);
	if (!entry)
		return XDPVS_R_DROP_BAD_DEST;
	lblc_key(pkt, svc, &key);
	lc_walk_run(svc, XDPVS_SCHED_WLC, &w);
	en = bpf_map_lookup_elem(&lblc, &key);
	if (en && (__s64)(now - en->lastuse_ns) < (__s64)XDPVS_LBLC_EXPIRATION_NS && en->size) {
		*entry = *en;
		entry->lastuse_ns = now;
		id = lblcr_set_min(svc->id, &l);
		if (entry->size > 1 && (__s64)(now - entry->lastmod_ns) > (__s64)XDPVS_LBLC_EXPIRATION_NS) {
			m = lblcr_set_max();
			if (m >= 0) {
				lblcr_erase(entry, m);
				entry->lastmod_ns = now;
			}
		}
		if (id == XDPVS_NO_DEST || lblc_overloaded(&l, &w)) {
			if (w.best == XDPVS_NO_DEST)
				return XDPVS_R_DROP_NO_DEST;
			id = w.best;
			lblcr_insert(entry, id, dest_gen_of(id), now);
		}
		bpf_map_update_elem(&lblc, &key, entry, BPF_ANY);
		*dest_id = id;
		return XDPVS_R_NEXT;
	}
	if (w.best == XDPVS_NO_DEST)
		return XDPVS_R_DROP_NO_DEST;
	__builtin_memset(entry, 0, sizeof(*entry));
	entry->lastuse_ns = now;
	entry->lastmod_ns = now;
	entry->size = 1;
	entry->dest_id[0] = w.best;
	entry->dest_gen[0] = dest_gen_of(w.best);
	bpf_map_update_elem(&lblc, &key, entry, BPF_ANY);
	*dest_id = w.best;
	return XDPVS_R_NEXT;
}

/* A new connection's destination under lc, wlc, sed, nq, fo or ovf. Returns XDPVS_R_NEXT with *dest_id,
 * or XDPVS_R_DROP_NO_DEST when no candidate may take it (all at weight 0, overloaded, or full for ovf). */
__attribute__((noinline)) int xdpvs_sched_lc_pick(const struct xdpvs_pkt *pkt, const struct vs_service *svc,
						  __u32 *dest_id)
{
	struct lc_walk w;

	if (!pkt || !svc || !dest_id)
		return XDPVS_R_DROP_BAD_DEST;
	lc_walk_run(svc, svc->sched, &w);
	if (w.best == XDPVS_NO_DEST)
		return XDPVS_R_DROP_NO_DEST;
	*dest_id = w.best;
	return XDPVS_R_NEXT;
}

#endif
