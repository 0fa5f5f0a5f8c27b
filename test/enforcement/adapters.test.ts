import type { AuditRecordList, AuditRecordView } from '@tether-broker/protocol/api';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { BoundSession } from '../../packages/client/src/index.js';
import {
  BrokerLink,
  createEnforcer,
  type Decision,
  DecisionRecorder,
  type Enforcer,
  silentLogger,
  tetherFastify,
} from '../../packages/pep/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The Fastify adapter and decision recording, against a real broker: the protected service is
 * a Fastify app whose routes carry `{ tether: { action, resource } }`, and every decision its
 * enforcer makes lands in the broker's audit trail.
 */
describeEachStore('PEP adapters and decision recording', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let brokerUrl: string;
  let service: FastifyInstance;
  let enforcer: Enforcer;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    pep = await b.principal('svc-pep', 'service', ['pep']);
    brokerUrl = await b.app.listen({ port: 0, host: '127.0.0.1' });
    service = Fastify();
    await s.admin.call('PATCH', '/v1/privileges/deploy', { audiences: ['http://svc.test'] });
    // The PEP may record decisions only for the audience an admin set for it.
    await s.admin.call('PUT', '/v1/peps/svc-pep/audiences', { audiences: ['http://svc.test'] });
    enforcer = createEnforcer({
      broker: brokerUrl,
      issuer: PUBLIC_URL,
      audience: 'http://svc.test',
      tenant: b.tenant.id,
      publicBaseUrl: 'http://svc.test',
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
      decisions: { flushIntervalMs: 60_000 },
    });
    await service.register(tetherFastify(enforcer));
    service.post(
      '/releases/:app',
      {
        tether: {
          action: 'deploy:release',
          resource: (r: { params: unknown }) => `app/${(r.params as { app: string }).app}`,
        },
      } as object,
      async (request) => ({ session: (request as unknown as { tether: Decision }).tether.session }),
    );
    service.get('/health', async () => ({ ok: true }));
    await service.ready();
    enforcer.start();
    await eventually(() => enforcer.state().fresh);
  });
  afterEach(async () => {
    await enforcer.close();
    await service.close();
    await b.close();
  });

  async function session(): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-5',
      justification: 'release',
      duration: 900,
    });
    // The service is reached by inject: hand the session a fetch that goes there.
    return BoundSession.activate(s.pipeline.client, created.id, undefined, {
      resourceFetch: (async (url: string | URL | Request, init?: RequestInit) => {
        const u = new URL(String(url));
        const r = await service.inject({
          method: (init?.method ?? 'GET') as 'GET',
          url: u.pathname + u.search,
          headers: Object.fromEntries(new Headers(init?.headers).entries()),
        });
        return new Response(r.body, { status: r.statusCode, headers: r.headers as Record<string, string> });
      }) as typeof fetch,
    });
  }

  async function audit(sessionId: string): Promise<AuditRecordView[]> {
    const page = await s.admin.call<AuditRecordList>('GET', `/v1/audit?session=${sessionId}`);
    return page.records;
  }

  it('guards a route declared with the tether option and hands the decision to the handler', async () => {
    const sess = await session();
    const ok = await sess.fetch('http://svc.test/releases/web', { method: 'POST' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ session: sess.info.id });
    const denied = await sess.fetch('http://svc.test/releases/api', { method: 'POST' });
    expect(denied.status).toBe(403);
    expect(denied.headers.get('content-type')).toContain('application/problem+json');
    expect(((await denied.json()) as { code: string }).code).toBe('insufficient_scope');
    const anonymous = await service.inject({ method: 'POST', url: '/releases/web' });
    expect(anonymous.statusCode).toBe(401);
    // A route without the option is not the plugin's business.
    expect((await service.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });

  it('records every decision, allowed and denied, in the session audit trail', async () => {
    const sess = await session();
    await sess.fetch('http://svc.test/releases/web', { method: 'POST' });
    await sess.fetch('http://svc.test/releases/api?secret=x', { method: 'POST' });
    await enforcer.close(); // flushes the buffer
    const entries = (await audit(sess.info.id)).filter((e) => e.action.startsWith('decision.'));
    expect(entries.map((e) => e.action).sort()).toEqual(['decision.allow', 'decision.deny']);
    const denied = entries.find((e) => e.action === 'decision.deny');
    expect(denied?.details).toMatchObject({
      code: 'insufficient_scope',
      action: 'deploy:release',
      resource: 'app/api',
    });
    expect(JSON.stringify(entries)).not.toContain('secret=x'); // query strings never recorded
  });

  it('never blocks on a full buffer: drops, counts, and reports the loss with the next batch', async () => {
    const link = new BrokerLink({
      broker: brokerUrl,
      issuer: PUBLIC_URL,
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
    });
    const recorder = new DecisionRecorder({
      link,
      log: silentLogger,
      audience: 'http://svc.test',
      bufferSize: 3,
      flushIntervalMs: 60_000,
    });
    const sess = await session();
    for (let i = 0; i < 10; i++)
      recorder.record({
        at: b.clock.now(),
        allow: false,
        code: 'invalid_token',
        action: 'deploy:release',
        resource: `app/web`,
        session: sess.info.id,
      });
    expect(recorder.stats).toMatchObject({ buffered: 3, dropped: 7, unreported: 7 });
    await recorder.close();
    expect(recorder.stats).toMatchObject({ buffered: 0, sent: 3, dropped: 7, unreported: 0 });
    const trail = await s.admin.call<AuditRecordList>('GET', '/v1/audit');
    const loss = trail.records.find((e) => e.action === 'pep.decisions_dropped');
    expect(loss?.details).toMatchObject({ count: 7, total: 7 });
  });
});
