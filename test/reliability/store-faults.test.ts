import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TcpProxy } from '../../faults/lib/tcp-proxy.mjs';
import { sweepOnce, sweepSteps } from '../../packages/broker/src/operations/sweeper.js';
import { inTransaction, openStore, type Store } from '../../packages/broker/src/store/database.js';
import { isStoreUnavailable } from '../../packages/broker/src/store/faults.js';
import { createClientAssertion } from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore, describeOnPostgres, type StoreFixture } from '../support/stores.js';

/**
 * Issue #10 items 1–4: a store that fails, hangs or fills answers 503 `store_unavailable`
 * (never 500), changes nothing, never kills the broker, and recovers by itself; `/readyz` tests
 * a write and answers within a second; faults after commit and in the sweeper are counted.
 */

/** A way to make the broker's store refuse writes, per dialect, and to heal it. */
interface Fault {
  /** The broker's store cannot be written (SQLite: full; PostgreSQL: unreachable). */
  breakWrites(): Promise<void>;
  heal(): Promise<void>;
  /** Reads still work while broken (SQLite full disk) or not (PostgreSQL unreachable). */
  readsSurvive: boolean;
}

const SQLITE_MAX_PAGES = 1_073_741_823;

async function faultyBroker(
  fixture: StoreFixture,
): Promise<{ b: TestBroker; fault: Fault; direct: Store; close(): Promise<void> }> {
  const direct = await fixture.open();
  if (fixture.dialect === 'sqlite') {
    const b = await startTestBroker(direct);
    const pages = async () =>
      Number((await sql<{ page_count: number }>`pragma page_count`.execute(direct.db)).rows[0]?.page_count);
    return {
      b,
      direct,
      // SQLite's own cap on the file's size: a write that needs a page fails with SQLITE_FULL,
      // exactly as on a full disk.
      fault: {
        readsSurvive: true,
        breakWrites: async () =>
          void (await sql.raw(`pragma max_page_count = ${await pages()}`).execute(direct.db)),
        heal: async () =>
          void (await sql.raw(`pragma max_page_count = ${SQLITE_MAX_PAGES}`).execute(direct.db)),
      },
      close: () => b.close(),
    };
  }
  const target = new URL(inject('pgUrl'));
  const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
  const through = new URL(target);
  through.hostname = '127.0.0.1';
  through.port = String(proxy.port);
  const store = openStore({
    location: through.toString(),
    ...(direct.pgSchema ? { pgSchema: direct.pgSchema } : {}),
    poolSize: 5,
    statementTimeoutMs: 400,
    connectTimeoutMs: 400,
  });
  const b = await startTestBroker(store);
  store.effectErrors = (err) => b.ctx.health.effectFailed(err);
  return {
    b,
    direct,
    fault: { readsSurvive: false, breakWrites: () => proxy.refuse(), heal: () => proxy.allow() },
    close: async () => {
      await b.close();
      await proxy.close();
    },
  };
}

async function rowCounts(store: Store): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  // Not `client_assertion_jtis`: an assertion presented is spent (single use, RFC 7523 §3)
  // even when the rest of its token request fails; the client makes a new one.
  for (const table of ['access_requests', 'sessions', 'audit_records', 'audit_heads', 'refresh_tokens']) {
    const { rows } = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(
      store.db,
    );
    counts[table] = Number(rows[0]?.n);
  }
  return counts;
}

