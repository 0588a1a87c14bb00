/* Structs and enums shared by the XDP programs and src/maps (update both: src/maps/structs.ts, src/maps/reasons.ts). */
#ifndef XDPVS_SHARED_H
#define XDPVS_SHARED_H

#include <linux/types.h>

/* Address families and protocols use the kernel's numbers so no translation table is needed. */
#define XDPVS_AF_INET 2
#define XDPVS_AF_INET6 10

/* Capacity of the maps. User space reads max_entries from the loaded maps instead of repeating these. */
#define XDPVS_MAX_SERVICES 4096
#define XDPVS_MAX_DESTS 65536
#define XDPVS_CONN_TABLE_SIZE 262144
/* Two schedule tables per service (slots 2 * id and 2 * id + 1: the one packets use and the one being written, see
 * struct vs_service), then a shared pool of spare slots: a service whose changes come faster than RCU grace periods
 * borrows more tables from it (src/lb/ring-tables.ts). */
#define XDPVS_RING_SPARE_SLOTS 512
#define XDPVS_RING_SLOTS (2 * XDPVS_MAX_SERVICES + XDPVS_RING_SPARE_SLOTS)

/* Scheduler ids, in the order of src/lb/schedulers.ts. Ring schedulers (rr, wrr) step an atomic
 * counter through the service's table; hash schedulers (mh, sh, dh) index it with a flow hash. */
enum xdpvs_sched {
	XDPVS_SCHED_RR = 0,
	XDPVS_SCHED_WRR = 1,
	XDPVS_SCHED_MH = 2,
	XDPVS_SCHED_SH = 3,
	XDPVS_SCHED_DH = 4,
	XDPVS_SCHED_LC = 5,
	XDPVS_SCHED_WLC = 6,
	XDPVS_SCHED_SED = 7,
	XDPVS_SCHED_NQ = 8,
	XDPVS_SCHED_LBLC = 9,
	XDPVS_SCHED_LBLCR = 10,
	XDPVS_SCHED_FO = 11,
	XDPVS_SCHED_OVF = 12,
};

/* Service flags (vs_service.flags). */
#define XDPVS_SVC_F_HASH_PORT (1 << 0) /* mh-port / sh-port: the source port joins the hash */
#define XDPVS_SVC_F_FALLBACK (1 << 1)   /* sh-fallback / mh-fallback: an unavailable hashed server falls back to another */
#define XDPVS_SVC_F_PERSIST (1 << 2)    /* -p: svc_persist[id] holds the timeout and netmask (bpf/persist.h) */
#define XDPVS_SVC_F_THRESHOLDS (1 << 3) /* some destination has -x: rr/wrr/sh/mh/dh skip overloaded ones */

/* Forwarding methods (vs_dest.method), named as ipvsadm prints them. */
enum xdpvs_fwd {
	XDPVS_FWD_DR = 0,  /* -g, "Route": rewrite MACs */
	XDPVS_FWD_TUN = 1, /* -i, "Tunnel" */
	XDPVS_FWD_NAT = 2, /* -m, "Masq" */
};

/* Destination flags (vs_dest.flags). */
#define XDPVS_DEST_F_MAC_VALID (1 << 0) /* mac_dst holds the resolved next hop; without it we never forward */

/* Connection states (vs_conn.state), as IPVS names them in -Lnc. */
enum xdpvs_conn_state {
	XDPVS_CS_NONE = 0,
	XDPVS_CS_SYN_RECV = 1,
	XDPVS_CS_ESTABLISHED = 2,
	XDPVS_CS_FIN_WAIT = 3,
	XDPVS_CS_CLOSE = 4,
	XDPVS_CS_UDP = 5,
};

