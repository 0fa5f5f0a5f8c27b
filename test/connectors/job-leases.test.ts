import { afterEach, beforeEach, expect, it } from 'vitest';
import { inTransaction, type Store } from '../../packages/broker/src/store/database.js';
import {
  insertConnectorJob,
  leaseJob,
  markJobDone,
  markJobFailed,
} from '../../packages/broker/src/store/repositories/connectors.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * One runner per connector job across replicas: a lease (until when, and a token only its
 * holder knows). A runner that stalled past its lease while another took the job must not
 * complete or fail it on top of that one — else its late mint could be recorded after the
 * destroy, or its failure clear the live holder's lease.
 */
describeEachStore('connector job leases', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let jobId: string;

  beforeEach(async () => {
    store = await fixture.open();
    b = await startTestBroker(store);
    // No runner here: this test is the runners.
    await b.ctx.connectors.stop();
    const s = await setUpScenario(b);
    const connector = await s.admin.call<{ id: string }>('POST', '/v1/connectors', {
      name: 'target',
      kind: 'webhook',
      url: 'https://target.example/tether',
    });
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-4',
      justification: 'x',
      duration: 900,
    });
    const session = await BoundSession.activate(s.pipeline.client, created.id);
    jobId = 'cnj_00000000000000000000000001';
    await inTransaction(store, (tx) =>
      insertConnectorJob(tx, {
        id: jobId,
        tenantId: b.tenant.id,
        sessionId: session.info.id,
        connectorId: connector.id,
        action: 'destroy',
        state: 'pending',
        attempts: 0,
        nextAttemptAt: b.clock.now(),
        leaseUntil: null,
        leaseToken: null,
        lastError: null,
        createdAt: b.clock.now(),
        doneAt: null,
      }),
    );
  });
  afterEach(async () => {
    await b.close();
    await store.close();
  });

  it('lets one runner hold a job, another take it once the lease ran out, and only the holder complete it', async () => {
    const now = b.clock.now();
    expect(await leaseJob(store, jobId, now, { until: now + 30_000, token: 'stalled' })).toBe(true);
    // A second runner meanwhile: refused while the lease lives.
    expect(await leaseJob(store, jobId, now + 1000, { until: now + 31_000, token: 'early' })).toBe(false);
    // The first runner stalls past its lease; another takes the job.
    const later = now + 30_001;
    expect(await leaseJob(store, jobId, later, { until: later + 30_000, token: 'current' })).toBe(true);
    // The stalled runner wakes: it can neither fail nor complete the job now.
    const failure = { attempts: 1, retryAt: later + 1000, reason: 'late' };
    expect(await inTransaction(store, (tx) => markJobFailed(tx, jobId, 'stalled', failure))).toBe(false);
    expect(await inTransaction(store, (tx) => markJobDone(tx, jobId, later, 'stalled'))).toBe(false);
    const [held] = await store.db.selectFrom('connector_jobs').selectAll().where('id', '=', jobId).execute();
    expect(held).toMatchObject({ state: 'pending', lease_token: 'current', attempts: 0, last_error: null });
    // The holder can.
    expect(await inTransaction(store, (tx) => markJobDone(tx, jobId, later + 5, 'current'))).toBe(true);
    const [done] = await store.db.selectFrom('connector_jobs').selectAll().where('id', '=', jobId).execute();
    expect(done).toMatchObject({ state: 'done', lease_token: null });
  });
});