describeEachStore('Store faults answer 503, change nothing and heal', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let fault: Fault;
  let direct: Store;
  let close: () => Promise<void>;
  let operatorToken: string;
  beforeAll(async () => {
    ({ b, fault, direct, close } = await faultyBroker(fixture));
    s = await setUpScenario(b);
    operatorToken = await s.operator.client.bearerToken();
  });
  afterAll(async () => {
    await close?.();
    await fixture.cleanup();
  });

  const askForAccess = () =>
    b.app.inject({
      method: 'POST',
      url: '/v1/requests',
      headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' },
      payload: { privilege: 'firewall-admin', ticket: 'NET-1', justification: 'store faults', duration: 600 },
    });

  it('refuses writes with 503 store_unavailable and Retry-After, OAuth with temporarily_unavailable, and heals', async () => {
    const before = await rowCounts(direct);
    await fault.breakWrites();
    try {
      const refused = await askForAccess();
      expect(refused.statusCode).toBe(503);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.json()).toMatchObject({ code: 'store_unavailable', status: 503 });
      expect(refused.headers['retry-after']).toBe('5');

      const tokenUrl = `${PUBLIC_URL}/oauth/token`;
      const token = await b.app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await createClientAssertion(s.operator.identity, {
            audience: tokenUrl,
            now: b.clock.now(),
          }),
        }).toString(),
      });
      // RFC 6749: a server fault is never the client's `invalid_request` / `invalid_client`.
      expect(token.statusCode).toBe(503);
      expect(token.json()).toMatchObject({ error: 'temporarily_unavailable' });
      expect(token.headers['retry-after']).toBe('5');

      const reads = await b.app.inject({
        method: 'GET',
        url: '/v1/requests',
        headers: { authorization: `Bearer ${operatorToken}` },
      });
      expect(reads.statusCode).toBe(fault.readsSurvive ? 200 : 503);

      const started = performance.now();
      const ready = await b.app.inject({ method: 'GET', url: '/readyz' });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({
        status: 'not_ready',
        readiness: fault.readsSurvive ? 'not_writable' : expect.stringMatching(/unreachable|timed_out/),
      });
      expect(await b.ctx.health.count('readiness')).toBeGreaterThan(0);
    } finally {
      await fault.heal();
    }
    expect(await rowCounts(direct)).toEqual(before);

    expect((await b.app.inject({ method: 'GET', url: '/readyz' })).json()).toMatchObject({ status: 'ready' });
    const accepted = await askForAccess();
    expect(accepted.statusCode).toBe(201);
    expect(await s.admin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
  });

  it('runs every sweeper step even when one fails, and counts the failure', async () => {
    const overdue = await askForAccess();
    expect(overdue.statusCode).toBe(201);
    b.clock.advance((b.ctx.config.requestTtlSeconds + 1) * 1000);
    const failing = [
      'reevaluation_that_fails',
      async () => Promise.reject(new Error('no such table')),
    ] as const;
    await sweepOnce(b.ctx, [failing, ...sweepSteps(b.ctx)]);
    expect(await b.ctx.health.count('sweeper', 'reevaluation_that_fails')).toBe(1);
    // The steps after the failing one ran: the overdue request expired.
    const after = await s.admin.call<{ state: string }>(
      'GET',
      `/v1/requests/${overdue.json<{ id: string }>().id}`,
    );
    expect(after.state).toBe('expired');
    expect(
      b.logs.some((l) => l.includes('sweeper step failed') && l.includes('reevaluation_that_fails')),
    ).toBe(true);
  });

  it('logs and counts an effect that fails after commit; the commit stands', async () => {
    const before = await b.ctx.health.count('effect');
    const committed = await inTransaction(b.ctx.store, async (tx) => {
      tx.onCommit(() => {
        throw new Error('push failed');
      });
      return 'done';
    });
    expect(committed).toBe('done');
    expect(await b.ctx.health.count('effect')).toBe(before + 1);
    expect(b.logs.some((l) => l.includes('after-commit effect failed') && l.includes('push failed'))).toBe(
      true,
    );
  });
});

