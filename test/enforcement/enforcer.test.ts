import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { endSession } from '../../packages/broker/src/core/end-session.js';
import { buildApp } from '../../packages/broker/src/http/app.js';
import { compactRevocationLog } from '../../packages/broker/src/revocation/snapshot.js';
import { BoundSession, createDpopProof } from '../../packages/client/src/index.js';
import {
  createEnforcer,
  type Decision,
  type Enforcer,
  tetherMiddleware,
} from '../../packages/pep/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const BUDGET_MS = 10_000;

/**
 * The PEP library against a real broker over loopback: a resource server protected by
 * `tetherMiddleware`, its enforcer following `GET /v1/events` with a signed heartbeat every
 * 50 ms. The broker and the enforcer share a manual clock, so the staleness budget is crossed
 * by advancing it, never by waiting.
 */
describeEachStore('enforcement point (createEnforcer)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let app: FastifyInstance;
  let brokerPort: number;
  let server: Server;
  let origin: string;
  let enforcer: Enforcer;
  const decisions: Decision[] = [];
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    app = b.app;
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    brokerPort = Number(new URL(address).port);
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await s.admin.call('PATCH', '/v1/privileges/deploy', {
      audiences: [origin],
      actions: ['deploy:release', 'deploy:status.*'],
      resources: ['app/web', 'app/web/**'],
    });
    enforcer = createEnforcer({
      broker: address,
      issuer: PUBLIC_URL,
      audience: origin,
      tenant: b.tenant.id,
      publicBaseUrl: origin,
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
      stalenessBudgetMs: BUDGET_MS,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      decisions: false,
    });
    const guard = tetherMiddleware(enforcer, (req) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (path === '/public') return undefined;
      if (path.startsWith('/releases/'))
        return { action: 'deploy:release', resource: `app/${path.slice('/releases/'.length)}` };
      return { action: 'deploy:status.read', resource: `app/web${path}` };
    });
    decisions.length = 0;
    server.on('request', (req, res) =>
      guard(req, res, () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok')),
    );
  });
  afterEach(async () => {
    await enforcer.close();
    await new Promise((resolve) => server.close(resolve));
    await app.close();
  });

  async function session(): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 900,
    });
    return BoundSession.activate(s.pipeline.client, created.id);
  }

  async function freshEnforcer(): Promise<void> {
    enforcer.start();
    await eventually(() => enforcer.state().fresh);
  }

  it('denies everything (503 revocation_state_stale) until its first caught-up heartbeat, then decides locally', async () => {
    const sess = await session();
    const before = await sess.fetch(`${origin}/releases/web`, { method: 'POST' });
    expect(before.status).toBe(503);
    expect(((await before.json()) as { code: string }).code).toBe('revocation_state_stale');
    expect(before.headers.get('retry-after')).toBe('1');
    await freshEnforcer();
    const allowed = await sess.fetch(`${origin}/releases/web`, { method: 'POST' });
    expect(allowed.status).toBe(200);
    // `deploy:status.*` covers `deploy:status.read`; `app/web/**` covers any depth below app/web.
    expect((await sess.fetch(`${origin}/deep/er/path`)).status).toBe(200);
  });

  it('refuses an action or resource outside the entitlement with 403 insufficient_scope', async () => {
    await freshEnforcer();
    const sess = await session();
    const other = await sess.fetch(`${origin}/releases/api`, { method: 'POST' });
    expect(other.status).toBe(403);
    expect(other.headers.get('www-authenticate')).toMatch(/^DPoP error="insufficient_scope"/);
    expect(((await other.json()) as { code: string }).code).toBe('insufficient_scope');
    // A path trick cannot climb out of the granted tree.
    const climb = await sess.fetch(`${origin}/releases/web%2F..%2Fapi`, { method: 'POST' });
    expect(climb.status).toBe(403);
  });

  it('refuses a request without a token (401, bare DPoP challenge) and leaves public routes alone', async () => {
    await freshEnforcer();
    const bare = await fetch(`${origin}/releases/web`, { method: 'POST' });
    expect(bare.status).toBe(401);
    expect(bare.headers.get('www-authenticate')).toMatch(/^DPoP algs=/);
    expect((await fetch(`${origin}/public`)).status).toBe(200);
  });

  it('refuses the tokens of an ended session — with a fresh proof too — once the event is applied', async () => {
    await freshEnforcer();
    const sess = await session();
    expect((await sess.fetch(`${origin}/releases/web`, { method: 'POST' })).status).toBe(200);
    const position = enforcer.state().position;
    await endSession(b.ctx, s.pipeline.caller, sess.info.id, 'completed', 'done');
    await eventually(() => enforcer.state().position > position);
    // BoundSession.fetch signs a fresh proof for the same token: refused by the mirror.
    const after = await sess.fetch(`${origin}/releases/web`, { method: 'POST' });
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('the session has ended (completed)');
  });

  it('fails closed once its budget passes with the broker gone, and catches up — including a revocation made meanwhile — before allowing again', async () => {
    await freshEnforcer();
    const kept = await session();
    const cut = await session();
    expect((await kept.fetch(`${origin}/releases/web`, { method: 'POST' })).status).toBe(200);

    await app.close(); // the broker's HTTP side is gone: the stream is cut
    await eventually(() => !enforcer.state().connected);
    // Within the budget the PEP still decides from its mirror.
    b.clock.advance(BUDGET_MS - 1000);
    expect((await kept.fetch(`${origin}/releases/web`, { method: 'POST' })).status).toBe(200);
    // Past it, it denies everything.
    b.clock.advance(2000);
    const stale = await kept.fetch(`${origin}/releases/web`, { method: 'POST' });
    expect(stale.status).toBe(503);
    expect(((await stale.json()) as { code: string }).code).toBe('revocation_state_stale');

    // A revocation while the PEP is cut off, then the broker comes back on the same address.
    await endSession(b.ctx, b.admin, cut.info.id, 'revoked', 'incident');
    app = await buildApp(b.ctx);
    await app.listen({ port: brokerPort, host: '127.0.0.1' });
    await eventually(() => enforcer.state().fresh, 10_000);

    const revoked = await cut.fetch(`${origin}/releases/web`, { method: 'POST' });
    expect(revoked.status).toBe(401);
    expect(revoked.headers.get('www-authenticate')).toContain('the session has ended (revoked)');
    expect((await kept.fetch(`${origin}/releases/web`, { method: 'POST' })).status).toBe(200);
  });

  it('started while its broker is down: 503 revocation_state_stale (never 401), serving about a second after the broker is back', async () => {
    const sess = await session();
    const token = sess.tokens.accessToken;
    await app.close(); // the broker is down before this PEP starts: no keys, no log
    // A PEP with the library's default reconnect policy.
    const cold = createEnforcer({
      broker: `http://127.0.0.1:${brokerPort}`,
      issuer: PUBLIC_URL,
      audience: origin,
      tenant: b.tenant.id,
      publicBaseUrl: origin,
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
      decisions: false,
    });
    const ask = async () =>
      cold.authorize({
        method: 'POST',
        url: '/releases/web',
        headers: {
          authorization: `DPoP ${token}`,
          dpop: await createDpopProof(sess.key, {
            method: 'POST',
            url: `${origin}/releases/web`,
            accessToken: token,
            now: b.clock.now(),
          }),
        },
        action: 'deploy:release',
        resource: 'app/web',
      });
    try {
      cold.start();
      await eventually(() => cold.state().lastError !== undefined, 5000, 'a failed connection attempt');
      const down = await ask();
      expect(down).toMatchObject({ allow: false, status: 503, code: 'revocation_state_stale' });

      app = await buildApp(b.ctx);
      await app.listen({ port: brokerPort, host: '127.0.0.1' });
      const back = performance.now();
      // Before its first key set the PEP retries the JWKS every second of its own clock.
      b.clock.advance(1000);
      await eventually(async () => (await ask()).allow, 5000, 'the cold PEP serving');
      const servingAfterMs = performance.now() - back;
      console.log(`cold-started PEP serving ${Math.round(servingAfterMs)} ms after its broker came back`);
      // Reconnect delays are capped at 1 s: measured here, bounded loosely for a loaded machine.
      expect(servingAfterMs).toBeLessThan(3000);
    } finally {
      await cold.close();
    }
  });

  it('resumes from a compacted position with a signed snapshot that carries the sessions ended meanwhile', async () => {
    await freshEnforcer();
    const kept = await session();
    const cut = await session();
    await app.close();
    await eventually(() => !enforcer.state().connected);
    await endSession(b.ctx, b.admin, cut.info.id, 'revoked', 'incident');
    const positionBefore = enforcer.state().position;
    // Every event so far is compacted away: the PEP's position can no longer be resumed from.
    expect(await compactRevocationLog(b.ctx.store, b.clock.now() + 1)).toBeGreaterThan(0);
    app = await buildApp(b.ctx);
    await app.listen({ port: brokerPort, host: '127.0.0.1' });
    await eventually(() => enforcer.state().position > positionBefore && enforcer.state().fresh, 10_000);
    const revoked = await cut.fetch(`${origin}/releases/web`, { method: 'POST' });
    expect(revoked.status).toBe(401);
    expect(revoked.headers.get('www-authenticate')).toContain('the session has ended (revoked)');
    expect((await kept.fetch(`${origin}/releases/web`, { method: 'POST' })).status).toBe(200);
  });
});
