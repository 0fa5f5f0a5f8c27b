import { afterAll, beforeEach, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import { rememberOnce } from '../../packages/broker/src/store/single-use.js';
import { describeEachStore } from '../support/stores.js';

const row = (jti: string) => ({ jkt: 'thumbprint', jti, expires_at: Date.now() + 60_000 });

/**
 * Single-use ids: the replay check of every DPoP proof and client assertion the broker accepts.
 * Replays must be refused however the ids arrive together (on SQLite they share group commits),
 * and nothing may be answered as first-seen unless it is durably stored.
 */
describeEachStore('single-use ids arriving together', (fixture) => {
  let store: Store;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    store = await fixture.open();
  });

  it('answers first-seen exactly once per id, even for replays arriving at the same moment', async () => {
    const answers = await Promise.all([
      rememberOnce(store, 'dpop_jtis', row('a')),
      rememberOnce(store, 'dpop_jtis', row('a')),
      rememberOnce(store, 'dpop_jtis', row('b')),
      rememberOnce(store, 'dpop_jtis', { ...row('a'), jkt: 'another key' }),
      rememberOnce(store, 'client_assertion_jtis', {
        principal_id: 'prn_x',
        jti: 'a',
        expires_at: Date.now(),
      }),
    ]);
    // The two arrivals of (thumbprint, a) race (on PostgreSQL, on two connections): one wins.
    expect([answers[0], answers[1]].sort()).toEqual([false, true]);
    expect(answers.slice(2)).toEqual([true, true, true]);
    // Later arrivals (another replica's view: the store) are refused again.
    expect(
      await Promise.all([
        rememberOnce(store, 'dpop_jtis', row('a')),
        rememberOnce(store, 'dpop_jtis', row('b')),
      ]),
    ).toEqual([false, false]);
    const stored = await store.db
      .selectFrom('dpop_jtis')
      .select(['jkt', 'jti'])
      .orderBy('jti')
      .orderBy('jkt')
      .execute();
    expect(stored).toEqual([
      { jkt: 'another key', jti: 'a' },
      { jkt: 'thumbprint', jti: 'a' },
      { jkt: 'thumbprint', jti: 'b' },
    ]);
  });

  it('takes a thousand concurrent ids, each answered once committed', async () => {
    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => rememberOnce(store, 'dpop_jtis', row(`j${i}`))),
    );
    expect(answers.every(Boolean)).toBe(true);
    const count = await store.db
      .selectFrom('dpop_jtis')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1000);
  });

  it('fails every caller when the store cannot take the ids, and takes none of them as seen', async () => {
    await store.close();
    const outcomes = await Promise.allSettled([
      rememberOnce(store, 'dpop_jtis', row('x')),
      rememberOnce(store, 'dpop_jtis', row('y')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    const reopened = await fixture.open();
    expect(await rememberOnce(reopened, 'dpop_jtis', row('x'))).toBe(true);
  });
});