describeOnPostgres('PostgreSQL connections that fail', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let proxy: TcpProxy;
  let store: Store;
  let admin: pg.Client;
  beforeAll(async () => {
    const direct = await fixture.open();
    const target = new URL(inject('pgUrl'));
    proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
    const through = new URL(target);
    through.hostname = '127.0.0.1';
    through.port = String(proxy.port);
    let health: TestBroker['ctx']['health'] | undefined;
    store = openStore({
      location: through.toString(),
      ...(direct.pgSchema ? { pgSchema: direct.pgSchema } : {}),
      poolSize: 4,
      statementTimeoutMs: 300,
      connectTimeoutMs: 300,
      onConnectionError: (err) => health?.storeConnectionError(err),
    });
    b = await startTestBroker(store);
    health = b.ctx.health;
    s = await setUpScenario(b);
    admin = new pg.Client({ connectionString: inject('pgUrl') });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await b?.close();
    await proxy?.close();
    await fixture.cleanup();
  });

  it('a backend terminated inside a transaction fails that transaction; the broker lives and the next call works', async () => {
    const before = await b.ctx.health.count('store_connection');
    const failed = inTransaction(b.ctx.store, async (tx) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx.db);
      await admin.query('select pg_terminate_backend($1)', [rows[0]?.pid]);
      // Idle in the transaction while the server goes away: node-postgres reports it as an
      // 'error' event on the checked-out client, which used to crash the process.
      for (let i = 0; i < 50 && (await b.ctx.health.count('store_connection')) === before; i++)
        await new Promise((r) => setImmediate(r));
      await sql`select 1`.execute(tx.db);
    });
    await expect(failed).rejects.toSatisfy(isStoreUnavailable);
    expect(await b.ctx.health.count('store_connection')).toBeGreaterThan(before);
    expect((await b.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    expect(await s.admin.call('GET', '/v1/principals/olivia')).toMatchObject({ name: 'olivia' });
  });

  it('connections reset mid-flight answer 503, then the pool reconnects', async () => {
    const token = await s.operator.client.bearerToken();
    const call = () =>
      b.app.inject({ method: 'GET', url: '/v1/requests', headers: { authorization: `Bearer ${token}` } });
    expect((await call()).statusCode).toBe(200);
    proxy.pause();
    const during = call();
    proxy.cut();
    proxy.resume();
    const answer = await during;
    expect([200, 503]).toContain(answer.statusCode);
    if (answer.statusCode === 503) expect(answer.json()).toMatchObject({ code: 'store_unavailable' });
    expect((await call()).statusCode).toBe(200);
  });

  it('a hung database answers 503 within the statement timeout and /readyz within a second', async () => {
    const token = await s.operator.client.bearerToken();
    proxy.pause();
    try {
      const started = performance.now();
      const ready = await b.app.inject({ method: 'GET', url: '/readyz' });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(ready.json()).toMatchObject({ status: 'not_ready', readiness: 'timed_out' });
      const hung = await b.app.inject({
        method: 'GET',
        url: '/v1/requests',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(hung.statusCode).toBe(503);
      expect(hung.json()).toMatchObject({ code: 'store_unavailable' });
      // statement timeout 300 ms (client read timeout 1.3 s) plus acquiring: well under 5 s.
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      proxy.resume();
      proxy.cut();
    }
    const healed = await b.app.inject({
      method: 'GET',
      url: '/v1/requests',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(healed.statusCode).toBe(200);
  });
});

describe('isStoreUnavailable', () => {
  it.each([
    [{ code: 'ECONNREFUSED' }, true],
    [{ code: '57P01', message: 'terminating connection due to administrator command' }, true],
    [{ code: '57014', message: 'canceling statement due to statement timeout' }, true],
    [{ code: '08006' }, true],
    [{ code: 'SQLITE_FULL' }, true],
    [{ code: 'SQLITE_IOERR_WRITE' }, true],
    [{ message: 'Connection terminated unexpectedly' }, true],
    [{ message: 'timeout exceeded when trying to connect' }, true],
    [new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), true],
    [{ code: '23505' }, false],
    [{ code: 'SQLITE_CONSTRAINT_UNIQUE' }, false],
    [new Error('something else'), false],
    [undefined, false],
  ])('%o → %s', (err, expected) => {
    expect(isStoreUnavailable(err)).toBe(expected);
  });
});
