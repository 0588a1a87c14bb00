/* The real server's XDP program: strips the outer header of tunnelled packets for its VIPs (what the kernel's ipip
 * and ip6_tunnel devices do, for hosts without them) and passes them, and everything else untouched, to the kernel. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpvs_shared.h"
#include "decap.h"

SEC("xdp")
int xdpvs_decap(struct xdp_md *ctx)
{
	__u32 r = decap_packet(ctx);

	decap_count(r);
	return r == XDPVS_DECAP_R_DROP_ECN ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
