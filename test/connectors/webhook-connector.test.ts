import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createLocalJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { CONNECTOR_CALL_JWT_TYPE } from '../../packages/broker/src/connectors/webhook-target.js';
import type { Store } from '../../packages/broker/src/store/database.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The webhook connector against a real HTTP target on loopback, which does what a target must:
 * verify each call's JWS with the broker's published keys, its audience (its own URL), type,
 * expiry and one-time id, then create or destroy the credential it names.
 */
interface Target {
  server: Server;
  url: string;
  calls: (JWTPayload & { action: string; credential_id: string })[];
  refused: string[];
  live: Map<string, string>;
  /** Answer 503 to every call while true (the target is down). */
  down: boolean;
  /** The audience the target was set up with: its connector (`<issuer>/v1/connectors/<id>`). */
  audience: string;
}

async function startTarget(b: TestBroker): Promise<Target> {
  const jwks = createLocalJWKSet(
    (await b.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as { keys: never[] },
  );
  const target: Target = {
    server: createServer(),
    url: '',
    calls: [],
    refused: [],
    live: new Map(),
    down: false,
    audience: '',
  };
  const seen = new Set<string>();
  target.server.on('request', async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (target.down) return void res.writeHead(503).end();
    try {
      if (req.headers['content-type'] !== 'application/jwt') throw new Error('not a JWT body');
      const { payload } = await jwtVerify(Buffer.concat(chunks).toString('utf8'), jwks, {
        issuer: PUBLIC_URL,
        audience: target.audience,
        typ: CONNECTOR_CALL_JWT_TYPE,
        currentDate: new Date(b.clock.now()),
      });
      if (typeof payload.jti !== 'string' || seen.has(payload.jti)) throw new Error('replayed call');
      seen.add(payload.jti);
      const call = payload as Target['calls'][number];
      target.calls.push(call);
      if (call.action === 'create') {
        const secret = target.live.get(call.credential_id) ?? randomBytes(24).toString('base64url');
        target.live.set(call.credential_id, secret);
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ username: `svc-${call.credential_id}`, secret }));
      }
      const existed = target.live.delete(call.credential_id);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ connections_terminated: existed ? 2 : 0 }));
    } catch (err) {
      target.refused.push((err as Error).message);
      res.writeHead(401).end();
    }
  });
  await new Promise<void>((resolve) => target.server.listen(0, '127.0.0.1', resolve));
  const address = target.server.address();
  target.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/tether/credentials`;
  return target;
}

describeEachStore('webhook connector', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;
  let target: Target;

  beforeEach(async () => {
    store = await fixture.open();
    // The target is on loopback over http: allowed here by the operator, as for a lab appliance.
    b = await startTestBroker(store, {
      config: { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true },
    });
    s = await setUpScenario(b);
    target = await startTarget(b);
    const connector = await s.admin.call<{ id: string }>('POST', '/v1/connectors', {
      name: 'appliance',
      kind: 'webhook',
      url: target.url,
    });
    target.audience = `${PUBLIC_URL}/v1/connectors/${connector.id}`;
    await s.admin.call('PATCH', '/v1/privileges/deploy', { connectors: ['appliance'] });
  });
  afterEach(async () => {
    await b.ctx.connectors.stop();
    await new Promise((resolve) => target.server.close(resolve));
    await b.close();
    await store.close();
  });

  async function activate(ticket = 'CHG-9'): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket,
      justification: 'appliance maintenance',
      duration: 900,
    });
    return BoundSession.activate(s.pipeline.client, created.id);
  }

  it('creates the credential with a signed call at activation and destroys it at the end', async () => {
    const session = await activate();
    const [credential] = session.info.credentials;
    expect(credential).toMatchObject({ connector: 'appliance', kind: 'webhook' });
    expect(target.live.get(credential!.username.replace(/^svc-/, ''))).toBe(credential!.secret);
    expect(target.calls).toEqual([
      expect.objectContaining({ action: 'create', session: session.info.id, ticket: 'CHG-9' }),
    ]);

    await session.end();
    await b.ctx.connectors.idle();
    expect(target.calls.map((c) => c.action)).toEqual(['create', 'destroy']);
    // Both calls name the same credential: the target can make each idempotent.
    expect(target.calls[1]!.credential_id).toBe(target.calls[0]!.credential_id);
    expect(target.live.size).toBe(0);
    expect(target.refused).toEqual([]);
    const receipt = await s.admin.call<{ credentials: Record<string, unknown>[] }>(
      'GET',
      `/v1/sessions/${session.info.id}/receipt`,
    );
    expect(receipt.credentials).toEqual([
      expect.objectContaining({
        kind: 'webhook',
        destroyed_at: expect.any(String),
        connections_terminated: 2,
      }),
    ]);
    expect(b.logs.join('\n')).not.toContain(credential!.secret);
  });

  it('keeps retrying a destroy while the target is down, and finishes when it is back', async () => {
    const session = await activate();
    target.down = true;
    await session.end();
    await b.ctx.connectors.idle();
    for (let i = 0; i < 5; i++) {
      b.clock.advance(10 * 60_000);
      b.ctx.connectors.wake();
      await b.ctx.connectors.idle();
    }
    expect(target.live.size).toBe(1);
    const metrics = (await b.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/tether_connector_jobs_failing 1/);
    target.down = false;
    b.clock.advance(10 * 60_000);
    b.ctx.connectors.wake();
    await b.ctx.connectors.idle();
    expect(target.live.size).toBe(0);
  });

  it("another tenant naming this target's URL gets nothing: its calls are for its own connector, refused there", async () => {
    const other = await startTestBroker(store, { reuse: b, tenantName: 'rival' });
    const rival = await setUpScenario(other);
    await rival.admin.call('POST', '/v1/connectors', { name: 'stolen', kind: 'webhook', url: target.url });
    await rival.admin.call('PATCH', '/v1/privileges/deploy', { connectors: ['stolen'] });
    const created = await rival.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-66',
      justification: 'borrow the appliance',
      duration: 900,
    });
    const session = await BoundSession.activate(rival.pipeline.client, created.id);
    await b.ctx.connectors.idle();
    expect(session.info.credentials).toEqual([]);
    expect(target.live.size).toBe(0);
    expect(target.refused).toEqual([expect.stringMatching(/aud/)]);
    await session.end();
    await b.ctx.connectors.idle();
  });

  it('refuses a webhook URL that is not https to a host the operator did not allow', async () => {
    for (const url of ['http://example.com/hook', 'https://169.254.169.254/latest', 'ftp://example.com/x']) {
      await expect(
        s.admin.call('POST', '/v1/connectors', { name: 'elsewhere', kind: 'webhook', url }),
      ).rejects.toMatchObject({ status: 400 });
    }
    const { connectors } = await s.admin.call<{ connectors: { name: string }[] }>('GET', '/v1/connectors');
    expect(connectors.map((c) => c.name)).toEqual(['appliance']);
  });
});