/* Why a packet left the way it did: one per-CPU counter each (map `reasons`). Only append. */
enum xdpvs_reason {
	XDPVS_R_PASS_NOT_IP = 0,        /* ARP, LLDP, anything that is not IPv4/IPv6 */
	XDPVS_R_PASS_MALFORMED = 1,     /* truncated or inconsistent headers */
	XDPVS_R_PASS_NOT_L4 = 2,        /* neither TCP nor UDP (ICMP, ...) */
	XDPVS_R_PASS_FRAGMENT = 3,      /* IP fragment: no ports to look up */
	XDPVS_R_PASS_IPV6_EXT = 4,      /* IPv6 extension headers we do not walk */
	XDPVS_R_PASS_NO_SERVICE = 5,    /* not addressed to a configured service */
	XDPVS_R_PASS_TCP_NOT_SYN = 6,   /* no connection and not a SYN: the kernel answers, as with IPVS */
	XDPVS_R_DROP_NO_DEST = 7,       /* service has no destination able to take a new connection */
	XDPVS_R_DROP_DEST_NO_MAC = 8,   /* destination's next hop is not resolved yet */
	XDPVS_R_DROP_CONN_TABLE = 9,    /* the connection could not be recorded */
	XDPVS_R_DROP_BAD_DEST = 10,     /* schedule table points at a destination that is not there */
	XDPVS_R_FWD_TX = 11,            /* forwarded out of the receiving interface */
	XDPVS_R_FWD_REDIRECT = 12,      /* forwarded out of another interface */
	XDPVS_R_TX_ICMP_TOO_BIG = 13,   /* TUN: too big once encapsulated; ICMP frag-needed / packet-too-big sent back */
	XDPVS_R_DROP_TUN_TOO_BIG = 14,  /* TUN: too big once encapsulated, IPv4 without DF (XDP cannot fragment) */
	XDPVS_R_DROP_NO_HEADROOM = 15,  /* the packet could not be grown or cut (bpf_xdp_adjust_head/tail failed) */
	XDPVS_R_PASS_NAT_NO_CONN = 16,  /* NAT: a real server's reply whose connection is gone (expired, flushed): untouched */
	XDPVS_R_PASS_NAT_NO_NEIGH = 17, /* NAT: reply rewritten to the VIP, passed for the kernel to resolve the client's next hop */
	XDPVS_R_PASS_NAT_KERNEL = 18,   /* NAT: reply the FIB does not forward here (no route, forwarding off, too big, TTL 1): untouched */
	XDPVS_R_NAT_REPLY_TX = 19,      /* NAT: reply rewritten to the VIP, out of the receiving interface */
	XDPVS_R_NAT_REPLY_REDIRECT = 20,/* NAT: reply rewritten to the VIP, out of another interface */
	XDPVS_R_PASS_OTHER_HOST = 21,   /* unicast to another MAC (promiscuous interface, bridge flooding): not ours */
	XDPVS_R_MAX = 22,
};

/* Interfaces the program is attached to, with their MACs (map `if_macs`): a unicast frame for another MAC is
 * another host's, as the kernel would judge it (PACKET_OTHERHOST), and is never balanced. */
#define XDPVS_MAX_IFACES 8
struct vs_if_mac {
	__u32 ifindex;
	__u8 mac[6];
	__u16 pad;
};
_Static_assert(sizeof(struct vs_if_mac) == 12, "vs_if_mac layout");

struct vs_if_macs {
	__u32 n; /* entries of e in use; 0: no filter (nothing attached yet, or a test run) */
	struct vs_if_mac e[XDPVS_MAX_IFACES];
};
_Static_assert(sizeof(struct vs_if_macs) == 100, "vs_if_macs layout");

/* Key of `services`: (VIP, port, protocol). IPv4 lives in addr[0], the other words are zero. */
struct vs_service_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;
	__u8 family;
};
_Static_assert(sizeof(struct vs_service_key) == 20, "vs_service_key layout");

/* Value of `services`. The whole record is replaced at once (hash map update), so switching
 * ring_slot and ring_len together is atomic for packets: a table is never seen half written. */
struct vs_service {
	__u32 id;        /* index into svc_stats and sched_state */
	__u8 sched;      /* enum xdpvs_sched */
	__u8 pad0;
	__u16 flags;     /* XDPVS_SVC_F_* */
	__u32 ring_slot; /* index into `rings` of the schedule table in use */
	__u32 ring_len;  /* entries in that table; 0 = no destination may take new connections */
};
_Static_assert(sizeof(struct vs_service) == 16, "vs_service layout");

