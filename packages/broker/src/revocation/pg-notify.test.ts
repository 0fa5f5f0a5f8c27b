import { describe, expect, it } from 'vitest';
import { openStore } from '../store/database.js';
import { RevocationFanout } from './fanout.js';
import { parseRevocationNotification, RevocationNotifyListener, revocationChannel } from './pg-notify.js';

describe('revocation channel', () => {
  it('is named after the schema, so brokers of other schemas in the same database are not woken', () => {
    expect(revocationChannel('public')).toBe('tether_revocations_public');
    expect(revocationChannel('tether_t_abc_0123')).toBe('tether_revocations_tether_t_abc_0123');
    expect(revocationChannel('a')).not.toBe(revocationChannel('b'));
  });

  it('hashes a schema name too long for a PostgreSQL identifier (63 bytes), keeping names apart', () => {
    const long = 's'.repeat(63);
    const other = `${'s'.repeat(62)}t`;
    expect(Buffer.byteLength(revocationChannel(long))).toBeLessThanOrEqual(63);
    expect(revocationChannel(long)).toMatch(/^tether_revocations_[0-9a-f]{40}$/);
    expect(revocationChannel(long)).not.toBe(revocationChannel(other));
    // The longest name kept as it is, and the shortest hashed one.
    expect(revocationChannel('x'.repeat(44))).toBe(`tether_revocations_${'x'.repeat(44)}`);
    expect(revocationChannel('x'.repeat(45))).toMatch(/^tether_revocations_[0-9a-f]{40}$/);
  });
});

describe('revocation notification payload', () => {
  it('reads <tenant>:<seq>', () => {
    expect(parseRevocationNotification('ten_01hzx:1')).toEqual({ tenantId: 'ten_01hzx', seq: 1 });
    expect(parseRevocationNotification('t:9007199254740991')).toEqual({ tenantId: 't', seq: 2 ** 53 - 1 });
  });

  it.each([
    undefined,
    '',
    'ten',
    ':1',
    'ten:',
    'ten:0',
    'ten:-1',
    'ten:01',
    'ten:1.5',
    'ten:1e3',
    'a:b:1',
    'ten 1:1',
    'ten:1 ',
    'ten:99999999999999999',
  ])('refuses %j', (payload) => {
    expect(parseRevocationNotification(payload)).toBeUndefined();
  });
});

describe('revocation listener on SQLite', () => {
  it('is not started: one process, nothing to listen to', async () => {
    const store = openStore({ location: ':memory:' });
    try {
      const logs: string[] = [];
      const log = {
        debug: () => undefined,
        info: () => undefined,
        warn: (_: object, m: string) => logs.push(m),
      };
      expect(
        await RevocationNotifyListener.start({ store, fanout: new RevocationFanout(), logger: log }),
      ).toBe(undefined);
      expect(logs).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
