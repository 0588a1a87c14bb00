/* Connection synchronisation: report new connections and state changes to the daemon, which sends them to the
 * other directors (src/sync, docs/sync.md). */
#ifndef XDPVS_SYNC_H
#define XDPVS_SYNC_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/* Never used: keeps struct vs_sync_event in the object's BTF (a ring buffer's records have no type of their own),
 * where test/unit/codecs-btf.test.ts holds src/maps/structs.ts against it. */
struct vs_sync_event *xdpvs_sync_event_btf __attribute__((unused));

/* Queues one event for `flow` now holding `c`, when the daemon asked for them. Out of line: called only when a
 * connection is created or changes state, and its ring pointers stay off conn_select's stack frame. The record is
 * written in the ring in place (reserve/submit), and without a wakeup: the daemon polls the ring on a timer, so
 * no packet pays for waking it. A full ring loses the event and counts it in `sync_drops`. Returns 0. */
static __noinline int sync_emit(const struct vs_flow_key *flow, const struct vs_conn *c)
{
	__u32 zero = 0;
	struct vs_sync_ctl *ctl = bpf_map_lookup_elem(&sync_ctl, &zero);
	struct vs_sync_event *ev;
	__u64 *drops;

	if (!ctl || !ctl->enabled)
		return 0;
	ev = bpf_ringbuf_reserve(&sync_events, sizeof(*ev), 0);
	if (!ev) {
		drops = bpf_map_lookup_elem(&sync_drops, &zero);
		if (drops)
			*drops += 1;
		return 0;
	}
	__builtin_memcpy(ev->src, flow->src, sizeof(ev->src));
	__builtin_memcpy(ev->dst, flow->dst, sizeof(ev->dst));
	ev->sport = flow->sport;
	ev->dport = flow->dport;
	ev->proto = flow->proto;
	ev->family = flow->family;
	ev->state = c->state;
	ev->pad0 = 0;
	ev->dest_id = c->dest_id;
	ev->dest_gen = c->dest_gen;
	ev->svc_id = c->svc_id;
	ev->pad1 = 0;
	ev->last_ns = c->last_ns;
	ev->expires_ns = c->expires_ns;
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 0;
}

#endif
