import type { RevocationEvent } from '@tether-broker/protocol';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { ManualClock } from '../../packages/broker/src/domain/clock.js';
import { bootstrapTenant } from '../../packages/broker/src/records/bootstrap.js';
import { RevocationFanout } from '../../packages/broker/src/revocation/fanout.js';
import { appendRevocationEvent } from '../../packages/broker/src/revocation/log.js';
import {
  type RevocationListenerOptions,
  RevocationNotifyListener,
} from '../../packages/broker/src/revocation/pg-notify.js';
import { inTransaction, openStore, type Store } from '../../packages/broker/src/store/database.js';
import { eventually } from '../support/eventually.js';
import { describeOnPostgres } from '../support/stores.js';

const ended = (sid: string): RevocationEvent => ({
  type: 'session_ended',
  data: { sid, reason: 'revoked', session_exp: 1_800_000_000 },
});

/** What a fanout was told, in order, as `<tenant>:<seq>`. */
function recorder(fanout: RevocationFanout, tenants: string[]): string[] {
  const heard: string[] = [];
  for (const tenant of tenants) fanout.subscribe(tenant, (seq) => heard.push(`${tenant}:${seq}`));
  return heard;
}

/** A sleep the test releases by hand: the listener's backoff waits on it. */
class HeldSleep {
  readonly requested: number[] = [];
  readonly #pending: (() => void)[] = [];
  readonly sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      this.requested.push(ms);
      this.#pending.push(resolve);
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  release(): void {
    for (const resolve of this.#pending.splice(0)) resolve();
  }
}

describeOnPostgres('revocation NOTIFY listener', (fixture) => {
  const clock = new ManualClock();
  let store: Store & { location: string };
  let acme: string;
  let globex: string;
  const logs: string[] = [];
  const logger = {
    debug: (_: object, msg: string) => void logs.push(`debug ${msg}`),
    info: (_: object, msg: string) => void logs.push(`info ${msg}`),
    warn: (_: object, msg: string) => void logs.push(`warn ${msg}`),
  };
  const opened: RevocationNotifyListener[] = [];
  const extraStores: Store[] = [];
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    logs.length = 0;
    store = await fixture.open();
    acme = (await bootstrapTenant(store, clock, { tenantName: 'acme', adminName: 'root' })).tenant.id;
    globex = (await bootstrapTenant(store, clock, { tenantName: 'globex', adminName: 'root' })).tenant.id;
  });
  afterEach(async () => {
    for (const listener of opened.splice(0)) await listener.close();
    for (const s of extraStores.splice(0)) await s.close();
  });

  async function listen(options: Partial<RevocationListenerOptions> = {}): Promise<RevocationNotifyListener> {
    const listener = await RevocationNotifyListener.start({
      store,
      fanout: new RevocationFanout(),
      logger,
      ...options,
    });
    if (listener === undefined) throw new Error('expected a listener on PostgreSQL');
    opened.push(listener);
    return listener;
  }

  const append = (target: Store, tenantId: string, sid: string) =>
    inTransaction(target, (tx) => appendRevocationEvent(tx, tenantId, clock.now(), ended(sid)));

  it('hears every commit of another process, its own included, and wakes that tenant', async () => {
    const fanout = new RevocationFanout();
    const listener = await listen({ fanout });
    expect(listener.listening).toBe(true);
    const heard = recorder(fanout, [acme, globex]);
    // Another process: a store of its own on the same schema, as a second replica has.
    const other = openStore({ location: store.location, pgSchema: store.pgSchema as string });
    extraStores.push(other);
    await append(other, acme, 'ses_1');
    await append(other, globex, 'ses_2');
    await inTransaction(store, async (tx) => {
      // Two events in one transaction: one NOTIFY each, delivered together at commit.
      await appendRevocationEvent(tx, acme, clock.now(), ended('ses_3'));
      await appendRevocationEvent(tx, acme, clock.now(), ended('ses_4'));
    });
    await eventually(() => heard.length === 4);
    expect(heard).toEqual([`${acme}:1`, `${globex}:1`, `${acme}:2`, `${acme}:3`]);
  });

