/* Counters: one reason per packet, IPVS's per-service and per-destination stats (all per-CPU, no atomics). */
#ifndef XDPVS_STATS_H
#define XDPVS_STATS_H

#include "maps.h"

static __always_inline void count_reason(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&reasons, &reason);

	if (n)
		*n += 1;
}

/* A connection was scheduled to dest_id. */
static __always_inline void count_new_conn(__u32 svc_id, __u32 dest_id)
{
	struct vs_stats *s;

	s = bpf_map_lookup_elem(&svc_stats, &svc_id);
	if (s)
		s->conns++;
	s = bpf_map_lookup_elem(&dest_stats, &dest_id);
	if (s)
		s->conns++;
}

/* A packet of len bytes (its IP length, as IPVS counts) was forwarded to dest_id. */
static __always_inline void count_forwarded(__u32 svc_id, __u32 dest_id, __u32 len)
{
	struct vs_stats *s;

	s = bpf_map_lookup_elem(&svc_stats, &svc_id);
	if (s) {
		s->inpkts++;
		s->inbytes += len;
	}
	s = bpf_map_lookup_elem(&dest_stats, &dest_id);
	if (s) {
		s->inpkts++;
		s->inbytes += len;
	}
}

/* A reply of len bytes (IP length) from dest_id went back to the client through the director (NAT only:
 * DR and TUN replies bypass it, so their outbound counters stay 0, as with IPVS). */
static __always_inline void count_replied(__u32 svc_id, __u32 dest_id, __u32 len)
{
	struct vs_stats *s;

	s = bpf_map_lookup_elem(&svc_stats, &svc_id);
	if (s) {
		s->outpkts++;
		s->outbytes += len;
	}
	s = bpf_map_lookup_elem(&dest_stats, &dest_id);
	if (s) {
		s->outpkts++;
		s->outbytes += len;
	}
}

#endif
