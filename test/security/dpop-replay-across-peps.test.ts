import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveGatewayConfig, validateGatewayConfig } from '../../packages/cli/src/gateway/config.js';
import { createGateway, type Gateway } from '../../packages/cli/src/gateway/server.js';
import { BoundSession, createDpopProof } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/processes.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** The one public URL (and audience) of the firewall API, served by two gateway instances behind a load balancer. */
const PUBLIC = 'https://fw.example';
const RULES = `${PUBLIC}/rules/edge-1`;
const ROUTES = [
  {
    method: ['GET', 'POST'],
    path: '/rules/:edge',
    action: 'firewall:rules.write',
    resource: 'firewall/{edge}',
  },
];
const WINDOW_S = 300;

/** The firewall behind the gateways: counts the rules it was asked to add (every POST adds one). */
function startFirewall() {
  const added: string[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST') added.push(req.url ?? '');
      res
        .writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ rules: added.length }));
    });
  });
  return { server, added };
}

/**
 * Issue 9 item 6 (b): a DPoP proof replayed at a second gateway of the same audience, or at the
 * same gateway after a restart, created a duplicate firewall rule. Each gateway instance now
 * requires a nonce it issued (RFC 9449 §9) under a key drawn at its start, so the proof is
 * refused at every other instance and after a restart; within one process the jti cache makes
 * it single-use. The firewall's rule count proves the POST ran once.
 */
