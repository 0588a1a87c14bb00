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
/* Two schedule tables per service: the one packets use and the one being written (see struct vs_service). */
#define XDPVS_RING_SLOTS (2 * XDPVS_MAX_SERVICES)

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
	XDPVS_R_MAX = 13,
};

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
	__u16 pad0;
};
_Static_assert(sizeof(struct vs_dest) == 48, "vs_dest layout");

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

#endif
