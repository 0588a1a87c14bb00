/* Service lookup: is this packet addressed to a virtual service? */
#ifndef XDPVS_SERVICE_H
#define XDPVS_SERVICE_H

#include "maps.h"
#include "parse.h"

/* After the exact lookup missed: a persistent port-0 service of the VIP (every port, as IPVS), then the longest
 * VIP prefix with the port, then with port 0 (an xdpvs extension: one service for many destination addresses, for
 * dh, lblc and lblcr). `svc_wild` says which of them can match at all, so ordinary traffic pays one array read.
 * Copies the service into *out and returns 1, or returns 0. A global function: its keys stay off the main
 * program's stack frame (see bpf/persist.h). */
__attribute__((noinline)) int xdpvs_service_wild(const struct xdpvs_pkt *pkt, const struct vs_service_key *exact,
						  struct vs_service *out)
{
	struct vs_service_key key = {};
	struct vs_svc_prefix_key pk = {};
	struct vs_svc_wild *w;
	struct vs_service *s = 0;
	__u32 zero = 0;

	if (!pkt || !exact || !out)
		return 0;
	w = bpf_map_lookup_elem(&svc_wild, &zero);
	if (!w)
		return 0;
	if (w->port0) {
		key = *exact;
		key.port = 0;
		s = bpf_map_lookup_elem(&services, &key);
	}
	if (!s && w->prefixes) {
		pk.prefixlen = 32 + (pkt->flow.family == XDPVS_AF_INET6 ? 128 : 32);
		pk.family = pkt->flow.family;
		pk.proto = pkt->flow.proto;
		pk.port = pkt->flow.dport;
		__builtin_memcpy(pk.addr, pkt->flow.dst, sizeof(pk.addr));
		s = bpf_map_lookup_elem(&svc_prefix, &pk);
		if (!s && w->port0) {
			pk.port = 0;
			s = bpf_map_lookup_elem(&svc_prefix, &pk);
		}
	}
	if (!s)
		return 0;
	*out = *s;
	return 1;
}

/* Where a service key's bit lies in vs_svc_gate.bits. The words are read as they lie in the key (an IPv4 VIP in
 * dst[0], port, proto and family in the fifth word); src/maps/svc-gate.ts computes the same from the encoded key. */
static __always_inline __u32 svc_filter_hash(const struct vs_flow_key *f)
{
	__u32 w4 = (__u32)f->dport | (__u32)f->proto << 16 | (__u32)f->family << 24;
	__u32 h = f->dst[0] * XDPVS_SVC_HASH_MUL;

	h = (h ^ f->dst[1]) * XDPVS_SVC_HASH_MUL;
	h = (h ^ f->dst[2]) * XDPVS_SVC_HASH_MUL;
	h = (h ^ f->dst[3]) * XDPVS_SVC_HASH_MUL;
	h = (h ^ w4) * XDPVS_SVC_HASH_MUL;
	return h >> XDPVS_SVC_FILTER_SHIFT;
}

/* Whether the packet can be for a service, before any hash lookup: its key's filter bit is set, or some wildcard
 * service (port 0, VIP prefix) exists, which the filter does not describe. Two inlined array reads where a
 * `services` lookup costs a helper call; most traffic a director sees in front of its services is for them, but
 * everything else (its own, NAT replies) then pays almost nothing. Sets *gate for conn_known.
 * Returns XDPVS_R_NEXT or XDPVS_R_PASS_NO_SERVICE. */
static __always_inline __u32 service_gate(const struct xdpvs_pkt *pkt, const struct vs_svc_gate **gate)
{
	__u32 zero = 0;
	const struct vs_svc_gate *g = bpf_map_lookup_elem(&svc_gate, &zero);
	struct vs_svc_wild *w;
	__u32 h;

	if (!g)
		return XDPVS_R_PASS_NO_SERVICE;
	*gate = g;
	h = svc_filter_hash(&pkt->flow);
	if (g->bits[(h >> 6) & (XDPVS_SVC_FILTER_BITS / 64 - 1)] & (1ULL << (h & 63)))
		return XDPVS_R_NEXT;
	w = bpf_map_lookup_elem(&svc_wild, &zero);
	return w && (w->port0 | w->prefixes) ? XDPVS_R_NEXT : XDPVS_R_PASS_NO_SERVICE;
}

/* Copies the service into *svc (the daemon replaces records whole; a copy keeps ring_slot and
 * ring_len from the same record). Returns XDPVS_R_NEXT or XDPVS_R_PASS_NO_SERVICE. */
static __always_inline __u32 service_lookup(const struct xdpvs_pkt *pkt, struct vs_service *svc)
{
	/* Zeroed: hash keys compare all 20 bytes, and IPv4 leaves addr[1..3] at zero. */
	struct vs_service_key key = {};
	struct vs_service *s;

	__builtin_memcpy(key.addr, pkt->flow.dst, sizeof(key.addr));
	key.port = pkt->flow.dport;
	key.proto = pkt->flow.proto;
	key.family = pkt->flow.family;

	s = bpf_map_lookup_elem(&services, &key);
	if (!s)
		return xdpvs_service_wild(pkt, &key, svc) ? XDPVS_R_NEXT : XDPVS_R_PASS_NO_SERVICE;
	*svc = *s;
	return XDPVS_R_NEXT;
}

#endif
