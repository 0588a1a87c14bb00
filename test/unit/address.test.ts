// Addresses and endpoints: parsing, canonical text (RFC 5952), the data plane's 16-byte form, bad input.
import { describe, expect, it } from 'vitest';
import {
  AF_INET,
  AF_INET6,
  addressFromBytes,
  addressFromData,
  addressToData,
  afToFamily,
  canonicalAddress,
  compareAddresses,
  familyToAf,
  formatEndpoint,
  maskAddress,
  netmaskToPrefix,
  parseAddress,
  parseEndpoint,
  parsePort,
  prefixToNetmask,
  sameAddress,
  splitEndpoint,
} from '../../src/lb/address.js';
import { isXdpvsError } from '../../src/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isXdpvsError(e) ? e.code : `not an XdpvsError: ${String(e)}`;
  }
  return undefined;
}

describe('parseAddress', () => {
  it('parses IPv4 into 4 network-order bytes', () => {
    const a = parseAddress('198.18.0.1');
    expect(a.family).toBe('inet');
    expect([...a.bytes]).toEqual([198, 18, 0, 1]);
    expect(a.text).toBe('198.18.0.1');
  });

  it('parses IPv6 into 16 network-order bytes', () => {
    const a = parseAddress('fd00::1:2');
    expect(a.family).toBe('inet6');
    expect(Buffer.from(a.bytes).toString('hex')).toBe('fd000000000000000000000000010002');
  });

  it.each([
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'], // tie: the first run is shortened
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // the longest run wins over the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not shortened
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'], // not even the last one
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['FD00:0:0:0:0:0:0:0', 'fd00::'],
    ['fd00::0042', 'fd00::42'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'], // mapped addresses in plain hex (mixed notation not used)
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['1::1.2.3.4', '1::102:304'],
    ['::1.2.3.4', '::102:304'],
    ['abcd:ef01:2345:6789:abcd:ef01:2345:6789', 'abcd:ef01:2345:6789:abcd:ef01:2345:6789'],
  ])('canonical IPv6 %s -> %s', (input, canonical) => {
    expect(canonicalAddress(input)).toBe(canonical);
    expect(canonicalAddress(canonical)).toBe(canonical);
  });

  it('agrees with the WHATWG URL serializer (RFC 5952 without mixed notation) on random addresses', () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let i = 0; i < 2000; i++) {
      // Zero groups are common so that runs of every length and position occur.
      const groups = Array.from({ length: 8 }, () => (rand(3) === 0 ? rand(0x10000) : 0));
      const full = groups.map((g) => g.toString(16).toUpperCase().padStart(rand(2) ? 4 : 1, '0')).join(':');
      const expected = new URL(`http://[${full}]/`).hostname.slice(1, -1);
      expect(canonicalAddress(full), full).toBe(expected);
      expect(Buffer.from(parseAddress(full).bytes).toString('hex')).toBe(
        groups.map((g) => g.toString(16).padStart(4, '0')).join(''),
      );
    }
  });

  it('enforces a family when asked', () => {
    expect(parseAddress('198.18.0.1', 'inet').family).toBe('inet');
    expect(codeOf(() => parseAddress('fd00::1', 'inet'))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => parseAddress('198.18.0.1', 'inet6'))).toBe('XDPVS_ERR_INVALID');
  });

  it.each([
    '',
    '300.1.1.1',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    ' 1.2.3.4',
    '1.2.3.4 ',
    'hello',
    'localhost',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '12345::1',
    '[::1]',
    'fe80::1%eth0',
    '198.18.0.1:80',
    '::ffff:300.1.1.1',
  ])('rejects %j with XDPVS_ERR_INVALID', (text) => {
    expect(codeOf(() => parseAddress(text))).toBe('XDPVS_ERR_INVALID');
  });

  it('names what is wrong', () => {
    expect(() => parseAddress('300.1.1.1')).toThrow('invalid IPv4 address "300.1.1.1"');
    expect(() => parseAddress('fe80::1%eth0')).toThrow(/zone/);
    expect(() => parseAddress('1::2::3')).toThrow('invalid IPv6 address "1::2::3"');
    expect(() => parseAddress('')).toThrow('empty address');
  });
});

