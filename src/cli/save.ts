// `xdpvsadm -S` (ipvsadm-save): the configuration as ipvsadm 1.31's list_all(FMT_RULE) prints it; no I/O.
//
// ipvsadm's print_service_entry() with FMT_RULE writes, in its sorted order (services by family, protocol, address,
// port; real servers by address, port):
//
//     printf("-A %s -s %s", svc_name, se->sched_name);        svc_name is "-t VIP:PORT" or "-u VIP:PORT"
//     " -b FLAGS" when a scheduler flag is set (print_sched_flags)
//     " -p TIMEOUT" when persistent, then " -M NETMASK" unless the whole address (dotted for IPv4, a length for IPv6)
//     printf("-a %s -r %s %s -w %d\n", svc_name, dname, fwd_switch(e->conn_flags), e->weight);
//     tunnelling real servers: print_tunnel_rule() adds " --tun-type ipip" (xdpvs tunnels with IPIP only)
//
// ipvsadm-save writes no -x/-y: thresholds are not saved (ipvsadm's behaviour, kept), so a restore sets none.
//
// Addresses are numeric whether or not -n is given: xdpvsadm never resolves names (ipvsadm-save without -n would
// print host and port names, which ipvsadm -R resolves back).

import { formatEndpoint } from '../lb/address.js';
import type { ConfigView, Method } from '../lb/model.js';
import { parseVip } from '../lb/vip.js';
import { schedFlagBits } from './args.js';
import { compareServers, compareServices, schedFlagsText } from './format.js';

type SavedService = ConfigView['services'][number];

/** ipvsadm's fwd_switch(). */
export function fwdSwitch(method: Method | string): string {
  switch (method) {
    case 'nat':
      return '-m';
    case 'tunnel':
      return '-i';
    default:
      return '-g';
  }
}

/** "-t 198.18.0.100:80", "-u [fd00::100]:53" (an xdpvs VIP prefix keeps its "/LEN") */
function serviceName(svc: Pick<SavedService, 'protocol' | 'address' | 'port'>): string {
  return `${svc.protocol === 'udp' ? '-u' : '-t'} ${formatEndpoint(parseVip(svc.address), svc.port)}`;
}

/** ipvsadm's -M is printed only for a netmask narrower than the whole address. */
function partialNetmask(svc: Pick<SavedService, 'address' | 'netmask'>): string | undefined {
  const m = svc.netmask;
  if (m === undefined) return undefined;
  const full = parseVip(svc.address).family === 'inet' ? '255.255.255.255' : '128';
  return m === full ? undefined : m;
}

/** One service's rules: its -A line, then an -a line per real server. */
export function formatServiceRules(svc: SavedService): string {
  const name = serviceName(svc);
  let out = `-A ${name} -s ${svc.scheduler}`;
  if (schedFlagBits(svc.flags ?? []) !== 0) out += ` -b ${schedFlagsText(svc.scheduler, svc.flags ?? [])}`;
  if ((svc.persistent ?? 0) > 0) {
    out += ` -p ${svc.persistent}`;
    const mask = partialNetmask(svc);
    if (mask !== undefined) out += ` -M ${mask}`;
  }
  out += '\n';
  for (const rs of [...(svc.servers ?? [])].sort(compareServers)) {
    out += `-a ${name} -r ${formatEndpoint(rs.address, rs.port)} ${fwdSwitch(rs.method)} -w ${rs.weight}`;
    if (rs.method === 'tunnel') out += ' --tun-type ipip';
    out += '\n';
  }
  return out;
}

/** `ipvsadm -S -n`: every service's rules, in ipvsadm's order; nothing at all for an empty table. */
export function formatSave(services: readonly SavedService[]): string {
  return [...services].sort(compareServices).map(formatServiceRules).join('');
}
