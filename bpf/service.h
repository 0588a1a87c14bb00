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
