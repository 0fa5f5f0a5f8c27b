import type { RevocationEvent } from '@tether-broker/protocol';
import { afterAll, beforeEach, expect, it } from 'vitest';
import { ManualClock } from '../../packages/broker/src/domain/clock.js';
import { bootstrapTenant } from '../../packages/broker/src/records/bootstrap.js';
import { RevocationFanout } from '../../packages/broker/src/revocation/fanout.js';
import {
  announceOnCommit,
  appendRevocationEvent,
  appendRevocationEventToEveryTenant,
  readRevocationLog,
  revocationHead,
} from '../../packages/broker/src/revocation/log.js';
import { inTransaction, type Store } from '../../packages/broker/src/store/database.js';
import { describeEachStore } from '../support/stores.js';

const ended = (sid: string): RevocationEvent => ({
  type: 'session_ended',
  data: { sid, reason: 'revoked', session_exp: 1_800_000_000 },
});

describeEachStore('revocation log', (fixture) => {
  let store: Store;
  let acme: string;
  let globex: string;
  const clock = new ManualClock();
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    store = await fixture.open();
    acme = (await bootstrapTenant(store, clock, { tenantName: 'acme', adminName: 'root' })).tenant.id;
    globex = (await bootstrapTenant(store, clock, { tenantName: 'globex', adminName: 'root' })).tenant.id;
  });

  const append = (tenantId: string, event: RevocationEvent) =>
    inTransaction(store, (tx) => appendRevocationEvent(tx, tenantId, clock.now(), event));

  it('numbers each tenant’s events 1, 2, 3… on its own and reads them back in order', async () => {
    expect(await revocationHead(store, acme)).toBe(0);
    expect((await append(acme, ended('ses_a1'))).seq).toBe(1);
    expect((await append(acme, ended('ses_a2'))).seq).toBe(2);
    expect((await append(globex, ended('ses_g1'))).seq).toBe(1);
    expect((await append(acme, { type: 'tenant_cutoff', data: { before: 1_767_000_000 } })).seq).toBe(3);

    expect(await revocationHead(store, acme)).toBe(3);
    expect(await revocationHead(store, globex)).toBe(1);
    const log = await readRevocationLog(store, acme, 0, 100);
    expect(log.map((e) => [e.seq, e.event])).toEqual([
      [1, ended('ses_a1')],
      [2, ended('ses_a2')],
      [3, { type: 'tenant_cutoff', data: { before: 1_767_000_000 } }],
    ]);
    expect((await readRevocationLog(store, acme, 1, 1)).map((e) => e.seq)).toEqual([2]);
    expect(await readRevocationLog(store, globex, 1, 100)).toEqual([]);
  });

  it('gives up the number of a rolled-back append: no gap, and no wake-up', async () => {
    const fanout = new RevocationFanout();
    const woken: number[] = [];
    fanout.subscribe(acme, (seq) => woken.push(seq));
    await expect(
      inTransaction(store, async (tx) => {
        announceOnCommit(tx, fanout, [await appendRevocationEvent(tx, acme, clock.now(), ended('ses_x'))]);
        throw new Error('the state change failed');
      }),
    ).rejects.toThrow('the state change failed');
    expect(woken).toEqual([]);
    expect(await revocationHead(store, acme)).toBe(0);

    await inTransaction(store, async (tx) => {
      announceOnCommit(tx, fanout, [await appendRevocationEvent(tx, acme, clock.now(), ended('ses_y'))]);
      // Not before the commit.
      expect(woken).toEqual([]);
    });
    expect(woken).toEqual([1]);
    expect((await readRevocationLog(store, acme, 0, 10)).map((e) => e.seq)).toEqual([1]);
  });

  it('appends a broker-wide event to every tenant’s log, each at its own next position', async () => {
    await append(acme, ended('ses_a1'));
    const fanout = new RevocationFanout();
    const woken: [string, number][] = [];
    fanout.subscribe(acme, (seq) => woken.push([acme, seq]));
    fanout.subscribe(globex, (seq) => woken.push([globex, seq]));
    await inTransaction(store, async (tx) =>
      announceOnCommit(
        tx,
        fanout,
        await appendRevocationEventToEveryTenant(tx, clock.now(), {
          type: 'key_retired',
          data: { kid: 'k1' },
        }),
      ),
    );
    expect((await readRevocationLog(store, acme, 1, 10)).map((e) => [e.seq, e.event.type])).toEqual([
      [2, 'key_retired'],
    ]);
    expect((await readRevocationLog(store, globex, 0, 10)).map((e) => [e.seq, e.event.type])).toEqual([
      [1, 'key_retired'],
    ]);
    expect(new Map(woken)).toEqual(
      new Map([
        [acme, 2],
        [globex, 1],
      ]),
    );
  });

  it('a reader following seq > last never skips an event, however the writers interleave', async () => {
    const writers = 40;
    // Each writer holds its transaction open a little after taking its number, so commits
    // would come out of order if numbers were not handed out under the head lock.
    const pause = () => new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 8)));
    const writing = Promise.all(
      Array.from({ length: writers }, (_, i) =>
        inTransaction(store, async (tx) => {
          await pause();
          const entry = await appendRevocationEvent(tx, acme, clock.now(), ended(`ses_${i}`));
          await pause();
          return entry.seq;
        }),
      ),
    );
    const seen: number[] = [];
    const deadline = Date.now() + 20_000;
    while (seen.length < writers) {
      if (Date.now() > deadline) throw new Error(`the reader saw only ${seen.length} events`);
      const last = seen.at(-1) ?? 0;
      for (const entry of await readRevocationLog(store, acme, last, 100)) {
        // Had event n+1 become visible before event n, the reader would move past n for good.
        expect(entry.seq).toBe((seen.at(-1) ?? 0) + 1);
        seen.push(entry.seq);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect((await writing).sort((a, b) => a - b)).toEqual(seen);
  });
});
