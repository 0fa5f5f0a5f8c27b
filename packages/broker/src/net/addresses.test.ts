import { describe, expect, it } from 'vitest';
import { isNonPublicAddress } from './addresses.js';

describe('isNonPublicAddress', () => {
  it('lets public unicast addresses through, of both families', () => {
    for (const address of ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700::1111', '2a00:1450:4001::200e'])
      expect(isNonPublicAddress(address), address).toBe(false);
  });

  it('refuses loopback, private, link-local, shared, reserved and multicast ranges', () => {
    for (const address of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'ff02::1',
    ])
      expect(isNonPublicAddress(address), address).toBe(true);
  });

  it('refuses IPv6 spellings of IPv4 addresses, public ones included', () => {
    for (const address of [
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:8.8.8.8',
      '64:ff9b::7f00:1',
      '2002:7f00:1::',
    ])
      expect(isNonPublicAddress(address), address).toBe(true);
  });

  it('answers true for anything that is not an IP literal', () => {
    for (const address of ['localhost', '2130706433', '0x7f.1', '', 'example.com'])
      expect(isNonPublicAddress(address), address).toBe(true);
  });
});