/* Value of `dests`, indexed by destination id. A removed destination keeps its slot until its
 * connections are gone, so they keep flowing; gen changes when the slot is given to another. */
struct vs_dest {
	__be32 addr[4];     /* RIP */
	__be16 port;        /* RPORT */
	__u8 family;
	__u8 method;        /* enum xdpvs_fwd */
	__u32 gen;
	__u32 ifindex;      /* egress interface */
	__u32 svc_id;       /* owning service, for counters */
	__u16 flags;        /* XDPVS_DEST_F_* */
	__u8 mac_dst[6];    /* next hop (the real server itself for DR) */
	__u8 mac_src[6];    /* egress interface's MAC */
	__u16 mtu;          /* TUN: egress MTU (IP bytes); a packet whose encapsulation exceeds it is refused with
	                     * ICMP frag-needed / packet-too-big. 0: unknown, not checked */
	__be32 tun_src[4];  /* TUN: outer source address (a director address of the RIP's family) */
};
_Static_assert(sizeof(struct vs_dest) == 64, "vs_dest layout");

/* Key of `conns`: the client's flow as it arrives. */
struct vs_flow_key {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad0[2];
};
_Static_assert(sizeof(struct vs_flow_key) == 40, "vs_flow_key layout");

/* Value of `conns`. */
struct vs_conn {
	__u32 dest_id;
	__u32 dest_gen;  /* vs_dest.gen when scheduled: a reused slot does not capture old flows */
	__u32 svc_id;
	__u8 state;      /* enum xdpvs_conn_state */
	__u8 pad0[3];
	__u64 last_ns;   /* bpf_ktime_get_ns() of the last packet */
	__u64 expires_ns;/* last_ns + the state's timeout; an entry past it is a new flow */
};
_Static_assert(sizeof(struct vs_conn) == 32, "vs_conn layout");

/* Value of `nat_reverse`, whose key is a NAT reply's vs_flow_key as it arrives (RIP:RPORT -> CIP:CPORT):
 * what the reply's source becomes, and the connection it belongs to (the conns key is rebuilt from both). */
struct vs_nat_rev {
	__be32 vaddr[4];  /* VIP */
	__be16 vport;     /* VPORT */
	__u16 pad0;
	__u32 dest_id;    /* the connection's destination when it was scheduled ... */
	__u32 dest_gen;   /* ... and its generation: a reply of a rescheduled flow does not match */
};
_Static_assert(sizeof(struct vs_nat_rev) == 28, "vs_nat_rev layout");

/* Value of the per-CPU `svc_stats` and `dest_stats`: IPVS's counters. */
struct vs_stats {
	__u64 conns;
	__u64 inpkts;
	__u64 outpkts;
	__u64 inbytes;
	__u64 outbytes;
};
_Static_assert(sizeof(struct vs_stats) == 40, "vs_stats layout");

/* Value of `sched_state`, indexed by service id: the rr/wrr cursor shared by all CPUs. */
struct vs_sched_state {
	__u64 next;
};
_Static_assert(sizeof(struct vs_sched_state) == 8, "vs_sched_state layout");

/* Value of `config` (one entry): timeouts in seconds, IPVS defaults written by the daemon. */
struct vs_config {
	__u32 tcp_timeout;     /* ESTABLISHED */
	__u32 tcpfin_timeout;  /* FIN_WAIT */
	__u32 udp_timeout;
	__u32 syn_timeout;     /* SYN_RECV */
	__u32 close_timeout;   /* CLOSE (after RST) */
	__u32 pad0;
};
_Static_assert(sizeof(struct vs_config) == 24, "vs_config layout");

/* ---- Schedulers that read connection counts, thresholds, persistence, prefix services ----
 * (bpf/sched_lc.h, bpf/persist.h, bpf/service.h; src/maps/sched-maps.ts; docs/schedulers.md) */

/* Most destinations a service may have under lc, wlc, sed, nq, fo, ovf, lblc, lblcr: one bpf_loop walks them. */
#define XDPVS_LC_MAX_DESTS 1024
/* Most real servers an lblcr destination set holds (IPVS: unbounded); the oldest makes room. */
#define XDPVS_LBLCR_SET_MAX 8

