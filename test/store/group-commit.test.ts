import { afterAll, afterEach, beforeEach, expect, it, vi } from 'vitest';
import { inTransaction, type Store } from '../../packages/broker/src/store/database.js';
import { ANNOUNCED_WAIT_MS, announceUnit } from '../../packages/broker/src/store/group-commit.js';
import { describeEachStore, describeOnSqlite } from '../support/stores.js';

const row = (jti: string) => ({ jkt: 'k', jti, expires_at: 1 });

/**
 * `inTransaction` as its callers rely on it, whether units of work commit alone (PostgreSQL) or
 * in a group (SQLite's group commit): each unit's writes stand or fall with it alone, its
 * effects run only once it is committed, and its own error reaches its own caller.
 */
describeEachStore('inTransaction with units of work arriving together', (fixture) => {
  let store: Store;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    store = await fixture.open();
  });

  it('rolls back a failing unit alone; the others commit, with their effects, in order', async () => {
    const effects: string[] = [];
    const unit = (jti: string, fail: boolean) =>
      inTransaction(store, async (tx) => {
        await tx.db.insertInto('dpop_jtis').values(row(jti)).execute();
        tx.onCommit(() => {
          effects.push(jti);
        });
        if (fail) throw new Error(`unit ${jti} refused`);
        return jti;
      });
    const outcomes = await Promise.allSettled([
      unit('a', false),
      unit('b', true),
      unit('c', false),
      // A constraint violation in one unit (a replayed id) does not spoil the rest.
      unit('a', false),
      unit('d', false),
    ]);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([
      'a',
      'unit b refused',
      'c',
      expect.stringMatching(/unique|UNIQUE|duplicate/),
      'd',
    ]);
    const stored = await store.db.selectFrom('dpop_jtis').select('jti').orderBy('jti').execute();
    expect(stored.map((r) => r.jti)).toEqual(['a', 'c', 'd']);
    // Concurrent units on PostgreSQL commit in any order; each effect runs once, after its commit.
    expect([...effects].sort()).toEqual(['a', 'c', 'd']);
  });

  it('sees the writes of the units before it on SQLite, as serial execution would', async () => {
    const counts = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        inTransaction(store, async (tx) => {
          await tx.db
            .insertInto('dpop_jtis')
            .values(row(`j${i}`))
            .execute();
          const n = await tx.db
            .selectFrom('dpop_jtis')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow();
          return Number(n.n);
        }),
      ),
    );
    if (fixture.dialect === 'sqlite') {
      // One writer: each unit saw itself and every unit before it, 1, 2, …, 20.
      expect([...counts].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    } else {
      // Concurrent transactions (read committed): each saw at least its own write.
      expect(counts.every((n) => n >= 1 && n <= 20)).toBe(true);
    }
    const total = await store.db
      .selectFrom('dpop_jtis')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(total.n)).toBe(20);
  });
});

/** Turns of the event loop: a group that was going to commit without waiting has committed by then. */
async function loopTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Announced units (a token request whose signatures are being verified): a group about to
 * commit waits for them, so they share its fsync, but never longer than ANNOUNCED_WAIT_MS.
 */
describeOnSqlite('group commit with announced units', (fixture) => {
  let store: Store;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    store = await fixture.open();
    // The wait's timer only moves when a test says so; the loop's turns run as they do.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const unit = (jti: string) =>
    inTransaction(store, async (tx) => {
      await tx.db.insertInto('dpop_jtis').values(row(jti)).execute();
      return jti;
    });

  it('holds a group until the announced unit arrives, then commits both together', async () => {
    const withdraw = announceUnit(store.db);
    let firstDone = false;
    const first = unit('first').then((v) => {
      firstDone = true;
      return v;
    });
    await loopTurns(10);
    expect(firstDone).toBe(false);
    withdraw();
    const second = unit('second');
    expect(await Promise.all([first, second])).toEqual(['first', 'second']);
    // Withdrawing twice changes nothing: the next unit commits at once.
    withdraw();
    expect(await unit('third')).toBe('third');
  });

  it('commits without the announced unit once the wait is over', async () => {
    const withdraw = announceUnit(store.db);
    let done = false;
    const waiting = unit('alone').then(() => {
      done = true;
    });
    await loopTurns(10);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(ANNOUNCED_WAIT_MS);
    await waiting;
    expect(done).toBe(true);
    withdraw();
  });

  it('does not wait for anything on a store without group commit', () => {
    expect(announceUnit({})).toBeTypeOf('function');
  });
});