describeEachStore('DPoP proof replay across enforcement points and restarts', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let brokerUrl: string;
  let dir: string;
  let firewall: ReturnType<typeof startFirewall>;
  let upstream: string;
  const gateways = new Map<string, { gateway: Gateway; origin: string }>();

  /** A gateway instance for the shared public URL, listening on its own port (as behind a load balancer). */
  async function startInstance(name: string, port?: number): Promise<string> {
    const listenPort = port ?? (await freePort());
    const settings = validateGatewayConfig(
      {
        listen: { host: '127.0.0.1', port: listenPort },
        public_url: PUBLIC,
        upstream,
        broker: brokerUrl,
        issuer: PUBLIC_URL,
        staleness_budget: '10s',
        routes: ROUTES,
      },
      dir,
    );
    const gateway = await createGateway(resolveGatewayConfig(settings, pep.identity), {
      now: () => b.clock.now(),
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    });
    await gateway.listen();
    await eventually(() => gateway.enforcer.state().fresh);
    const origin = `http://127.0.0.1:${listenPort}`;
    gateways.set(name, { gateway, origin });
    return origin;
  }

  async function stopInstance(name: string): Promise<void> {
    await gateways.get(name)?.gateway.close();
    gateways.delete(name);
  }

  const originOf = (name: string) => gateways.get(name)!.origin;

  async function firewallSession(ticket: string): Promise<BoundSession> {
    const created = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket,
      justification: 'edge rules',
      duration: 3600,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${created.id}/approve`);
    return BoundSession.activate(s.operator.client, created.id);
  }

  /** A proof for POST RULES, signed now, carrying `nonce` when given. */
  async function proofFor(session: BoundSession, nonce?: string): Promise<string> {
    return createDpopProof(session.key, {
      method: 'POST',
      url: RULES,
      accessToken: await session.accessToken(),
      ...(nonce === undefined ? {} : { nonce }),
      now: b.clock.now(),
    });
  }

  /** POSTs a rule to one instance with the given proof, as an attacker replaying it would. */
  async function post(instance: string, session: BoundSession, proof: string) {
    const response = await fetch(`${originOf(instance)}/rules/edge-1`, {
      method: 'POST',
      headers: {
        authorization: `DPoP ${await session.accessToken()}`,
        dpop: proof,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ action: 'allow', source: '10.0.0.0/8' }),
    });
    const body = (await response.json()) as { code?: string; detail?: string };
    return {
      status: response.status,
      code: body.code,
      detail: body.detail,
      challenge: response.headers.get('www-authenticate') ?? '',
      nonce: response.headers.get('dpop-nonce'),
    };
  }

  /** The nonce an instance hands out, learnt as a client learns it: from its first refusal. */
  async function nonceOf(instance: string, session: BoundSession): Promise<string> {
    const before = firewall.added.length;
    const answer = await post(instance, session, await proofFor(session));
    expect(answer).toMatchObject({ status: 401, code: 'use_dpop_nonce' });
    expect(answer.challenge).toContain('error="use_dpop_nonce"');
    expect(firewall.added.length).toBe(before);
    return answer.nonce!;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tether-dpop-replay-'));
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    pep = await b.principal('edge-gateway', 'service', ['pep']);
    brokerUrl = await b.app.listen({ port: 0, host: '127.0.0.1' });
    firewall = startFirewall();
    upstream = await new Promise<string>((resolve) =>
      firewall.server.listen(0, '127.0.0.1', () =>
        resolve(`http://127.0.0.1:${(firewall.server.address() as { port: number }).port}`),
      ),
    );
    await s.admin.call('PUT', '/v1/peps/edge-gateway/audiences', { audiences: [PUBLIC] });
    await startInstance('a');
    await startInstance('b');
  });
  afterAll(async () => {
    for (const name of [...gateways.keys()]) await stopInstance(name);
    await new Promise((resolve) => firewall?.server.close(resolve));
    await b?.app.close();
    await fixture.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a proof accepted at gateway A, replayed at gateway B of the same audience (once and 10 at once), is refused: one rule', async () => {
    const session = await firewallSession('NET-1');
    const nonceA = await nonceOf('a', session);
    const proof = await proofFor(session, nonceA);
    const before = firewall.added.length;
    expect((await post('a', session, proof)).status).toBe(201);
    expect(firewall.added.length).toBe(before + 1);

    const atB = await post('b', session, proof);
    expect(atB).toMatchObject({ status: 401, code: 'use_dpop_nonce' });
    expect(atB.challenge).toContain('error="use_dpop_nonce"');
    expect(atB.detail).toBe('claim nonce is not the current DPoP nonce');
    // B hands out its own nonce, never A's: a nonce is good at the instance that issued it only.
    expect(atB.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(atB.nonce).not.toBe(nonceA);

    const again = await post('a', session, proof);
    expect(again).toMatchObject({ status: 401, code: 'invalid_dpop_proof' });
    expect(again.detail).toContain('already been used');

    const burst = await Promise.all(
      Array.from({ length: 10 }, (_, i) => post(i % 2 === 0 ? 'b' : 'a', session, proof)),
    );
    expect(burst.map((r) => r.status)).toEqual(Array(10).fill(401));
    expect(new Set(burst.map((r) => r.code))).toEqual(new Set(['use_dpop_nonce', 'invalid_dpop_proof']));
    expect(firewall.added.length).toBe(before + 1);
  });

  it("a proof made for A is refused at B even if A never saw it: it carries A's nonce", async () => {
    const session = await firewallSession('NET-2');
    const unused = await proofFor(session, await nonceOf('a', session));
    const before = firewall.added.length;
    expect(await post('b', session, unused)).toMatchObject({ status: 401, code: 'use_dpop_nonce' });
    expect(firewall.added.length).toBe(before);
  });

  it('a proof accepted before a gateway restart, replayed after it (same port, same config), is refused: one rule', async () => {
    const session = await firewallSession('NET-3');
    const nonceA = await nonceOf('a', session);
    const accepted = await proofFor(session, nonceA);
    const signedBeforeRestart = await proofFor(session, nonceA);
    const before = firewall.added.length;
    expect((await post('a', session, accepted)).status).toBe(201);

    const port = Number(new URL(originOf('a')).port);
    await stopInstance('a');
    await startInstance('a', port);

    // The restarted process lost its jti cache, but not its guard: the nonce key is new.
    for (const proof of [accepted, signedBeforeRestart]) {
      const replay = await post('a', session, proof);
      expect(replay).toMatchObject({ status: 401, code: 'use_dpop_nonce' });
      expect(replay.nonce).not.toBe(nonceA);
    }
    expect(firewall.added.length).toBe(before + 1);
  });

  it('an honest SDK client moved from A to B by the load balancer answers the challenge once: every POST runs exactly once', async () => {
    const created = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-4',
      justification: 'edge rules',
      duration: 3600,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${created.id}/approve`);
    // The load balancer keeps a client on one instance (affinity) until it moves it, here after two calls.
    let instance = 'a';
    const calls: string[] = [];
    const balanced = (async (url: string | URL | Request, init?: RequestInit) => {
      calls.push(instance);
      return fetch(String(url).replace(PUBLIC, originOf(instance)), init);
    }) as typeof fetch;
    const session = await BoundSession.activate(s.operator.client, created.id, undefined, {
      resourceFetch: balanced,
    });
    const before = firewall.added.length;
    for (let i = 0; i < 4; i++) {
      if (i === 2) instance = 'b';
      const response = await session.fetch(RULES, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'allow', source: `10.0.${i}.0/24` }),
      });
      expect(response.status).toBe(201);
    }
    expect(firewall.added.length).toBe(before + 4);
    // First contact with each instance cost one refused attempt (never forwarded), then the retry.
    expect(calls).toEqual(['a', 'a', 'a', 'b', 'b', 'b']);
  });

  it('hands out a fresh nonce on success when the window rolls; a nonce two windows old is refused', async () => {
    const session = await firewallSession('NET-5');
    const first = await nonceOf('a', session);
    const gateway = gateways.get('a')!.gateway;
    b.clock.advance(WINDOW_S * 1000);
    await eventually(() => gateway.enforcer.state().fresh);
    // The previous window's nonce is still good, and the answer carries the new one.
    const rolled = await post('a', session, await proofFor(session, first));
    expect(rolled.status).toBe(201);
    expect(rolled.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(rolled.nonce).not.toBe(first);
    // With the current nonce, an allowed answer carries no header: nothing new to learn.
    expect((await post('a', session, await proofFor(session, rolled.nonce!))).nonce).toBeNull();

    b.clock.advance(WINDOW_S * 1000);
    await eventually(() => gateway.enforcer.state().fresh);
    const before = firewall.added.length;
    const stale = await post('a', session, await proofFor(session, first));
    expect(stale).toMatchObject({ status: 401, code: 'use_dpop_nonce' });
    expect(firewall.added.length).toBe(before);
  });
});
