// xdpvsadm's -h and -v texts, laid out like ipvsadm's usage so its users find their way; no I/O.

import { DEFAULT_METHOD, DEFAULT_SCHEDULER, DEFAULT_WEIGHT, MAX_WEIGHT, type Method } from '../lb/model.js';
import { SCHEDULERS } from '../lb/schedulers.js';
import { SCHED_FLAG_NAMES } from './args.js';
import { DEFAULT_TOKEN_FILE, DEFAULT_URL, ENV_SERVER, ENV_TOKEN_FILE, RUNTIME_DIR, RUNTIME_FILE_NAME } from './discover.js';

/** "a, b or c" */
function orList(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/** The schedulers the daemon takes, from the registry. */
const SUPPORTED_SCHEDULERS = orList(SCHEDULERS.filter((s) => s.kind !== 'unsupported').map((s) => s.name));

/** " (default)" after the forwarding method ipvsadm takes without -g, -i or -m. */
const byDefault = (method: Method): string => (method === DEFAULT_METHOD ? ' (default)' : '');

/** Comma-separated words after `lead`, wrapped at 94 columns onto lines indented to the help's second column. */
function wrapList(lead: string, words: readonly string[]): string {
  const lines = [lead];
  words.forEach((word, i) => {
    const item = i < words.length - 1 ? `${word},` : word;
    const last = lines.length - 1;
    if (`${lines[last]} ${item}`.length > 94) lines.push(`${' '.repeat(38)}${item}`);
    else lines[last] += ` ${item}`;
  });
  return lines.join('\n');
}

export function versionLine(version: string): string {
  return `xdpvsadm ${version} (ipvsadm-compatible; xdpvs data plane)`;
}

export function usageText(version: string, program = 'xdpvsadm'): string {
  const p = program;
  return `${versionLine(version)}
Usage:
  ${p} -A|E virtual-service [-s scheduler] [-b sched-flags] [-p [timeout]] [-M netmask]
  ${p} -D virtual-service
  ${p} -C
  ${p} -a|e virtual-service -r server-address [options]
  ${p} -d virtual-service -r server-address
  ${p} -L|l [virtual-service] [options]
  ${p} -L|l -c|--timeout [-n] [--json]
  ${p} --set tcp tcpfin udp
  ${p} -Z [virtual-service]
  ${p} -R
  ${p} -S [-n]
  ${p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --restore         -R        restore rules from stdin (all or nothing)
  --save            -S        save rules to stdout
  --set tcp tcpfin udp        set connection timeout values (seconds; 0 keeps one)
  --help            -h        display this help message
  --version         -v        display the version

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  (host is a numeric IPv4 or IPv6 address, IPv6 with a port written [addr]:port; an xdpvs extension:
   host/len, [addr/len]:port, is a service for every address of that prefix, see docs/schedulers.md)

Options:
  --scheduler    -s scheduler         one of ${SUPPORTED_SCHEDULERS};
                                      the default scheduler is ${DEFAULT_SCHEDULER}, as ipvsadm's,
                                      and -E without -s also sets it.
  --persistent   -p [timeout]         persistent service (timeout in seconds, default 300)
  --netmask      -M netmask           persistent granularity mask (IPv4 dotted, IPv6 a length)
  --real-server  -r server-address    server-address is host (and port); without a port
                                      the service's port is used
  --gatewaying   -g                   gatewaying (direct routing)${byDefault('dr')}
  --ipip         -i                   ipip encapsulation (tunneling)${byDefault('tunnel')}
  --masquerading -m                   masquerading (NAT)${byDefault('nat')}
                                      (-g and -i use the service's port for the real server)
  --weight       -w weight            capacity of real server (0..${MAX_WEIGHT}, default ${DEFAULT_WEIGHT};
                                      -e without -w sets it back to ${DEFAULT_WEIGHT}, as ipvsadm)
  --tun-type     type                 ipip, the only tunnel type xdpvs does (ipvsadm-save writes it)
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --numeric      -n                   numeric output of addresses and ports
${wrapList('  --sched-flags  -b flags             scheduler flags (comma-separated):', SCHED_FLAG_NAMES)}
  --json                              list as the daemon's JSON objects

Addresses and ports are always printed as numbers: xdpvsadm never resolves names
(no DNS or other traffic beyond the daemon), so -L prints what -L -n prints, and -S
what -S -n prints. -R checks every rule before the daemon applies the result as a whole:
a bad line (named in the message) changes nothing.

Not supported yet (refused with exit status 1, never ignored):
  -f/--fwmark-service, --sctp-service, -6/--ipv6, -o/--ops, --pe,
  --tun-type gue|gre and the other --tun-* options, --daemon,
  --start-daemon, --stop-daemon and their options.

Connection to xdpvsd:
  --server URL                        the daemon's API; else $${ENV_SERVER}, else the URL in
                                      ${RUNTIME_DIR}/<netns inode>/${RUNTIME_FILE_NAME}, else ${DEFAULT_URL}
  --token-file PATH                   bearer token for changes; else $${ENV_TOKEN_FILE}, else the
                                      runtime file's, else ${DEFAULT_TOKEN_FILE} (listing needs none)

Exit status: 0 success; 1 not supported yet, or a listed service that does not exist;
2 bad arguments (as ipvsadm) or daemon unreachable; 255 option syntax errors and
changes the daemon refused (as ipvsadm).
`;
}
