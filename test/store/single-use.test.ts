import { afterAll, beforeEach, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import { SingleUseIds } from '../../packages/broker/src/store/single-use.js';
import { describeEachStore } from '../support/stores.js';

const row = (jti: string) => ({ jkt: 'thumbprint', jti, expires_at: Date.now() + 60_000 });

/**
 * Single-use ids written together in one transaction: the replay check of every DPoP proof and
 * client assertion the broker accepts. Replays must be refused however the ids are batched,
 * and nothing may be answered as first-seen unless it is durably stored.
 */
describeEachStore('single-use ids, written in batches', (fixture) => {
  let store: Store;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    store = await fixture.open();
  });

  it('answers first-seen exactly once per id, even for replays arriving in the same batch', async () => {
    const ids = new SingleUseIds(store);
    const answers = await Promise.all([
      ids.remember('dpop_jtis', row('a')),
      ids.remember('dpop_jtis', row('a')),
      ids.remember('dpop_jtis', row('b')),
      ids.remember('dpop_jtis', { ...row('a'), jkt: 'another key' }),
      ids.remember('client_assertion_jtis', { principal_id: 'prn_x', jti: 'a', expires_at: Date.now() }),
    ]);
    expect(answers).toEqual([true, false, true, true, true]);
    // A later batch (another replica's view: the store) refuses them all again.
    expect(
      await Promise.all([ids.remember('dpop_jtis', row('a')), ids.remember('dpop_jtis', row('b'))]),
    ).toEqual([false, false]);
    expect(await new SingleUseIds(store).remember('dpop_jtis', row('b'))).toBe(false);
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

  it('writes a thousand concurrent ids in a handful of transactions, each answered once committed', async () => {
    const ids = new SingleUseIds(store);
    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => ids.remember('dpop_jtis', row(`j${i}`))),
    );
    expect(answers.every(Boolean)).toBe(true);
    const count = await store.db
      .selectFrom('dpop_jtis')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1000);
  });

  it('fails every caller of a batch whose transaction fails, and takes none of its ids as seen', async () => {
    const ids = new SingleUseIds(store);
    await store.close();
    const outcomes = await Promise.allSettled([
      ids.remember('dpop_jtis', row('x')),
      ids.remember('dpop_jtis', row('y')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    const reopened = await fixture.open();
    expect(await new SingleUseIds(reopened).remember('dpop_jtis', row('x'))).toBe(true);
  });
});
