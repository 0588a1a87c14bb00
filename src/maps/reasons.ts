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
] as const;

export type Reason = (typeof REASONS)[number];