describe('data plane form', () => {
  it('puts IPv4 in the first 4 bytes and zeroes the other 12', () => {
    const d = addressToData(parseAddress('198.18.0.1'));
    expect(d.length).toBe(16);
    expect(d.toString('hex')).toBe('c6120001000000000000000000000000');
  });

  it('keeps IPv6 bytes in network order', () => {
    expect(addressToData(parseAddress('fd00::42')).toString('hex')).toBe('fd000000000000000000000000000042');
  });

  it.each(['198.18.0.1', '0.0.0.0', '255.255.255.255', 'fd00::1', '::', '2001:db8:1:2:3:4:5:6'])(
    'round-trips %s with family name and kernel number',
    (text) => {
      const a = parseAddress(text);
      const data = addressToData(a);
      expect(addressFromData(data, a.family)).toEqual(a);
      expect(addressFromData(data, familyToAf(a.family))).toEqual(a);
      expect(addressFromBytes(a.bytes)).toEqual(a);
      expect(sameAddress(addressFromData(data, a.family), a)).toBe(true);
    },
  );

  it('rejects bad data plane input', () => {
    const bad = Buffer.alloc(16);
    bad[15] = 1;
    expect(codeOf(() => addressFromData(bad, AF_INET))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => addressFromData(Buffer.alloc(4), 'inet'))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => addressFromData(Buffer.alloc(16), 7))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => addressFromBytes(new Uint8Array(5)))).toBe('XDPVS_ERR_INVALID');
  });

  it('maps families to the kernel numbers', () => {
    expect(AF_INET).toBe(2);
    expect(AF_INET6).toBe(10);
    expect(familyToAf('inet')).toBe(2);
    expect(familyToAf('inet6')).toBe(10);
    expect(afToFamily(2)).toBe('inet');
    expect(afToFamily(10)).toBe('inet6');
    expect(codeOf(() => afToFamily(0))).toBe('XDPVS_ERR_INVALID');
  });

  it('orders addresses: IPv4 before IPv6, then as unsigned numbers', () => {
    const sorted = ['fd00::1', '10.0.0.10', '::ffff:c612:1', '9.255.255.255', '255.0.0.1', '10.0.0.9', '::', '0.0.0.0']
      .map((t) => parseAddress(t))
      .sort(compareAddresses)
      .map((a) => a.text);
    expect(sorted).toEqual(['0.0.0.0', '9.255.255.255', '10.0.0.9', '10.0.0.10', '255.0.0.1', '::', '::ffff:c612:1', 'fd00::1']);
    expect(compareAddresses(parseAddress('fd00::1'), parseAddress('FD00:0::1'))).toBe(0);
    expect(compareAddresses(parseAddress('128.0.0.0'), parseAddress('1.0.0.0'))).toBeGreaterThan(0);
    expect(compareAddresses(parseAddress('255.255.255.255'), parseAddress('::'))).toBeLessThan(0);
  });

  it('compares addresses by family and bytes', () => {
    expect(sameAddress(parseAddress('fd00::1'), parseAddress('FD00:0::0001'))).toBe(true);
    expect(sameAddress(parseAddress('fd00::1'), parseAddress('fd00::2'))).toBe(false);
    expect(sameAddress(parseAddress('0.0.0.0'), parseAddress('::'))).toBe(false);
  });
});

