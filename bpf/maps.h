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

/* Template of a schedule table: index -> destination id. The daemon creates each table with its
 * own length (BPF_F_INNER_MAP: 1 for a single server, the weight sum for wrr, 65537 for Maglev). */
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

#endif
