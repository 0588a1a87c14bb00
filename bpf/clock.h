/* The packet clock: bpf_ktime_get_ns() read once per jiffy and cached, so a packet pays one inlined load. */
#ifndef XDPVS_CLOCK_H
#define XDPVS_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Why: bpf_ktime_get_ns() costs ~35 ns per call on the lab machines (a third of an established flow's
 * budget), while the verifier inlines bpf_jiffies64() into a single load. The cached time lags the
 * monotonic clock by at most one tick (1-10 ms), far below any connection timeout, and stays in
 * bpf_ktime_get_ns() units (CLOCK_MONOTONIC) for user space. One copy shared by all CPUs: it is written
 * once per tick, read by every packet. Racing writers store nearly the same values; a reader that sees a
 * new jiffies with the previous ns is one tick behind for that packet. */
struct xdpvs_clock {
	__u64 jiffies;
	__u64 ns;
};

/* Global, not static: clang 14 splits a static struct into per-field variables whose BTF the kernel
 * rejects ("Invalid size"), and libbpf then loads the object without BTF. */
struct xdpvs_clock clock_cache;

static __always_inline __u64 clock_now_ns(void)
{
	__u64 j = bpf_jiffies64();
	__u64 ns = clock_cache.ns;

	if (j == clock_cache.jiffies && ns)
		return ns;
	ns = bpf_ktime_get_ns();
	clock_cache.ns = ns;
	clock_cache.jiffies = j;
	return ns;
}

#endif
