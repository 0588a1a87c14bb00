/* Whether a frame is addressed to this host at all. A NIC in promiscuous mode (a bridge port, a capture, most
 * virtual switches) and a veth hand XDP frames for other MACs too; the kernel would drop them (PACKET_OTHERHOST),
 * and so IPVS never sees them. Balancing them would send a second copy of another director's traffic to a real
 * server, or a SYN to a real server the other director did not choose. */
#ifndef XDPVS_HOST_H
#define XDPVS_HOST_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include "xdpvs_shared.h"
#include "maps.h"

/* keepalived's use_vmac: VRRP virtual MACs 00:00:5e:00:01:VRID (IPv4) and 00:00:5e:00:02:VRID (IPv6, RFC 5798)
 * belong to a macvlan on top of the interface: the director's too when it is the master. */
static __always_inline int vrrp_vmac(const __u8 *m)
{
	return m[0] == 0 && m[1] == 0 && m[2] == 0x5e && m[3] == 0 && (m[4] == 1 || m[4] == 2);
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* Returns XDPVS_R_NEXT when the frame is for this host (its MAC, a group address, a VRRP virtual MAC, or an
 * interface the daemon did not list), else XDPVS_R_PASS_OTHER_HOST. */
static __always_inline __u32 frame_for_host(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct ethhdr *eth = data;
	__u32 zero = 0;
	const struct vs_if_macs *m;
	__u32 i;

	if ((void *)(eth + 1) > data_end)
		return XDPVS_R_NEXT; /* parse_packet calls it malformed */
	m = bpf_map_lookup_elem(&if_macs, &zero);
	if (!m || m->n == 0 || (eth->h_dest[0] & 1))
		return XDPVS_R_NEXT;
	for (i = 0; i < XDPVS_MAX_IFACES; i++) {
		if (i >= m->n)
			break;
		if (m->e[i].ifindex == ctx->ingress_ifindex)
			return mac_eq(eth->h_dest, m->e[i].mac) || vrrp_vmac(eth->h_dest) ? XDPVS_R_NEXT : XDPVS_R_PASS_OTHER_HOST;
	}
	return XDPVS_R_NEXT;
}

#endif