/* vs_dest_sched.flags */
#define XDPVS_DS_F_AVAILABLE (1 << 0) /* still a real server of its service (IPVS IP_VS_DEST_F_AVAILABLE); -d clears it */

/* Value of `dest_conns`, indexed by destination id. Written only here, with atomics: the connections the data
 * plane saw start, change state and end (IPVS's activeconns/inactconns). Entries that expire or that the LRU
 * evicts leave silently; the daemon corrects for them through vs_dest_sched.active_adj/inactive_adj. */
struct vs_dest_conns {
	__u32 active;    /* ESTABLISHED */
	__u32 inactive;  /* any other state (SYN_RECV, FIN_WAIT, CLOSE, UDP) */
	__u32 overload;  /* vs_dest_sched.epoch when the upper threshold was reached: overloaded while equal, 0 = not */
	__u32 pad0;
};
_Static_assert(sizeof(struct vs_dest_conns) == 16, "vs_dest_conns layout");

/* Value of `dest_sched`, indexed by destination id. Written only by the daemon. */
struct vs_dest_sched {
	__u32 weight;       /* effective weight; 0 = quiescent */
	__u32 u_threshold;  /* -x: overloaded from this many connections (active + inactive); 0 = no limit */
	__u32 l_threshold;  /* -y: not overloaded again below this many; 0 = below 3/4 of the upper */
	__u32 epoch;        /* never 0; bumped when a change of thresholds clears the overload (as IPVS -e does) */
	__s32 active_adj;   /* true ActiveConn - dest_conns.active: what expiry and LRU eviction took away */
	__s32 inactive_adj; /* true InActConn - dest_conns.inactive */
	__u32 flags;        /* XDPVS_DS_F_* */
	__u32 pad0;
};
_Static_assert(sizeof(struct vs_dest_sched) == 32, "vs_dest_sched layout");

/* Value of `svc_persist`, indexed by service id: -p and -M. Written by the daemon. */
struct vs_svc_persist {
	__u32 timeout;     /* seconds */
	__be32 mask[4];    /* applied to the client address (IPv4 in mask[0]) */
};
_Static_assert(sizeof(struct vs_svc_persist) == 20, "vs_svc_persist layout");

/* Key of `persist` (client address & mask) and of `lblc` (destination address): per service. */
struct vs_svc_addr_key {
	__be32 addr[4];
	__u32 svc_id;
	__u8 family;
	__u8 pad0[3];
};
_Static_assert(sizeof(struct vs_svc_addr_key) == 24, "vs_svc_addr_key layout");

/* Value of `persist`: a persistence template (IPVS's connection template). */
struct vs_persist {
	__u32 dest_id;
	__u32 dest_gen;
	__u64 expires_ns;  /* bpf_ktime_get_ns() units; moved on while the client's connections live */
};
_Static_assert(sizeof(struct vs_persist) == 16, "vs_persist layout");

/* Value of `lblc`: the real server (lblc) or server set (lblcr) of one destination address. */
struct vs_lblc {
	__u64 lastuse_ns;  /* last new connection to this destination address */
	__u64 lastmod_ns;  /* lblcr: when the set last changed */
	__u32 size;        /* members in dest_id/dest_gen, most recently added first */
	__u32 pad0;
	__u32 dest_id[XDPVS_LBLCR_SET_MAX];
	__u32 dest_gen[XDPVS_LBLCR_SET_MAX];
};
_Static_assert(sizeof(struct vs_lblc) == 88, "vs_lblc layout");

/* Key of `svc_prefix` (LPM trie): a service whose VIP is a prefix. prefixlen counts 32 bits of
 * family/proto/port, then the address bits. */
struct vs_svc_prefix_key {
	__u32 prefixlen;
	__u8 family;
	__u8 proto;
	__be16 port;
	__be32 addr[4];
};
_Static_assert(sizeof(struct vs_svc_prefix_key) == 24, "vs_svc_prefix_key layout");

/* Value of `svc_wild` (one entry): which lookups after the exact one can match. Written by the daemon. */
struct vs_svc_wild {
	__u32 port0;    /* services on port 0 (persistent: every port of the VIP) */
	__u32 prefixes; /* services in svc_prefix */
};
_Static_assert(sizeof(struct vs_svc_wild) == 8, "vs_svc_wild layout");

