/* Schedulers: pick a destination id for a new connection from the service's schedule table (`rings`). */
#ifndef XDPVS_SCHED_H
#define XDPVS_SCHED_H

#include "jhash.h"
#include "maps.h"
#include "parse.h"
#include "sched_lc.h"

/* Hash schedulers pick from the flow alone, so any packet (not only a SYN) may be scheduled and two
 * directors with the same table agree. rr and wrr step the shared cursor through a table that the daemon
 * builds (rr: each server once; wrr: the IPVS weighted sequence); the count-reading and locality schedulers
 * walk their table of candidates (bpf/sched_lc.h). */
static __always_inline int sched_is_hash(__u8 sched)
{
	return sched == XDPVS_SCHED_MH || sched == XDPVS_SCHED_SH || sched == XDPVS_SCHED_DH;
}

/* The flow hash of mh, sh and dh, reproduced bit for bit by src/lb/jhash.ts:
 *   words = the address's __be32 words exactly as they lie in the packet, loaded as host u32s (no byte
 *           swap: on x86 198.18.0.1 is the word 0x010012c6, what hostWords() returns), 4 for IPv6, 1 for IPv4;
 *           then, with the port, one word holding the port as a number (bpf_ntohs(sport): 80 is 0x00000050);
 *   hash  = jhash2(words, number of words, initval 0);   index = hash % ring_len. */
static __always_inline __u32 flow_hash(const __be32 *addr, __u8 family, __be16 port, int with_port)
{
	__u32 w[5];

	if (family == XDPVS_AF_INET6) {
		w[0] = addr[0];
		w[1] = addr[1];
		w[2] = addr[2];
		w[3] = addr[3];
		if (with_port) {
			w[4] = bpf_ntohs(port);
			return jhash2(w, 5, 0);
		}
		return jhash2(w, 4, 0);
	}
	w[0] = addr[0];
	if (with_port) {
		w[1] = bpf_ntohs(port);
		return jhash2(w, 2, 0);
	}
	return jhash2(w, 1, 0);
}

/* Index into the service's table for this packet. mh and sh hash the source (plus the source port
 * with XDPVS_SVC_F_HASH_PORT); dh hashes the destination address only (IPVS's dh has no port option).
 * rr and wrr take the next value of the service's cursor: one atomic counter for all CPUs, so the
 * order is exact whichever CPU receives each SYN. Returns 0, or -1 when the cursor is missing. */
static __always_inline int sched_index(const struct xdpvs_pkt *pkt, const struct vs_service *svc, __u32 *idx)
{
	const struct vs_flow_key *f = &pkt->flow;
	struct vs_sched_state *st;
	__u32 id;

	switch (svc->sched) {
	case XDPVS_SCHED_MH:
	case XDPVS_SCHED_SH:
		*idx = flow_hash(f->src, f->family, f->sport, svc->flags & XDPVS_SVC_F_HASH_PORT) % svc->ring_len;
		return 0;
	case XDPVS_SCHED_DH:
		*idx = flow_hash(f->dst, f->family, 0, 0) % svc->ring_len;
		return 0;
	default:
		id = svc->id;
		st = bpf_map_lookup_elem(&sched_state, &id);
		if (!st)
			return -1;
		*idx = __sync_fetch_and_add(&st->next, 1) % svc->ring_len;
		return 0;
	}
}

/* How many table entries after the hashed (or cursor's) one are tried when that one is unavailable: sh-fallback
 * and mh-fallback, and rr/wrr under thresholds. IPVS tries its whole table (sh: 256, mh: 65537); an sh table has
 * 256 entries, so sh tries all of them here too. */
#define XDPVS_PROBE_MAX 256

struct probe_walk {
	__u32 slot;
	__u32 len;
	__u32 start;
	__u32 found; /* XDPVS_NO_DEST until one is available */
};

static long probe_step(__u32 i, void *data)
{
	struct probe_walk *p = data;
	__u32 slot = p->slot;
	__u32 idx, *idp;
	void *ring;

	if (!p->len)
		return 1;
	idx = (p->start + 1 + i) % p->len;
	ring = bpf_map_lookup_elem(&rings, &slot);
	if (!ring)
		return 1;
	idp = bpf_map_lookup_elem(ring, &idx);
	if (!idp)
		return 1;
	if (xdpvs_dest_unavailable(*idp))
		return 0;
	p->found = *idp;
	return 1;
}

/* Whether the entry the hash or the cursor chose must be checked before use: sh and dh tables hold servers at
 * weight 0 too (IPVS keeps them in its table and refuses them at lookup), and -x makes any server overloadable. */
static __always_inline int sched_checks(const struct vs_service *svc)
{
	return svc->sched == XDPVS_SCHED_SH || svc->sched == XDPVS_SCHED_DH ||
	       (svc->flags & (XDPVS_SVC_F_THRESHOLDS | XDPVS_SVC_F_FALLBACK));
}

/* Picks the destination of a new connection. Returns XDPVS_R_NEXT with *dest_id set, or a DROP reason. */
static __always_inline __u32 sched_pick(const struct xdpvs_pkt *pkt, const struct vs_service *svc, __u64 now,
					__u32 *dest_id)
{
	struct probe_walk p;
	__u32 slot = svc->ring_slot;
	__u32 idx, n;
	__u32 *id;
	void *ring;

	if (svc->ring_len == 0)
		return XDPVS_R_DROP_NO_DEST;
	/* Called directly, not through one another: each global function's frame adds to the 512-byte stack. */
	if (svc->sched == XDPVS_SCHED_LBLC)
		return xdpvs_lblc_pick(pkt, svc, now, dest_id);
	if (svc->sched == XDPVS_SCHED_LBLCR)
		return xdpvs_lblcr_pick(pkt, svc, now, dest_id);
	if (sched_is_lc(svc->sched))
		return xdpvs_sched_lc_pick(pkt, svc, dest_id);
	ring = bpf_map_lookup_elem(&rings, &slot);
	if (!ring)
		return XDPVS_R_DROP_BAD_DEST;
	if (sched_index(pkt, svc, &idx) < 0)
		return XDPVS_R_DROP_BAD_DEST;
	id = bpf_map_lookup_elem(ring, &idx);
	if (!id)
		return XDPVS_R_DROP_BAD_DEST;
	if (!sched_checks(svc) || !xdpvs_dest_unavailable(*id)) {
		*dest_id = *id;
		return XDPVS_R_NEXT;
	}
	/* Unavailable. dh never falls back, sh and mh only with their -fallback flag (IPVS); rr and wrr go on to
	 * the next entry that is not overloaded, as IPVS's walk of its list does. */
	if (svc->sched == XDPVS_SCHED_DH ||
	    (sched_is_hash(svc->sched) && !(svc->flags & XDPVS_SVC_F_FALLBACK)))
		return XDPVS_R_DROP_NO_DEST;
	p.slot = slot;
	p.len = svc->ring_len;
	p.start = idx;
	p.found = XDPVS_NO_DEST;
	n = svc->ring_len - 1;
	if (n > XDPVS_PROBE_MAX)
		n = XDPVS_PROBE_MAX;
	bpf_loop(n, probe_step, &p, 0);
	if (p.found == XDPVS_NO_DEST)
		return XDPVS_R_DROP_NO_DEST;
	*dest_id = p.found;
	return XDPVS_R_NEXT;
}

#endif
