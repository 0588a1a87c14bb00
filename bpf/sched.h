/* Schedulers: pick a destination id for a new connection from the service's schedule table (`rings`). */
#ifndef XDPVS_SCHED_H
#define XDPVS_SCHED_H

#include "jhash.h"
#include "maps.h"
#include "parse.h"

/* Hash schedulers pick from the flow alone, so any packet (not only a SYN) may be scheduled and two
 * directors with the same table agree. Every other scheduler steps the shared cursor through a table
 * that the daemon builds (rr: each server once; wrr: the IPVS weighted sequence; others: its choice). */
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
 * The rest take the next value of the service's cursor: one atomic counter for all CPUs, so the
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

/* Picks the destination of a new connection. Returns XDPVS_R_NEXT with *dest_id set, or a DROP reason. */
static __always_inline __u32 sched_pick(const struct xdpvs_pkt *pkt, const struct vs_service *svc, __u32 *dest_id)
{
	__u32 slot = svc->ring_slot;
	__u32 idx;
	__u32 *id;
	void *ring;

	if (svc->ring_len == 0)
		return XDPVS_R_DROP_NO_DEST;
	ring = bpf_map_lookup_elem(&rings, &slot);
	if (!ring)
		return XDPVS_R_DROP_BAD_DEST;
	if (sched_index(pkt, svc, &idx) < 0)
		return XDPVS_R_DROP_BAD_DEST;
	id = bpf_map_lookup_elem(ring, &idx);
	if (!id)
		return XDPVS_R_DROP_BAD_DEST;
	*dest_id = *id;
	return XDPVS_R_NEXT;
}

#endif
