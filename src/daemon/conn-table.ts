// xdpvsd --conn-table-size: the connection table's size applied before load, and a clear word when a pinned table
// of another size is in the way (a BPF map cannot be resized).

import { XdpvsError, isXdpvsError } from '../errors.js';
import { loadObject, type LoadOptions, type LoadedObject } from '../loader/program.js';

/**
 * Loads the director object with `conns` (and `nat_reverse`, sized alike) at `size` entries when given. When the
 * pins of a previous run hold a table of another size, throws XDPVS_ERR_BPF saying both sizes and the two ways on:
 * keep the connections with the pinned size, or detach and start afresh.
 */
export function loadConnTableSized(opts: LoadOptions, size: number | undefined, iface: string): LoadedObject {
  const maxEntries = size ? { ...opts.maxEntries, conns: size, nat_reverse: size } : opts.maxEntries;
  try {
    return loadObject({ ...opts, maxEntries });
  } catch (e) {
    if (isXdpvsError(e) && e.details.op === 'reuse_pinned_map' && (e.details.map === 'conns' || e.details.map === 'nat_reverse')) {
      const pinned = (e.details.pinned as { maxEntries?: number } | undefined)?.maxEntries;
      const wanted = (e.details.object as { maxEntries?: number } | undefined)?.maxEntries;
      throw new XdpvsError(
        e.code,
        `the pinned connection table has ${pinned} entries, but ${wanted} were asked for${size ? ' (--conn-table-size)' : ' (the default)'}: ` +
          `a BPF map cannot be resized. Keep its connections by starting with --conn-table-size ${pinned}, or drop them and start ` +
          `with the new size: xdpvsd --interface ${iface} --detach (removes the program and ${opts.pinDir}), then start again`,
        { ...e.details, hint: `--conn-table-size ${pinned}` },
      );
    }
    throw e;
  }
}
