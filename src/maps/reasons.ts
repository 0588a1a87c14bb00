// enum xdpvs_reason of bpf/xdpvs_shared.h, by value (update both; test/unit/codecs-btf.test.ts compares them).

export const REASONS = [
  'pass_not_ip',
  'pass_malformed',
  'pass_not_l4',
  'pass_fragment',
  'pass_ipv6_ext',
  'pass_no_service',
  'pass_tcp_not_syn',
  'drop_no_dest',
  'drop_dest_no_mac',
  'drop_conn_table',
  'drop_bad_dest',
  'fwd_tx',
  'fwd_redirect',
  'tx_icmp_too_big',
  'drop_tun_too_big',
  'drop_no_headroom',
  'pass_nat_no_conn',
  'pass_nat_no_neigh',
  'pass_nat_kernel',
  'nat_reply_tx',
  'nat_reply_redirect',
  'pass_other_host',
] as const;

export type Reason = (typeof REASONS)[number];

// enum xdpvs_decap_reason of bpf/xdpvs_shared.h (the real server's decap program), by value (update both).
export const DECAP_REASONS = [
  'pass_not_tunnel',
  'pass_malformed',
  'pass_fragment',
  'pass_not_local',
  'pass_not_vip',
  'decap',
  'drop_ecn',
] as const;

export type DecapReason = (typeof DECAP_REASONS)[number];
