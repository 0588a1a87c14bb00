/* Service lookup: is this packet addressed to a virtual service? */
#ifndef XDPVS_SERVICE_H
#define XDPVS_SERVICE_H

#include "maps.h"
#include "parse.h"

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
		return XDPVS_R_PASS_NO_SERVICE;
	*svc = *s;
	return XDPVS_R_NEXT;
}

#endif
