/* Full Internet checksums (RFC 1071) over packet bytes: a tunnel's outer IPv4 header, the ICMP errors we build. */
#ifndef XDPVS_CSUM_FULL_H
#define XDPVS_CSUM_FULL_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Words are loaded in host order and the result is stored in host order: the one's-complement sum does not
 * depend on byte order (RFC 1071, section 2), so no swap is needed anywhere. */
static __always_inline __u16 csum_full_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Adds the IPv4 header at iph (IHL words, options included) to *sum. Returns 0, or -1 when the packet ends first. */
static __always_inline int csum_full_add_iphdr(struct iphdr *iph, void *data_end, __u64 *sum)
{
	__u32 words = iph->ihl;
	__u32 *w = (__u32 *)iph;
	__u32 i;

	/* At most 15 words: a bounded loop the verifier walks at little cost. */
	for (i = 0; i < 15; i++) {
		if (i >= words)
			break;
		/* Without it clang folds the bound checks of all iterations into one on data_end + 1, which the
		 * verifier refuses ("pointer arithmetic on pkt_end prohibited"). */
		barrier_var(w);
		if ((void *)(w + i + 1) > data_end)
			return -1;
		*sum += w[i];
	}
	return 0;
}

/* Adds len bytes at p to *sum, len a constant multiple of 4 up to 512 (one bpf_csum_diff call). The caller has
 * checked that the bytes lie within the packet. */
static __always_inline void csum_full_add_const(void *p, const __u32 len, __u64 *sum)
{
	__s64 part = bpf_csum_diff(0, 0, p, len, 0);

	/* Only a length the helper refuses (not a multiple of 4, or over 512) fails: a bug, caught by the tests. */
	if (part >= 0)
		*sum += (__u32)part;
}

/* The checksum of a 20-byte IPv4 header (no options) whose check field is zero. */
static __always_inline __u16 csum_full_ipv4_hdr(const struct iphdr *iph)
{
	const __u32 *w = (const __u32 *)iph;
	__u64 sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];

	return csum_full_fold(sum);
}

#endif