/* ---- Which packets can be for a service, and since when the services are as they are (bpf/service.h;
 * src/maps/svc-gate.ts) ---- */

#define XDPVS_SVC_FILTER_BITS 32768
#define XDPVS_SVC_FILTER_SHIFT 17 /* 32 - log2(XDPVS_SVC_FILTER_BITS): the hash's top bits index the filter */
#define XDPVS_SVC_HASH_MUL 0x9e3779b1U

/* Value of `svc_gate` (one entry), written whole by the daemon whenever it adds or removes a service. */
struct vs_svc_gate {
	__u64 changed_ns; /* bpf_ktime_get_ns() just after the last change of `services` or `svc_prefix`: a connection
	                   * last written before it has its service looked up again (bpf/conn.h) */
	__u64 bits[XDPVS_SVC_FILTER_BITS / 64]; /* bit svc_filter_hash(key) set for each key of `services` */
};
_Static_assert(sizeof(struct vs_svc_gate) == 8 + XDPVS_SVC_FILTER_BITS / 8, "vs_svc_gate layout");

/* ---- Connection synchronisation between directors (bpf/sync.h; src/sync; docs/sync.md) ---- */

/* Record of the `sync_events` ring buffer: a connection this program created, or whose state changed, for the
 * daemon to send to its peers. Ids are this director's; the daemon turns them into addresses before sending. */
struct vs_sync_event {
	__be32 src[4];      /* the flow, as vs_flow_key */
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 state;         /* enum xdpvs_conn_state, as now in `conns` */
	__u8 pad0;
	__u32 dest_id;
	__u32 dest_gen;
	__u32 svc_id;
	__u32 pad1;
	__u64 last_ns;      /* vs_conn.last_ns and expires_ns (bpf_ktime_get_ns() units) */
	__u64 expires_ns;
};
_Static_assert(sizeof(struct vs_sync_event) == 72, "vs_sync_event layout");

/* Value of `sync_ctl` (one entry). Written by the daemon. */
struct vs_sync_ctl {
	__u32 enabled;      /* nonzero: emit events (the daemon has peers); zero: the data plane pays one load */
	__u32 pad0;
};
_Static_assert(sizeof(struct vs_sync_ctl) == 8, "vs_sync_ctl layout");

/* ---- The real server's decapsulation program (bpf/xdpvs_decap.bpf.c; src/maps/decap-maps.ts) ---- */

/* Key of `decap_vips` (inner destinations we strip the tunnel for) and `decap_local` (outer destinations: this
 * host's addresses). IPv4 lives in addr[0], the other words are zero. */
struct vs_decap_key {
	__be32 addr[4];
	__u8 family;
	__u8 pad0[3];
};
_Static_assert(sizeof(struct vs_decap_key) == 20, "vs_decap_key layout");

/* Why the decap program let a packet go as it did: one per-CPU counter each (map `decap_reasons`). Only append. */
enum xdpvs_decap_reason {
	XDPVS_DECAP_R_PASS_NOT_TUNNEL = 0, /* not IPIP / IPv6-in-IP (ordinary traffic): untouched */
	XDPVS_DECAP_R_PASS_MALFORMED = 1,  /* truncated or inconsistent outer or inner headers: untouched */
	XDPVS_DECAP_R_PASS_FRAGMENT = 2,   /* outer IPv4 fragment: untouched (the kernel has no ipip to reassemble for) */
	XDPVS_DECAP_R_PASS_NOT_LOCAL = 3,  /* outer destination is not an address of this host: untouched */
	XDPVS_DECAP_R_PASS_NOT_VIP = 4,    /* inner destination is not a configured VIP: untouched */
	XDPVS_DECAP_R_DECAP = 5,           /* outer header stripped, the inner packet passed to the kernel */
	XDPVS_DECAP_R_DROP_ECN = 6,        /* outer CE on a not-ECT inner packet: dropped, as RFC 6040 says */
	XDPVS_DECAP_R_MAX = 7,
};

#endif
