import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoundSession, BrokerError, withSession } from '../../packages/client/src/index.js';
import {
  createAccessTokenVerifier,
  localKeySource,
  ReplayCache,
  type TokenRefused,
} from '../../packages/pep/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The client SDK against a real resource server on loopback that enforces with the PEP
 * verifier and demands server-issued DPoP nonces.
 */
describeEachStore('client SDK sessions', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let server: Server;
  let origin: string;
  const seen: { status: number; sid?: string }[] = [];
  const NONCE = 'n-0S6_WzA2Mj';

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // The deploy privilege is enforced by this resource server.
    await s.admin.call('PATCH', '/v1/privileges/deploy', { audiences: [origin] });
    const jwks = (await b.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    const verifier = createAccessTokenVerifier({
      issuer: 'http://broker.test',
      audience: origin,
      tenant: b.tenant.id,
      publicBaseUrl: origin,
      keys: await localKeySource(jwks),
      now: () => b.clock.now(),
      replayCache: new ReplayCache({ maxEntries: 1000, now: () => b.clock.now() }),
    });
    server.on('request', async (req, res) => {
      try {
        const { claims } = await verifier.verify({
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          authorization: req.headers.authorization,
          dpop: req.headers.dpop,
          nonce: NONCE,
        });
        seen.push({ status: 200, sid: claims.sid });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sid: claims.sid }));
      } catch (err) {
        const refused = err as TokenRefused;
        seen.push({ status: 401 });
        res.writeHead(401, { 'www-authenticate': refused.wwwAuthenticate, 'dpop-nonce': NONCE }).end();
      }
    });
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await fixture.cleanup();
  });

  const deploy = { privilege: 'deploy', ticket: 'CHG-77', justification: 'release', duration: 900 };

  it('signs each call, answers a use_dpop_nonce challenge once, and refreshes before expiry', async () => {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', deploy);
    const session = await BoundSession.activate(s.pipeline.client, created.id);
    seen.length = 0;
    const first = await session.fetch(`${origin}/deployments`, { method: 'POST' });
    expect(first.status).toBe(200);
    expect(seen.map((r) => r.status)).toEqual([401, 200]); // challenged once, then the nonce is used
    const before = session.tokens.accessToken;
    b.clock.advance(280_000); // within 30 s of the 5-minute token expiry
    const second = await session.fetch(`${origin}/deployments`);
    expect(second.status).toBe(200);
    expect(session.tokens.accessToken).not.toBe(before);
    expect(seen.at(-1)).toEqual({ status: 200, sid: session.info.id });
    await session.end();
    const after = await s.admin.call<{ state: string }>('GET', `/v1/sessions/${session.info.id}`);
    expect(after.state).toBe('ended');
  });

  describe('withSession', () => {
    it('ends the session after the task succeeds', async () => {
      let sid = '';
      const result = await withSession(s.pipeline.client, deploy, async (session) => {
        sid = session.info.id;
        return (await session.fetch(`${origin}/deployments`)).status;
      });
      expect(result).toBe(200);
      expect(await s.admin.call('GET', `/v1/sessions/${sid}`)).toMatchObject({
        state: 'ended',
        end_reason: 'completed',
      });
    });

    it('ends the session when the task fails, and rethrows the task error', async () => {
      let sid = '';
      await expect(
        withSession(s.pipeline.client, deploy, async (session) => {
          sid = session.info.id;
          throw new Error('deploy script failed');
        }),
      ).rejects.toThrow('deploy script failed');
      expect(await s.admin.call('GET', `/v1/sessions/${sid}`)).toMatchObject({
        state: 'ended',
        end_reason: 'completed',
      });
    });

    it('refuses to start when the request is not approved at once', async () => {
      const err = await withSession(s.pipeline.client, { ...deploy, duration: 3600 }, async () => 1).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).code).toBe('request_not_approved');
    });
  });
});
