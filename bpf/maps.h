/* Every map of the director's XDP program: what each key maps to and who writes it. Names are read by src/maps. */
#ifndef XDPVS_MAPS_H
#define XDPVS_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpvs_shared.h"

/* (VIP, port, proto, family) -> the service. Written by the daemon (whole records); read here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPVS_MAX_SERVICES);
	__type(key, struct vs_service_key);
	__type(value, struct vs_service);
} services SEC(".maps");

/* Destination id -> the real server (address, forwarding method, next hop, generation).
 * Written by the daemon. A slot is in use when family != 0; an all-zero slot is "no destination". */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct vs_dest);
} dests SEC(".maps");

/* Client flow as it arrives -> its destination, state and expiry. Written here (new connections,
 * state changes, a refresh at most once a second); read and flushed by the daemon (-Lnc, -C). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPVS_CONN_TABLE_SIZE);
	__type(key, struct vs_flow_key);
	__type(value, struct vs_conn);
} conns SEC(".maps");

/* NAT reply flow as it arrives (RIP:RPORT -> CIP:CPORT) -> the VIP:VPORT it is rewritten back to and
 * its connection. Written here with each new connection to a NAT destination (never for DR/TUN), read
 * by the reply path (bpf/nat.h); entries of ended connections age out by LRU. Same size as `conns`. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPVS_CONN_TABLE_SIZE);
	__type(key, struct vs_flow_key);
	__type(value, struct vs_nat_rev);
} nat_reverse SEC(".maps");

/* Template of a schedule table: index -> destination id. The daemon creates each table with its
 * own length (BPF_F_INNER_MAP: 1 for a single server, the weight sum for wrr, 65537 for Maglev, 256 for
 * sh and dh, the candidates for the count-reading and locality schedulers). */
struct ring_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_INNER_MAP);
};

/* Ring slot -> schedule table (two slots per service: in use, being written). Written by the daemon,
 * which then switches vs_service.ring_slot/ring_len in one record update. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, XDPVS_RING_SLOTS);
	__type(key, __u32);
	__array(values, struct ring_inner);
} rings SEC(".maps");

/* Service id -> rr/wrr cursor, advanced atomically here (shared by all CPUs); reset by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct vs_sched_state);
} sched_state SEC(".maps");

/* Service id -> per-CPU IPVS counters. Written here; summed and zeroed by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct vs_stats);
} svc_stats SEC(".maps");

/* Destination id -> per-CPU IPVS counters. Written here; summed and zeroed by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct vs_stats);
} dest_stats SEC(".maps");

/* enum xdpvs_reason -> per-CPU packet count. Written here (one increment per packet); read by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPVS_R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} reasons SEC(".maps");

/* 0 -> timeouts in seconds. Written by the daemon; a zero field means the IPVS default. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vs_config);
} config SEC(".maps");

/* 0 -> nonzero while some `dests` slot holds a NAT destination (draining ones included). Only then can a packet
 * that is for no service be a NAT reply, so only then does it pay the `nat_reverse` lookup (bpf/nat_reply.h).
 * Written by the daemon (src/maps/nat-gate.ts) with every destination it writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nat_ctl SEC(".maps");

/* 0 -> the service filter and the time the services last changed (struct vs_svc_gate). Written by the daemon
 * (src/maps/svc-gate.ts) with every service it adds or removes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vs_svc_gate);
} svc_gate SEC(".maps");

/* Destination id -> connections the data plane saw start and end, and the overload flag (bpf/sched_lc.h).
 * Written here with atomics; zeroed by the daemon when it gives the slot to a new destination. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct vs_dest_conns);
} dest_conns SEC(".maps");

/* Destination id -> weight, thresholds, availability and the daemon's count corrections. Written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct vs_dest_sched);
} dest_sched SEC(".maps");

/* Service id -> persistence timeout and netmask, read when vs_service.flags has XDPVS_SVC_F_PERSIST. Daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct vs_svc_persist);
} svc_persist SEC(".maps");

/* (service, client address & netmask) -> persistence template. Written here (new connections, refreshes);
 * extended by the daemon while the client's connections live; flushed by it with the service. */
#define XDPVS_PERSIST_TABLE_SIZE 65536
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPVS_PERSIST_TABLE_SIZE);
	__type(key, struct vs_svc_addr_key);
	__type(value, struct vs_persist);
} persist SEC(".maps");

/* (service, destination address) -> lblc server / lblcr server set. Written here; flushed by the daemon. */
#define XDPVS_LBLC_TABLE_SIZE 65536
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPVS_LBLC_TABLE_SIZE);
	__type(key, struct vs_svc_addr_key);
	__type(value, struct vs_lblc);
} lblc SEC(".maps");

/* 0 -> room for one lblc/lblcr entry being rewritten (per CPU): kept off the 512-byte stack. Scratch, never read
 * by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vs_lblc);
} lblc_scratch SEC(".maps");

/* (family, proto, port, VIP prefix) -> the service, for VIPs that are prefixes (longest prefix wins; looked up
 * after `services` misses). Written by the daemon (whole records, as `services`). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XDPVS_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vs_svc_prefix_key);
	__type(value, struct vs_service);
} svc_prefix SEC(".maps");

/* 0 -> which wildcard lookups can match (port-0 services, prefix services). Written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vs_svc_wild);
} svc_wild SEC(".maps");

/* 0 -> the interfaces the program runs on and their MACs (bpf/host.h). Written by the daemon at attach. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vs_if_macs);
} if_macs SEC(".maps");

/* Connections created or changed here (struct vs_sync_event records), while sync_ctl.enabled. Written here
 * (bpf/sync.h), drained by the daemon every few ms and sent to its peers (src/sync). 1 MiB: 13107 events of 72 bytes + an 8-byte header. */
#define XDPVS_SYNC_RING_BYTES (1 << 20)
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XDPVS_SYNC_RING_BYTES);
} sync_events SEC(".maps");

/* 0 -> whether to emit sync events. Written by the daemon (on when it has sync peers). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vs_sync_ctl);
} sync_ctl SEC(".maps");

/* 0 -> per-CPU count of sync events lost to a full ring. Written here; read by the daemon (GET /v1/sync). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sync_drops SEC(".maps");

#endif
