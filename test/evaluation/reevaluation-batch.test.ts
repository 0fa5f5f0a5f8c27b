import { sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { newId } from '../../packages/broker/src/domain/ids.js';
import { BATCH_LIMITS } from '../../packages/broker/src/evaluation/jobs.js';
import { inTransaction } from '../../packages/broker/src/store/database.js';
import { findRequest, insertRequest } from '../../packages/broker/src/store/repositories/requests.js';
import { findSession, insertSession } from '../../packages/broker/src/store/repositories/sessions.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const SESSIONS = 10_000;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
};

/**
 * Replacing a policy set with 10,000 live sessions: the change commits at once and queues one
 * job; the worker narrows every session in batches, yielding between them, while the broker
 * keeps answering other calls. The sessions are real rows, written straight through the
 * repositories (cloned from one activated through the API) so that setting up costs seconds.
 */
describeEachStore('re-evaluation of 10,000 live sessions after a policy replacement', (fixture) => {
  let b: TestBroker;
  afterAll(async () => {
    await b?.ctx.reevaluation.idle();
    await b?.close();
    await fixture.cleanup();
  });

  it(`processes all ${SESSIONS} in batches (at most ${BATCH_LIMITS.batchSize} sessions or ${BATCH_LIMITS.budgetMs} ms each), and other calls are answered meanwhile`, async () => {
    b = await startTestBroker(await fixture.open());
    const s = await setUpScenario(b);
    await s.admin.call('PATCH', '/v1/privileges/deploy', { actions: ['deploy:release', 'deploy:status.*'] });
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 1800,
    });
    const real = await BoundSession.activate(s.pipeline.client, created.id);
    const store = b.ctx.store;
    const request = await findRequest(store, b.tenant.id, created.id);
    const session = await findSession(store, b.tenant.id, real.info.id);
    if (!request || !session) throw new Error('the template session is missing');

    const setUp = performance.now();
    await inTransaction(store, async (tx) => {
      for (let i = 1; i < SESSIONS; i++) {
        const requestId = newId('request');
        await insertRequest(tx, { ...request, id: requestId });
        await insertSession(tx, { ...session, id: newId('session'), requestId });
      }
    });
    const live = await store.db
      .selectFrom('sessions')
      .select(sql<number>`count(*)`.as('n'))
      .where('state', '=', 'active')
      .executeTakeFirstOrThrow();
    expect(Number(live.n)).toBe(SESSIONS);
    console.log(
      `[${store.dialect}] ${SESSIONS} live sessions written in ${Math.round(performance.now() - setUp)} ms`,
    );

    // Other callers, over HTTP on loopback, for as long as the re-evaluation runs: a health
    // check and an authenticated API read, one after the other.
    const address = await b.app.listen({ port: 0, host: '127.0.0.1' });
    const bearer = { authorization: `Bearer ${await s.admin.bearerToken()}` };
    const latencies = { healthz: [] as number[], requests: [] as number[] };
    let running = true;
    const timed = async (into: number[], url: string, headers: Record<string, string> = {}) => {
      const t = performance.now();
      const response = await fetch(`${address}${url}`, { headers });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      into.push(performance.now() - t);
    };
    const load = (async () => {
      while (running) {
        await timed(latencies.healthz, '/healthz');
        await timed(latencies.requests, '/v1/requests?state=pending', bearer);
      }
    })();

    const started = performance.now();
    const current = await s.admin.call<{ policies: Record<string, string> }>('GET', '/v1/policies');
    const replaced = await s.admin.call<{ version: number }>('PUT', '/v1/policies', {
      policies: {
        ...current.policies,
        'freeze-releases': `forbid(principal, action == Tether::Action::"continue", resource)
          when { context.entitlement_action == "deploy:release" };`,
      },
    });
    const committed = performance.now() - started;
    await b.ctx.reevaluation.idle();
    const took = performance.now() - started;
    running = false;
    await load;

    const job = await store.db
      .selectFrom('reevaluation_jobs')
      .selectAll()
      .where('trigger', 'like', `%"kind":"policy_replaced","version":${replaced.version},%`)
      .executeTakeFirstOrThrow();
    expect(job).toMatchObject({ state: 'done', processed: SESSIONS, narrowed: SESSIONS, ended: 0 });
    const narrowed = await store.db
      .selectFrom('sessions')
      .select(sql<number>`count(*)`.as('n'))
      .where('state', '=', 'active')
      .where('narrowed_before', 'is not', null)
      .executeTakeFirstOrThrow();
    expect(Number(narrowed.n)).toBe(SESSIONS);
    const events = await store.db
      .selectFrom('revocation_events')
      .select(sql<number>`count(*)`.as('n'))
      .where('type', '=', 'session_narrowed')
      .executeTakeFirstOrThrow();
    expect(Number(events.n)).toBe(SESSIONS);
    // The real session's next refresh gets the narrower entitlement.
    await real.refresh();
    expect(await s.admin.call('GET', `/v1/sessions/${real.info.id}`)).toMatchObject({
      authorization_details: [expect.objectContaining({ actions: ['deploy:status.*'] })],
    });

    const report = (name: string, values: number[]) =>
      `${name}: ${values.length} answered, p50 ${Math.round(percentile(values, 50))} ms, p99 ${Math.round(percentile(values, 99))} ms, max ${Math.round(Math.max(...values))} ms`;
    console.log(
      `[${store.dialect}] policy replaced (committed in ${Math.round(committed)} ms); ${SESSIONS} live sessions ` +
        `re-evaluated and narrowed in ${Math.round(took)} ms (${Math.round((SESSIONS / took) * 1000)} sessions/s, ` +
        `batches of at most ${BATCH_LIMITS.batchSize} sessions or ${BATCH_LIMITS.budgetMs} ms). Meanwhile ${report('GET /healthz', latencies.healthz)}; ` +
        `${report('GET /v1/requests', latencies.requests)}`,
    );
    // The change itself answered at once, and other calls kept being answered while it ran.
    expect(committed).toBeLessThan(5000);
    expect(latencies.healthz.length).toBeGreaterThanOrEqual(10);
    expect(latencies.requests.length).toBeGreaterThanOrEqual(10);
    expect(Math.max(...latencies.healthz, ...latencies.requests)).toBeLessThan(took);
  }, 600_000);
});