  it('hears nothing of a transaction that rolled back, nor of another schema', async () => {
    const fanout = new RevocationFanout();
    await listen({ fanout });
    const elsewhere = await fixture.open();
    const stranger = (await bootstrapTenant(elsewhere, clock, { tenantName: 'x', adminName: 'root' })).tenant
      .id;
    const heard = recorder(fanout, [acme, globex, stranger]);

    await expect(
      inTransaction(store, async (tx) => {
        await appendRevocationEvent(tx, globex, clock.now(), ended('ses_rolled_back'));
        throw new Error('the state change failed');
      }),
    ).rejects.toThrow('the state change failed');
    await append(elsewhere, stranger, 'ses_other_schema');
    // PostgreSQL delivers in commit order: once this one is heard, the others would have been.
    await append(store, acme, 'ses_committed');
    await eventually(() => heard.length > 0);
    expect(heard).toEqual([`${acme}:1`]);
  });

  it('ignores a NOTIFY on its channel that is not a revocation position', async () => {
    const fanout = new RevocationFanout();
    const listener = await listen({ fanout });
    const heard = recorder(fanout, [acme]);
    for (const payload of ['', 'garbage', `${acme}:0`, `${acme}:-4`, `${acme}:1:2`])
      await sql`select pg_notify(${listener.channel}, ${payload})`.execute(store.db);
    await append(store, acme, 'ses_1');
    await eventually(() => heard.length > 0);
    expect(heard).toEqual([`${acme}:1`]);
    expect(logs.filter((l) => l === 'debug ignored a malformed revocation notification')).toHaveLength(5);
    expect(listener.listening).toBe(true);
  });

  it('reconnects after losing its connection and wakes every tenant, since notifications were lost', async () => {
    const fanout = new RevocationFanout();
    const held = new HeldSleep();
    const listener = await listen({ fanout, sleep: held.sleep, retryInitialMs: 250 });
    const heard = recorder(fanout, [acme, globex]);
    const killed = listener.backendPid;
    expect(killed).toEqual(expect.any(Number));

    // The database ends the connection (a restart, a failover, an operator).
    await sql`select pg_terminate_backend(${killed})`.execute(store.db);
    await eventually(() => !listener.listening && held.requested.length === 1);
    expect(held.requested).toEqual([250]);
    expect(logs).toContain('warn revocation listener lost its connection; reconnecting');
    // Committed while nobody listened: this replica gets no NOTIFY for it.
    await append(store, acme, 'ses_missed');

    held.release();
    await eventually(() => heard.length === 2);
    // Every tenant with streams is woken with its head, not only the one that changed.
    expect(heard.sort()).toEqual([`${acme}:1`, `${globex}:0`].sort());
    expect(listener.listening).toBe(true);
    expect(listener.backendPid).not.toBe(killed);
    expect(logs).toContain(
      "info revocation listener reconnected; woke every tenant's streams to catch up from the log",
    );

    // And the new connection hears what follows.
    heard.length = 0;
    await append(store, globex, 'ses_after');
    await eventually(() => heard.length === 1);
    expect(heard).toEqual([`${globex}:1`]);
  });

  it('keeps retrying with a doubling backoff while the database cannot be reached, without failing the start', async () => {
    // Nothing listens on port 1: every attempt is refused at once.
    const unreachable = openStore({ location: 'postgres://postgres@127.0.0.1:1/test', pgSchema: 'public' });
    extraStores.push(unreachable);
    const held = new HeldSleep();
    const listener = await listen({
      store: unreachable,
      sleep: held.sleep,
      retryInitialMs: 100,
      retryMaxMs: 500,
    });
    expect(listener.listening).toBe(false);
    for (let attempt = 2; attempt <= 5; attempt++) {
      await eventually(() => held.requested.length === attempt - 1);
      held.release();
    }
    await eventually(() => held.requested.length === 5);
    expect(held.requested).toEqual([100, 200, 400, 500, 500]);
    expect(logs.filter((l) => l === 'warn revocation listener could not listen; will retry')).toHaveLength(5);
    // Closing stops the retries at once, even in the middle of a wait.
    await listener.close();
    expect(held.requested).toHaveLength(5);
  });

  it('closes its connection: no backend left listening on the channel', async () => {
    const listener = await listen();
    const pid = listener.backendPid;
    const alive = async () =>
      (
        await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`.execute(
          store.db,
        )
      ).rows[0]?.n;
    expect(await alive()).toBe(1);
    await listener.close();
    expect(listener.listening).toBe(false);
    // The server may take a moment to reap the backend after the client said goodbye.
    let left = await alive();
    for (let i = 0; i < 200 && left !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      left = await alive();
    }
    expect(left).toBe(0);
  });
});