describe('ports and endpoints', () => {
  it.each([
    ['1', 1],
    ['80', 80],
    ['65535', 65535],
    [443, 443],
  ] as const)('parses port %j', (text, port) => {
    expect(parsePort(text)).toBe(port);
  });

  it.each(['0', '65536', '-1', '+80', ' 80', '80 ', '1e3', '0x50', '', 'http', 0, 65536, 80.5, NaN])(
    'rejects port %j',
    (text) => {
      expect(codeOf(() => parsePort(text as string | number))).toBe('XDPVS_ERR_INVALID');
    },
  );

  it('parses ADDR:PORT and [V6ADDR]:PORT', () => {
    const v4 = parseEndpoint('198.18.0.1:80');
    expect(v4.address.text).toBe('198.18.0.1');
    expect(v4.port).toBe(80);
    const v6 = parseEndpoint('[FD00:0::0001]:443');
    expect(v6.address.text).toBe('fd00::1');
    expect(v6.address.family).toBe('inet6');
    expect(v6.port).toBe(443);
  });

  it('lets the port out only when the caller allows it', () => {
    expect(parseEndpoint('198.18.0.1', { portOptional: true })).toMatchObject({ port: undefined });
    expect(parseEndpoint('[fd00::1]', { portOptional: true })).toMatchObject({ port: undefined });
    const bare = parseEndpoint('fd00::1:80', { portOptional: true });
    expect(bare.address.text).toBe('fd00::1:80'); // a bare IPv6 address cannot carry a port
    expect(bare.port).toBeUndefined();
    expect(parseEndpoint('198.18.0.1:8080', { portOptional: true }).port).toBe(8080);
    expect(() => parseEndpoint('198.18.0.1')).toThrow(/missing port/);
    expect(() => parseEndpoint('[fd00::1]')).toThrow(/missing port/);
    expect(() => parseEndpoint('fd00::1:80')).toThrow(/\[ADDR\]:PORT/);
  });

  it.each([
    '',
    ':80',
    '198.18.0.1:',
    '198.18.0.1:0',
    '198.18.0.1:65536',
    '198.18.0.1:http',
    '198.18.0.1:80:90',
    '300.1.1.1:80',
    '[198.18.0.1]:80',
    '[fd00::1',
    '[fd00::1]80',
    '[fd00::1]:',
    '[fd00::1]:0',
    '[fe80::1%eth0]:80',
    '[]:80',
    'example.com:80',
  ])('rejects endpoint %j with XDPVS_ERR_INVALID', (text) => {
    expect(codeOf(() => parseEndpoint(text))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => parseEndpoint(text, { portOptional: true }))).toBe('XDPVS_ERR_INVALID');
  });

  it('splits an endpoint without the port rules, for callers with their own (ipvsadm: port 0, port names)', () => {
    const parts = (text: string, portOptional = false) => {
      const { address, portText } = splitEndpoint(text, { portOptional });
      return { address: address.text, family: address.family, portText };
    };
    expect(parts('198.18.0.1:0')).toEqual({ address: '198.18.0.1', family: 'inet', portText: '0' });
    expect(parts('198.18.0.1:http')).toEqual({ address: '198.18.0.1', family: 'inet', portText: 'http' });
    expect(parts('198.18.0.1:')).toEqual({ address: '198.18.0.1', family: 'inet', portText: '' });
    expect(parts('[FD00::1]:80')).toEqual({ address: 'fd00::1', family: 'inet6', portText: '80' });
    expect(parts('[fd00::1]')).toEqual({ address: 'fd00::1', family: 'inet6', portText: undefined });
    expect(parts('198.18.0.1')).toEqual({ address: '198.18.0.1', family: 'inet', portText: undefined });
    expect(parts('fd00::1:80', true)).toEqual({ address: 'fd00::1:80', family: 'inet6', portText: undefined });
    expect(() => splitEndpoint('fd00::1:80')).toThrow(/\[ADDR\]:PORT/);
    for (const bad of ['', 'lb.example.com:80', '[198.18.0.1]:80', '[fd00::1]80', '[fd00::1', '1.2.3:80', '010.0.0.1:80']) {
      expect(codeOf(() => splitEndpoint(bad, { portOptional: true })), bad).toBe('XDPVS_ERR_INVALID');
    }
  });

  it('formats endpoints as ipvsadm prints them and round-trips', () => {
    expect(formatEndpoint(parseAddress('198.18.0.1'), 80)).toBe('198.18.0.1:80');
    expect(formatEndpoint(parseAddress('fd00:0::1'), 443)).toBe('[fd00::1]:443');
    expect(formatEndpoint('FD00::1')).toBe('fd00::1');
    for (const text of ['198.18.0.1:80', '[fd00::1]:443', '[2001:db8::1:0:0:1]:65535']) {
      const ep = parseEndpoint(text);
      expect(formatEndpoint(ep.address, ep.port)).toBe(text);
    }
  });
});

describe('prefixes', () => {
  it('converts prefix lengths and netmasks', () => {
    expect(prefixToNetmask(24).text).toBe('255.255.255.0');
    expect(prefixToNetmask(0).text).toBe('0.0.0.0');
    expect(prefixToNetmask(32).text).toBe('255.255.255.255');
    expect(prefixToNetmask(17).text).toBe('255.255.128.0');
    expect(prefixToNetmask(64, 'inet6').text).toBe('ffff:ffff:ffff:ffff::');
    expect(prefixToNetmask(128, 'inet6').text).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    for (let p = 0; p <= 32; p++) expect(netmaskToPrefix(prefixToNetmask(p))).toBe(p);
    for (let p = 0; p <= 128; p++) expect(netmaskToPrefix(prefixToNetmask(p, 'inet6'))).toBe(p);
    expect(netmaskToPrefix('255.255.255.128')).toBe(25);
  });

  it('rejects non-contiguous masks and out-of-range prefixes', () => {
    expect(codeOf(() => netmaskToPrefix('255.0.255.0'))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => prefixToNetmask(33))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => prefixToNetmask(-1))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => prefixToNetmask(129, 'inet6'))).toBe('XDPVS_ERR_INVALID');
  });

  it('masks addresses', () => {
    expect(maskAddress(parseAddress('198.18.3.4'), 16).text).toBe('198.18.0.0');
    expect(maskAddress(parseAddress('198.18.3.255'), 25).text).toBe('198.18.3.128');
    expect(maskAddress(parseAddress('fd00:1:2:3:4:5:6:7'), 48).text).toBe('fd00:1:2::');
  });
});
