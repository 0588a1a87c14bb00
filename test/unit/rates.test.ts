// IPVS's rate estimator (ip_vs_est.c) in src/lb/rates.ts, and -L --rate / --exact as ipvsadm prints them.

import { describe, expect, it } from 'vitest';
import { formatList, formatOneService, printLargenum } from '../../src/cli/format.js';
import { RateEstimator } from '../../src/lb/rates.js';
import type { Counters, ServiceView } from '../../src/lb/model.js';
import { Stats } from '../../src/maps/structs.js';
import { fakeDirector } from '../helpers/fake-director.js';

const zero: Counters = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

/** The kernel's arithmetic, written out once more: rate = diff << shift; avg += (rate - avg) >> 2. */
function kernel(diffs: number[], shift: bigint, scale: bigint, round: bigint): number[] {
  let avg = 0n;
  return diffs.map((d) => {
    const rate = BigInt(d) << shift;
    avg += (rate - avg) >> 2n;
    return Number((avg + round) >> scale);
  });
}

describe('RateEstimator', () => {
  it('follows ip_vs_est.c tick by tick: 100 connections and 1 MB every 2 s', () => {
    const est = new RateEstimator();
    const c = { ...zero };
    est.sample([['a', c]]); // first sight: a zero point, no rate
    expect(est.read('a')).toEqual({ cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
    const cps: number[] = [];
    const inbps: number[] = [];
    for (let i = 0; i < 100; i++) {
      c.conns += 100;
      c.inpkts += 1000;
      c.inbytes += 1_000_000;
      est.sample([['a', c]]);
      cps.push(est.read('a').cps);
      inbps.push(est.read('a').inbps);
    }
    // By hand for the first ticks: avg 12800, 22400, 29600 (scaled by 2^10) -> 12, 22, 29 connections/s.
    expect(cps.slice(0, 3)).toEqual([12, 22, 29]);
    expect(cps).toEqual(kernel(Array(100).fill(100), 9n, 10n, 0x1ffn));
    expect(inbps).toEqual(kernel(Array(100).fill(1_000_000), 4n, 5n, 0xfn));
    // ... converging on the true rates: 50 connections/s, 500 pps, 500000 B/s.
    expect(est.read('a')).toEqual({ cps: 50, inpps: 500, outpps: 0, inbps: 500000, outbps: 0 });
  });

  it('decays when traffic stops, forgets keys no longer sampled, and restarts on zeroing or counters going back', () => {
    const est = new RateEstimator();
    const busy = { ...zero, conns: 1000 };
    est.sample([['a', zero]]);
    est.sample([['a', busy]]);
    const peak = est.read('a').cps;
    expect(peak).toBe(kernel([1000], 9n, 10n, 0x1ffn)[0]);
    est.sample([['a', busy]]);
    expect(est.read('a').cps).toBe(kernel([1000, 0], 9n, 10n, 0x1ffn)[1]);

    est.zero('a'); // ipvsadm -Z: counters now 0, rates 0
    expect(est.read('a').cps).toBe(0);
    est.sample([['a', { ...zero, conns: 10 }]]);
    expect(est.read('a').cps).toBe(kernel([10], 9n, 10n, 0x1ffn)[0]);

    est.sample([['a', { ...zero, conns: 3 }]]); // went backwards: a new zero point
    expect(est.read('a').cps).toBe(0);

    est.sample([['b', zero]]);
    expect(est.read('a')).toEqual({ cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
  });
});

describe('--rate and --exact listings (ipvsadm 1.31 print_title / print_largenum)', () => {
  const view = (rates: ServiceView['rates'], serverRates: ServiceView['rates']): ServiceView => ({
    id: 'tcp:198.18.0.100:80',
    protocol: 'tcp',
    address: '198.18.0.100',
    port: 80,
    family: 'inet',
    scheduler: 'rr',
    flags: [],
    stats: { conns: 123456789, inpkts: 5, outpkts: 0, inbytes: 1234567890123, outbytes: 0 },
    rates,
    servers: [
      {
        id: '198.18.0.11:80',
        address: '198.18.0.11',
        port: 80,
        method: 'dr',
        weight: 1,
        activeConns: 0,
        inactiveConns: 0,
        neighbour: { resolved: true, mac: null, interface: null },
        stats: zero,
        rates: serverRates,
      },
    ],
  });

  it('-Ln --rate: CPS InPPS OutPPS InBPS OutBPS in print_largenum columns', () => {
    const svc = view({ cps: 50, inpps: 500, outpps: 0, inbps: 123456789, outbps: 0 }, { cps: 25, inpps: 250, outpps: 0, inbps: 61728394, outbps: 0 });
    expect(formatList(262144, [svc], { rate: true })).toBe(
      'IP Virtual Server version 1.2.1 (size=262144)\n' +
        'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n' +
        '  -> RemoteAddress:Port\n' +
        'TCP  198.18.0.100:80                    50      500        0  123456K        0\n' +
        '  -> 198.18.0.11:80                     25      250        0 61728394        0\n',
    );
    expect(formatOneService(svc, { rate: true, exact: true })).toBe(
      'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n' +
        '  -> RemoteAddress:Port\n' +
        'TCP  198.18.0.100:80                    50      500        0 123456789        0\n' +
        '  -> 198.18.0.11:80                     25      250        0 61728394        0\n',
    );
  });

  it('--stats wins over --rate, as in ipvsadm; --exact expands the counters too', () => {
    const svc = view({ cps: 1, inpps: 1, outpps: 1, inbps: 1, outbps: 1 }, { cps: 1, inpps: 1, outpps: 1, inbps: 1, outbps: 1 });
    const text = formatOneService(svc, { stats: true, rate: true, exact: true });
    expect(text.split('\n')[0]).toBe('Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes');
    expect(text.split('\n')[2]).toBe('TCP  198.18.0.100:80              123456789        5        0 1234567890123        0');
  });

  it('print_largenum with FMT_EXACT: %*llu in 9 columns, or the length + 1', () => {
    expect(printLargenum(0, true)).toBe('        0');
    expect(printLargenum(99_999_999, true)).toBe(' 99999999');
    expect(printLargenum(100_000_000, true)).toBe(' 100000000');
    expect(printLargenum(1_234_567_890_123, true)).toBe(' 1234567890123');
  });
});

describe('rates in the API views', () => {
  it('the balancer samples every service and real server; views carry rates; -Z zeroes them', async () => {
    const d = fakeDirector({ neighbours: { '198.18.0.11': '02:00:00:00:00:11' } });
    await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' });
    await d.call('POST', '/v1/services/tcp%3A198.18.0.100%3A80/servers', { address: '198.18.0.11' });
    const write = (map: string, conns: number, inbytes: number) => {
      const stride = Math.ceil(Stats.size / 8) * 8;
      const buf = Buffer.alloc(stride * d.backend.possibleCpus);
      Stats.encode({ ...zero, conns, inpkts: conns * 10, inbytes }).copy(buf, 0);
      d.backend.map(map).update(Buffer.alloc(4), buf);
    };
    d.balancer.estimateRates();
    write('svc_stats', 400, 8_000_000);
    write('dest_stats', 400, 8_000_000);
    d.balancer.estimateRates();
    const [svc] = (await d.call('GET', '/v1/services')).body.services;
    const expected = { cps: 50, inpps: 500, outpps: 0, inbps: 1_000_000, outbps: 0 }; // a quarter of 200/s, 2000 pps, 4 MB/s
    expect(svc.rates).toEqual(expected);
    expect(svc.servers[0].rates).toEqual(expected);

    expect((await d.call('POST', '/v1/stats/zero')).body).toEqual({ zeroed: 1 });
    const after = (await d.call('GET', '/v1/services')).body.services[0];
    expect(after.rates).toEqual({ cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
    expect(after.stats).toEqual(zero);
  });
});
