// ipvsadm's connection listing (-Lnc) and timeouts (-L --timeout) as text, with its printf formats; no I/O.

import type { ConnectionView, TimeoutsView } from '../lb/model.js';
import { compareAddresses, parseAddress } from '../lb/address.js';

/** printf("%-Ns"). */
function left(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** addrport_to_anyname() with -n: "ADDR:PORT", "[V6]:PORT" (a prefix service keeps its "/LEN"). */
export function endpointName(e: { address: string; port: number }): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** ipvsadm's expire column: "%02d:%02d" of minutes and seconds (minutes may pass 99). */
export function expireText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function byAddress(a: string, b: string): number {
  try {
    return compareAddresses(parseAddress(a.split('/')[0]), parseAddress(b.split('/')[0]));
  } catch {
    return a < b ? -1 : a > b ? 1 : 0;
  }
}

/** A stable order for the listing (IPVS prints in hash order): virtual, client, template last of a client. */
export function sortConnections(list: readonly ConnectionView[]): ConnectionView[] {
  return [...list].sort(
    (a, b) =>
      byAddress(a.virtual.address, b.virtual.address) ||
      a.virtual.port - b.virtual.port ||
      byAddress(a.client.address, b.client.address) ||
      a.client.port - b.client.port ||
      Number(a.template) - Number(b.template),
  );
}

/**
 * `ipvsadm -Lnc`: list_conn()'s header and print_conn()'s "%-3s %-6s %-11s %-18s %-18s %s" per entry. A
 * persistence template shows as IPVS shows it: client port 0, state NONE.
 */
export function formatConnections(list: readonly ConnectionView[]): string {
  let out = 'IPVS connection entries\n';
  out += `pro expire ${left('state', 11)} ${left('source', 18)} ${left('virtual', 18)} destination\n`;
  for (const c of sortConnections(list)) {
    out +=
      `${left(c.protocol.toUpperCase(), 3)} ${left(expireText(c.expires), 6)} ${left(c.state, 11)} ` +
      `${left(endpointName(c.client), 18)} ${left(endpointName(c.virtual), 18)} ${endpointName(c.destination)}\n`;
  }
  return out;
}

/** `ipvsadm -Lnc --json`: the API's entries, in the same order. */
export function formatConnectionsJson(list: readonly ConnectionView[]): string {
  return `${JSON.stringify(sortConnections(list), null, 2)}\n`;
}

/** `ipvsadm -L --timeout`: list_timeout(). */
export function formatTimeouts(t: TimeoutsView): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}
