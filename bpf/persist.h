/* Persistence (-p, -M): IPVS's connection templates. While a client's template lives, its new connections to the
 * service go to the template's real server instead of the scheduler's choice. See docs/schedulers.md. */
#ifndef XDPVS_PERSIST_H
#define XDPVS_PERSIST_H

#include "maps.h"
#include "parse.h"
#include "sched.h"
#include "sched_lc.h"

#define XDPVS_PERSIST_NSEC_PER_SEC 1000000000ULL

/* The template key of this packet's client: its address under the service's netmask. */
static __always_inline void persist_key(const struct xdpvs_pkt *pkt, const struct vs_service *svc,
					const struct vs_svc_persist *sp, struct vs_svc_addr_key *k)
{
	k->addr[0] = pkt->flow.src[0] & sp->mask[0];
	k->addr[1] = pkt->flow.src[1] & sp->mask[1];
	k->addr[2] = pkt->flow.src[2] & sp->mask[2];
	k->addr[3] = pkt->flow.src[3] & sp->mask[3];
	k->svc_id = svc->id;
	k->family = pkt->flow.family;
}

/* ip_vs_check_template(): a template whose real server was removed (or whose slot went to another) is void. A
 * real server at weight 0 keeps its persistent clients, as IPVS does with expire_quiescent_template at its
 * default 0. */
static __always_inline int persist_valid(const struct vs_persist *t, __u32 svc_id)
{
	return dest_usable(t->dest_id, t->dest_gen, svc_id);
}

/* Persistence is done by global functions, verified on their own and with their own stack frame: inlined, their
 * keys would sit on the main program's frame, which the longest call chain (main -> lblcr -> its walk) adds to. */

/* The template's real server for this packet's client into *dest_id: 1 while a valid template lives (its expiry
 * moved to at least the persistence timeout from now), 0 when the scheduler must choose. */
__attribute__((noinline)) int xdpvs_persist_lookup(const struct xdpvs_pkt *pkt, const struct vs_service *svc,
						   __u64 now, __u32 *dest_id)
{
	struct vs_svc_addr_key key = {};
	struct vs_svc_persist *sp;
	struct vs_persist *t;
	__u32 sid;
	__u64 until;

	if (!pkt || !svc || !dest_id)
		return 0;
	sid = svc->id;
	sp = bpf_map_lookup_elem(&svc_persist, &sid);
	if (!sp || !sp->timeout)
		return 0;
	persist_key(pkt, svc, sp, &key);
	t = bpf_map_lookup_elem(&persist, &key);
	if (!t || (__s64)(t->expires_ns - now) <= 0 || !persist_valid(t, svc->id))
		return 0;
	until = now + (__u64)sp->timeout * XDPVS_PERSIST_NSEC_PER_SEC;
	if ((__s64)(until - t->expires_ns) > 0)
		t->expires_ns = until;
	*dest_id = t->dest_id;
	return 1;
}

/* The scheduler chose id for this client: it becomes the client's template, for the persistence timeout from now.
 * Returns the real server to use: id, or the template another CPU wrote for the same client meanwhile. */
__attribute__((noinline)) int xdpvs_persist_store(const struct xdpvs_pkt *pkt, const struct vs_service *svc,
						  __u64 now, __u32 id)
{
	struct vs_svc_addr_key key = {};
	struct vs_svc_persist *sp;
	struct vs_persist nt = {};
	struct vs_persist *t;
	__u32 sid;

	if (!pkt || !svc)
		return id;
	sid = svc->id;
	sp = bpf_map_lookup_elem(&svc_persist, &sid);
	if (!sp || !sp->timeout)
		return id;
	persist_key(pkt, svc, sp, &key);
	nt.dest_id = id;
	nt.dest_gen = dest_gen_of(id);
	nt.expires_ns = now + (__u64)sp->timeout * XDPVS_PERSIST_NSEC_PER_SEC;
	t = bpf_map_lookup_elem(&persist, &key);
	if (t) {
		/* An expired or void template: replaced. */
		bpf_map_update_elem(&persist, &key, &nt, BPF_ANY);
		return id;
	}
	if (bpf_map_update_elem(&persist, &key, &nt, BPF_NOEXIST)) {
		/* Another CPU wrote this client's template since our lookup: follow it. */
		t = bpf_map_lookup_elem(&persist, &key);
		if (t && persist_valid(t, svc->id))
			return t->dest_id;
	}
	return id;
}

/* The destination of a new connection: the client's template's while it lives, else the scheduler's choice,
 * which then becomes the template. */
static __always_inline __u32 persist_pick(const struct xdpvs_pkt *pkt, const struct vs_service *svc, __u64 now,
					  __u32 *dest_id)
{
	int persistent = svc->flags & XDPVS_SVC_F_PERSIST;
	__u32 r;

	if (persistent && xdpvs_persist_lookup(pkt, svc, now, dest_id))
		return XDPVS_R_NEXT;
	/* One call site: sched_pick is inlined, and a second copy would double the paths the verifier walks. */
	r = sched_pick(pkt, svc, now, dest_id);
	if (r == XDPVS_R_NEXT && persistent)
		*dest_id = xdpvs_persist_store(pkt, svc, now, *dest_id);
	return r;
}

/* A packet of a live connection (dest_id) of a persistent service was seen: its template, while it lives and
 * points at the same real server, lasts at least the persistence timeout from now. (The daemon extends templates
 * of connections that are alive but quiet; see docs/schedulers.md.) Returns 0. */
__attribute__((noinline)) int xdpvs_persist_touch(const struct xdpvs_pkt *pkt, const struct vs_service *svc,
						  __u32 dest_id, __u64 now)
{
	struct vs_svc_addr_key key = {};
	struct vs_svc_persist *sp;
	struct vs_persist *t;
	__u32 sid;
	__u64 until;

	if (!pkt || !svc)
		return 0;
	sid = svc->id;
	sp = bpf_map_lookup_elem(&svc_persist, &sid);
	if (!sp || !sp->timeout)
		return 0;
	persist_key(pkt, svc, sp, &key);
	t = bpf_map_lookup_elem(&persist, &key);
	if (!t || t->dest_id != dest_id || (__s64)(t->expires_ns - now) <= 0)
		return 0;
	until = now + (__u64)sp->timeout * XDPVS_PERSIST_NSEC_PER_SEC;
	if ((__s64)(until - t->expires_ns) > 0)
		t->expires_ns = until;
	return 0;
}

#endif
