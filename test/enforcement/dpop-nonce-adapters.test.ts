import { createServer, type Server } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { BoundSession, createDpopProof } from '../../packages/client/src/index.js';
import {
  createEnforcer,
  type Enforcer,
  tetherFastify,
  tetherMiddleware,
} from '../../packages/pep/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const AUDIENCE = 'http://svc.test';
const WINDOW_S = 60;

/**
 * The `dpopNonce` enforcer option through both adapters (Fastify plugin, Node middleware): a
 * proof without this PEP's nonce is refused with `use_dpop_nonce` and a `DPoP-Nonce` header,
 * the SDK answers the challenge by itself, an allowed answer carries the new nonce when the
 * window rolled, and only a refused nonce (not the bare handshake) is recorded as a decision.
 */
describeEachStore('DPoP nonces at the PEP adapters', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let brokerUrl: string;
  let enforcer: Enforcer;
  let fastify: FastifyInstance;
  let node: Server;
  let nodeOrigin: string;
  let handled: number;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    pep = await b.principal('svc-pep', 'service', ['pep']);
    brokerUrl = await b.app.listen({ port: 0, host: '127.0.0.1' });
    await s.admin.call('PATCH', '/v1/privileges/deploy', { audiences: [AUDIENCE] });
    await s.admin.call('PUT', '/v1/peps/svc-pep/audiences', { audiences: [AUDIENCE] });
    enforcer = createEnforcer({
      broker: brokerUrl,
      issuer: PUBLIC_URL,
      audience: AUDIENCE,
      tenant: b.tenant.id,
      publicBaseUrl: AUDIENCE,
      identity: { principal: pep.identity.principal, key: pep.identity.key },
      now: () => b.clock.now(),
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
      decisions: { flushIntervalMs: 60_000 },
      dpopNonce: { required: true, windowSeconds: WINDOW_S },
    });
    handled = 0;
    fastify = Fastify();
    await fastify.register(tetherFastify(enforcer));
    fastify.post(
      '/releases/web',
      { tether: { action: 'deploy:release', resource: 'app/web' } } as object,
      async () => {
        handled++;
        return { ok: true };
      },
    );
    await fastify.ready();
    const guard = tetherMiddleware(enforcer, () => ({ action: 'deploy:release', resource: 'app/web' }));
    node = createServer((req, res) =>
      guard(req, res, () => {
        handled++;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }),
    );
    nodeOrigin = await new Promise<string>((resolve) =>
      node.listen(0, '127.0.0.1', () =>
        resolve(`http://127.0.0.1:${(node.address() as { port: number }).port}`),
      ),
    );
    enforcer.start();
    await eventually(() => enforcer.state().fresh);
  });
  afterEach(async () => {
    await enforcer.close();
    await fastify.close();
    await new Promise((resolve) => node.close(resolve));
    await b.close();
  });

  /** Both adapters as one `fetch` for the SDK: `http://svc.test/…` goes to the chosen one. */
  function via(adapter: 'fastify' | 'node'): typeof fetch {
    return (async (url: string | URL | Request, init?: RequestInit) => {
      const u = new URL(String(url));
      if (adapter === 'node') return fetch(`${nodeOrigin}${u.pathname}${u.search}`, init);
      const r = await fastify.inject({
        method: (init?.method ?? 'GET') as 'POST',
        url: u.pathname + u.search,
        headers: Object.fromEntries(new Headers(init?.headers).entries()),
      });
      return new Response(r.body, { status: r.statusCode, headers: r.headers as Record<string, string> });
    }) as typeof fetch;
  }

  async function session(adapter: 'fastify' | 'node'): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-5',
      justification: 'release',
      duration: 900,
    });
    return BoundSession.activate(s.pipeline.client, created.id, undefined, { resourceFetch: via(adapter) });
  }

  async function raw(adapter: 'fastify' | 'node', sess: BoundSession, nonce?: string) {
    const token = await sess.accessToken();
    const proof = await createDpopProof(sess.key, {
      method: 'POST',
      url: `${AUDIENCE}/releases/web`,
      accessToken: token,
      ...(nonce === undefined ? {} : { nonce }),
      now: b.clock.now(),
    });
    return via(adapter)(`${AUDIENCE}/releases/web`, {
      method: 'POST',
      headers: { authorization: `DPoP ${token}`, dpop: proof },
    });
  }

  it.each(['fastify', 'node'] as const)(
    '%s: refuses a proof without the nonce (401 use_dpop_nonce + DPoP-Nonce), handler not run; the SDK answers the challenge',
    async (adapter) => {
      const sess = await session(adapter);
      const refused = await raw(adapter, sess);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toContain('error="use_dpop_nonce"');
      const nonce = refused.headers.get('dpop-nonce');
      expect(nonce).toBe(enforcer.dpopNonce());
      expect(((await refused.json()) as { code: string }).code).toBe('use_dpop_nonce');
      expect(handled).toBe(0);

      expect((await sess.fetch(`${AUDIENCE}/releases/web`, { method: 'POST' })).status).toBe(200);
      expect(handled).toBe(1);
    },
  );

  it.each(['fastify', 'node'] as const)(
    '%s: an allowed answer carries the new nonce once the window rolled, and none before',
    async (adapter) => {
      const sess = await session(adapter);
      const nonce = enforcer.dpopNonce()!;
      const plain = await raw(adapter, sess, nonce);
      expect(plain.status).toBe(200);
      expect(plain.headers.get('dpop-nonce')).toBeNull();
      b.clock.advance(WINDOW_S * 1000);
      await eventually(() => enforcer.state().fresh);
      const rolled = await raw(adapter, sess, nonce);
      expect(rolled.status).toBe(200);
      expect(rolled.headers.get('dpop-nonce')).toBe(enforcer.dpopNonce());
      expect(rolled.headers.get('dpop-nonce')).not.toBe(nonce);
    },
  );

  it('records a refused nonce as a decision, but not the bare handshake', async () => {
    const sess = await session('node');
    await raw('node', sess); // the handshake: no nonce at all
    await raw('node', sess, 'not-a-nonce-of-this-pep'); // what a replay from elsewhere carries
    await enforcer.close(); // flushes the buffer
    // A proof refused before its token's session is known: the record names no session.
    const page = await s.admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/v1/audit?limit=1000',
    );
    const decisions = page.records.filter((r) => r.action.startsWith('decision.'));
    expect(decisions.map((d) => [d.action, d.details.code])).toEqual([['decision.deny', 'use_dpop_nonce']]);
  });
});
