import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionReceipt } from '@tether-broker/protocol';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endSession } from '../../packages/broker/src/core/end-session.js';
import { buildApp } from '../../packages/broker/src/http/app.js';
import { resolveGatewayConfig, validateGatewayConfig } from '../../packages/cli/src/gateway/config.js';
import { createGateway, type Gateway } from '../../packages/cli/src/gateway/server.js';
import { BoundSession, createDpopProof } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually, within } from '../support/eventually.js';
import { freePort } from '../support/processes.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bytes: number;
  sha256: string;
}

/**
 * The service behind the gateway: a plain Node server that knows nothing of Tether. It records
 * what reached it, hashes bodies as they stream in, and streams its `/stream/…` answer in two
 * parts, the second only once the test says the client has the first.
 */
function startUpstream() {
  const seen: Seen[] = [];
  const progress = new EventEmitter();
  let releaseSecondPart: () => void = () => undefined;
  const secondPartReleased = () =>
    new Promise<void>((resolve) => {
      releaseSecondPart = resolve;
    });
  const server: Server = createServer(async (req, res: ServerResponse) => {
    const hash = createHash('sha256');
    let bytes = 0;
    if (req.url?.startsWith('/stream/')) {
      const waiting = secondPartReleased();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upstream': 'yes' });
      res.write(Buffer.alloc(64 * 1024, 1));
      await waiting;
      res.end(Buffer.alloc(64 * 1024, 2));
      return;
    }
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      progress.emit('bytes', bytes);
    }
    const entry = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      bytes,
      sha256: hash.digest('hex'),
    };
    seen.push(entry);
    const status = req.method === 'POST' ? 201 : 200;
    res
      .writeHead(status, { 'content-type': 'application/json', 'x-upstream': 'yes' })
      .end(JSON.stringify(entry));
  });
  return { server, seen, progress, release: () => releaseSecondPart() };
}

const listenOn = (server: Server, port = 0) =>
  new Promise<number>((resolve) =>
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );

const ROUTES = [
  { method: 'GET', path: '/rules/:edge', action: 'firewall:rules.read', resource: 'firewall/{edge}' },
  {
    method: ['POST', 'DELETE'],
    path: '/rules/:edge',
    action: 'firewall:rules.write',
    resource: 'firewall/{edge}',
  },
  { method: 'GET', path: '/stream/:edge', action: 'firewall:rules.read', resource: 'firewall/{edge}' },
];
const BUDGET_MS = 10_000;

/**
 * The gateway in process, between a real broker (listening on a port, streaming its revocation
 * log) and a real upstream server. Broker, PEP and clients share the broker's manual clock: the
 * staleness budget is crossed by advancing it, never by waiting.
 */
describeEachStore('tether gateway (in process)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  let brokerApp: FastifyInstance;
  let brokerUrl: string;
  let upstream: ReturnType<typeof startUpstream>;
  let upstreamPort: number;
  let gateway: Gateway;
  let origin: string;
  let dir: string;
  let session: BoundSession;

  async function gatewayFor(
    upstreamUrl: string,
    audience?: string,
  ): Promise<{ gateway: Gateway; origin: string }> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const settings = validateGatewayConfig(
      {
        listen: { host: '127.0.0.1', port },
        public_url: url,
        upstream: upstreamUrl,
        broker: brokerUrl,
        issuer: PUBLIC_URL,
        staleness_budget: `${BUDGET_MS / 1000}s`,
        upstream_timeout: '5s',
        ...(audience ? { audience } : {}),
        routes: ROUTES,
      },
      dir,
    );
    const g = await createGateway(resolveGatewayConfig(settings, pep.identity), {
      now: () => b.clock.now(),
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    });
    await g.listen();
    return { gateway: g, origin: url };
  }

  /** olivia's session for the firewall, approved by an approver. */
  async function firewallSession(ticket: string): Promise<BoundSession> {
    const created = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket,
      justification: 'rotate edge rules',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${created.id}/approve`);
    return BoundSession.activate(s.operator.client, created.id);
  }

  /** Token and a proof made for `proofUrl`, sent to `url` (they differ when testing `htu`). */
  async function signedHeaders(sess: BoundSession, method: string, proofUrl: string) {
    const token = await sess.accessToken();
    const nonce = gateway.enforcer.dpopNonce();
    const proof = await createDpopProof(sess.key, {
      method,
      url: proofUrl,
      accessToken: token,
      // The gateway requires its own DPoP nonce (issue 9 item 6), as a client learns it from DPoP-Nonce.
      ...(nonce === undefined ? {} : { nonce }),
      now: b.clock.now(),
    });
    return { authorization: `DPoP ${token}`, dpop: proof };
  }

  /** A request sent as is (fetch would resolve dot segments and drop hop-by-hop headers). */
  function rawRequest(
    url: string,
    init: { method?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: string }> {
    const { hostname, port, origin: from } = new URL(url);
    // The path as written: parsing the URL would resolve dot segments and turn \\ into /.
    const path = url.slice(from.length);
    return new Promise((resolve, reject) =>
      httpRequest(
        { hostname, port, path, method: init.method ?? 'GET', headers: init.headers ?? {} },
        async (res) => {
          let body = '';
          for await (const chunk of res) body += chunk;
          resolve({ status: res.statusCode ?? 0, body });
        },
      )
        .on('error', reject)
        .end(),
    );
  }

  const problem = async (response: Response) => (await response.json()) as { code: string; detail: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tether-gateway-'));
    b = await startTestBroker(await fixture.open(), { config: { heartbeatIntervalMs: 50 } });
    s = await setUpScenario(b);
    pep = await b.principal('edge-gateway', 'service', ['pep']);
    brokerApp = b.app;
    brokerUrl = await brokerApp.listen({ port: 0, host: '127.0.0.1' });
    upstream = startUpstream();
    upstreamPort = await listenOn(upstream.server);
    ({ gateway, origin } = await gatewayFor(`http://127.0.0.1:${upstreamPort}`));
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', {
      audiences: [origin],
      actions: ['firewall:rules.read', 'firewall:rules.write'],
      resources: ['firewall/edge-*'],
    });
    // The gateway records decisions only for the audience an admin set for its principal.
    await s.admin.call('PUT', '/v1/peps/edge-gateway/audiences', { audiences: [origin] });
    await eventually(() => gateway.enforcer.state().fresh);
    session = await firewallSession('NET-1');
  });
  afterAll(async () => {
    await gateway?.close();
    await new Promise((resolve) => upstream?.server.close(resolve));
    await brokerApp?.close();
    await fixture.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers /healthz with its mirror state while fresh', async () => {
    const health = await fetch(`${origin}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'ok',
      connected: true,
      position: expect.any(Number),
    });
  });

  it('forwards an allowed call with who was allowed, and without the credentials or anything a client sent as x-tether-*', async () => {
    const before = upstream.seen.length;
    const url = `${origin}/rules/edge-1?verbose=1`;
    const response = await rawRequest(url, {
      headers: {
        ...(await signedHeaders(session, 'GET', url)),
        'x-tether-principal': 'prn_forged',
        'X-Tether-Session': 'ses_forged',
        'x-tether-admin': 'true',
        // A header listed in Connection is hop-by-hop: dropped, like Connection itself.
        connection: 'keep-alive, x-trace',
        'x-trace': 'abc',
        'proxy-authorization': 'Basic eDp5',
        accept: 'application/json',
      },
    });
    expect(response.status).toBe(200);
    const forwarded = upstream.seen[before]!;
    expect(JSON.parse(response.body)).toMatchObject({ url: '/rules/edge-1?verbose=1' });
    expect(forwarded).toMatchObject({ method: 'GET', url: '/rules/edge-1?verbose=1' });
    expect(forwarded.headers).toMatchObject({
      'x-tether-principal': s.operator.caller.principal.id,
      'x-tether-session': session.info.id,
      'x-tether-ticket': 'NET-1',
      'x-tether-privilege': 'firewall-admin',
      accept: 'application/json',
    });
    // (The upstream does see a Connection header: the gateway's own, for its own connection.)
    for (const name of ['authorization', 'dpop', 'x-tether-admin', 'x-trace', 'proxy-authorization'])
      expect(forwarded.headers[name], name).toBeUndefined();
    expect(
      Object.keys(forwarded.headers)
        .filter((h) => h.startsWith('x-tether-'))
        .sort(),
    ).toEqual(['x-tether-principal', 'x-tether-privilege', 'x-tether-session', 'x-tether-ticket']);
  });

  it('streams a 20 MB request body to the upstream before the client has finished sending it', async () => {
    const url = `${origin}/rules/edge-2`;
    const headers = await signedHeaders(session, 'POST', url);
    const first = randomBytes(1024 * 1024);
    const rest = randomBytes(19 * 1024 * 1024);
    const expected = createHash('sha256').update(first).update(rest).digest('hex');
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(url, {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/octet-stream',
          'content-length': first.length + rest.length,
        },
      });
      req.on('error', reject);
      req.on('response', async (res) => {
        let body = '';
        for await (const chunk of res) body += chunk;
        resolve({ status: res.statusCode ?? 0, body });
      });
      // The rest is sent only once the upstream has bytes: a gateway that buffered the whole
      // body before forwarding would never let that happen, and this test would time out.
      upstream.progress.once('bytes', () => req.end(rest));
      req.write(first);
    });
    const { status, body } = await answer;
    expect(status).toBe(201);
    expect(JSON.parse(body)).toMatchObject({ method: 'POST', bytes: 20 * 1024 * 1024, sha256: expected });
  });

  it('streams the response: the client reads the first part before the upstream sends the rest', async () => {
    const response = await session.fetch(`${origin}/stream/edge-1`);
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    let received = 0;
    while (received < 64 * 1024) received += (await reader.read()).value?.length ?? 0;
    upstream.release(); // only now does the upstream send its second part
    for (let r = await reader.read(); !r.done; r = await reader.read()) received += r.value.length;
    expect(received).toBe(128 * 1024);
  });

  it('answers a request no route matches with 404, and never forwards it', async () => {
    const before = upstream.seen.length;
    for (const [method, path] of [
      ['GET', '/admin'],
      ['PUT', '/rules/edge-1'],
      ['GET', '/rules/edge-1/extra'],
    ] as const) {
      const response = await session.fetch(`${origin}${path}`, { method });
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((await problem(response)).code).toBe('route_not_found');
    }
    expect(upstream.seen.length).toBe(before);
  });

  it('refuses a path that would change the resource (encoded /, dot segments) with 400, never forwarded', async () => {
    const before = upstream.seen.length;
    for (const path of [
      '/rules/edge-1%2F..%2Fcore',
      '/rules/%2e%2e',
      '/rules/edge-1%5Ccore',
      '/rules/edge-1/../core',
      '/rules/edge-1\\..\\core',
      '/rules//edge-1',
    ]) {
      const url = `${origin}${path}`;
      const response = await rawRequest(url, { headers: await signedHeaders(session, 'GET', url) });
      expect(response.status, path).toBe(400);
      expect(JSON.parse(response.body).code).toBe('invalid_request');
    }
    expect(upstream.seen.length).toBe(before);
  });

  it('refuses what the PEP refuses, before anything is forwarded', async () => {
    const before = upstream.seen.length;
    // No token.
    const bare = await fetch(`${origin}/rules/edge-1`);
    expect(bare.status).toBe(401);
    expect(bare.headers.get('www-authenticate')).toMatch(/^DPoP /);
    // A proof made for the upstream's own URL (or any other) is not good at the gateway: htu is its public URL.
    for (const proofUrl of [`http://127.0.0.1:${upstreamPort}/rules/edge-1`, `${origin}/rules/edge-2`]) {
      const wrongHtu = await fetch(`${origin}/rules/edge-1`, {
        headers: await signedHeaders(session, 'GET', proofUrl),
      });
      expect(wrongHtu.status, proofUrl).toBe(401);
      expect((await problem(wrongHtu)).code).toBe('invalid_dpop_proof');
    }
    // A token for another audience (the pipeline's deploy session).
    const request = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-7',
      justification: 'release',
      duration: 900,
    });
    const deploy = await BoundSession.activate(s.pipeline.client, request.id);
    const wrongAudience = await deploy.fetch(`${origin}/rules/edge-1`);
    expect(wrongAudience.status).toBe(401);
    expect((await problem(wrongAudience)).code).toBe('invalid_token');
    // A resource outside the entitlement (firewall/edge-* does not cover firewall/core).
    const outside = await session.fetch(`${origin}/rules/core`, { method: 'DELETE' });
    expect(outside.status).toBe(403);
    expect((await problem(outside)).code).toBe('insufficient_scope');
    expect(upstream.seen.length).toBe(before);
  });

  it('forwards exactly the path it decided on, or nothing, and never answers 5xx (property over hostile paths)', async () => {
    const segment = fc.constantFrom(
      'edge-1',
      'edge-2',
      'core',
      'rules',
      '',
      '.',
      '..',
      '%2e',
      '%2E%2e',
      '.%2e',
      '%2F',
      '%2f',
      '%5C',
      '\\',
      '%00',
      '%0A',
      '%zz',
      '%',
      '%C3%A9',
      '%C3%28',
      '*',
      '**',
      '~',
      ':',
      '@',
      ';',
      '%3B',
      '%252F',
      'edge-1;x',
    );
    const target = fc.tuple(
      fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'HEAD'),
      fc.array(segment, { minLength: 1, maxLength: 4 }).map((segments) => `/rules/${segments.join('/')}`),
      fc.constantFrom('', '?a=b', '?x=/../core'),
    );
    await fc.assert(
      fc.asyncProperty(target, async ([method, path, query]) => {
        const before = upstream.seen.length;
        const url = `${origin}${path}${query}`;
        const response = await rawRequest(url, {
          method,
          headers: await signedHeaders(session, method, url),
        });
        expect(response.status, `${method} ${path}`).toBeLessThan(500);
        const forwarded = upstream.seen.slice(before);
        if (response.status < 300) {
          expect(forwarded).toHaveLength(1);
          expect(forwarded[0]).toMatchObject({ method, url: `${path}${query}` });
        } else {
          expect(forwarded, `${method} ${path} answered ${response.status}`).toEqual([]);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('answers 502 upstream_unavailable when the upstream does not answer', async () => {
    const dead = await freePort();
    // Another gateway for the same audience, with nothing behind it.
    const other = await gatewayFor(`http://127.0.0.1:${dead}`, origin);
    try {
      await eventually(() => other.gateway.enforcer.state().fresh);
      const response = await session.fetch(`${other.origin}/rules/edge-1`);
      expect(response.status).toBe(502);
      expect((await problem(response)).code).toBe('upstream_unavailable');
      const metrics = await (await fetch(`${other.origin}/metrics`)).text();
      expect(metrics).toMatch(/^tether_gateway_upstream_errors_total 1$/m);
    } finally {
      await other.gateway.close();
    }
  });

  it('counts decisions, mirror position, freshness and upstream latency in /metrics', async () => {
    const metrics = async () => (await fetch(`${origin}/metrics`)).text();
    const sample = (text: string, series: string) =>
      Number(
        text
          .split('\n')
          .find((line) => line.startsWith(`${series} `))
          ?.slice(series.length + 1) ?? 0,
      );
    const decisions = (text: string, code: string) =>
      sample(text, `tether_gateway_decisions_total{code="${code}"}`);
    const latencies = (text: string) =>
      sample(text, 'tether_gateway_upstream_duration_seconds_count{status="2xx"}');
    const before = await metrics();
    expect((await session.fetch(`${origin}/rules/edge-1`)).status).toBe(200);
    expect((await session.fetch(`${origin}/nowhere`)).status).toBe(404);
    expect((await session.fetch(`${origin}/rules/core`)).status).toBe(403);
    const wrongHtu = await fetch(`${origin}/rules/edge-1`, {
      headers: await signedHeaders(session, 'GET', `${origin}/rules/edge-2`),
    });
    expect(wrongHtu.status).toBe(401);
    const after = await metrics();
    for (const code of ['ok', 'route_not_found', 'insufficient_scope', 'invalid_dpop_proof'])
      expect(decisions(after, code) - decisions(before, code), code).toBe(1);
    expect(latencies(after) - latencies(before)).toBe(1);
    expect(after).toMatch(/^tether_gateway_mirror_position \d+$/m);
    expect(after).toMatch(/^tether_gateway_mirror_fresh 1$/m);
    expect(after).toMatch(/^tether_gateway_seconds_since_fresh [\d.e-]+$/m);
    expect(after).toMatch(/^tether_gateway_upstream_errors_total 0$/m);
  });

  it('refuses an ended session — with a fresh proof for the same token too — and the receipt lists the gateway as enforced', async () => {
    const ended = await firewallSession('NET-2');
    expect((await ended.fetch(`${origin}/rules/edge-1`)).status).toBe(200);
    const position = gateway.enforcer.state().position;
    await endSession(b.ctx, s.operator.caller, ended.info.id, 'completed', 'done');
    await eventually(() => gateway.enforcer.state().position > position);
    const before = upstream.seen.length;
    // BoundSession signs a fresh proof for the same, unexpired token on every call.
    for (let i = 0; i < 2; i++) {
      const after = await ended.fetch(`${origin}/rules/edge-1`);
      expect(after.status).toBe(401);
      expect(after.headers.get('www-authenticate')).toContain('the session has ended (completed)');
    }
    expect(upstream.seen.length).toBe(before);
    // The gateway acknowledged the end: the receipt names it as having enforced it.
    await eventually(async () => {
      const r = await s.operator.client.call<SessionReceipt>('GET', `/v1/sessions/${ended.info.id}/receipt`);
      return r.enforced;
    });
    const receipt = await s.operator.client.call<SessionReceipt>(
      'GET',
      `/v1/sessions/${ended.info.id}/receipt`,
    );
    expect(receipt.pending).toEqual([]);
    expect(receipt.peps).toEqual([
      expect.objectContaining({ name: 'edge-gateway', live: true, enforced_at: expect.any(String) }),
    ]);
    // The other session is untouched.
    expect((await session.fetch(`${origin}/rules/edge-1`)).status).toBe(200);
  });

  it('fails closed (503 on /healthz and on requests) once its budget passes with the broker gone, and recovers', async () => {
    const port = Number(new URL(brokerUrl).port);
    await within('closing the broker', brokerApp.close());
    await eventually(() => !gateway.enforcer.state().connected, 5000, 'the gateway seeing the broker gone');
    b.clock.advance(BUDGET_MS - 1000);
    expect((await within('a call inside the budget', session.fetch(`${origin}/rules/edge-1`))).status).toBe(
      200,
    );
    b.clock.advance(2000);

    const health = await within('/healthz once stale', fetch(`${origin}/healthz`));
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({
      status: 'stale',
      code: 'revocation_state_stale',
      connected: false,
    });
    const before = upstream.seen.length;
    const stale = await within('a call once stale', session.fetch(`${origin}/rules/edge-1`));
    expect(stale.status).toBe(503);
    expect(stale.headers.get('retry-after')).toBe('1');
    expect((await problem(stale)).code).toBe('revocation_state_stale');
    expect(upstream.seen.length).toBe(before);
    const metrics = await within('/metrics', fetch(`${origin}/metrics`));
    expect(await metrics.text()).toMatch(/^tether_gateway_mirror_fresh 0$/m);

    brokerApp = await buildApp(b.ctx);
    await within('the broker listening again', brokerApp.listen({ port, host: '127.0.0.1' }));
    await eventually(() => gateway.enforcer.state().fresh, 10_000, 'the gateway fresh again');
    expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    expect((await session.fetch(`${origin}/rules/edge-1`)).status).toBe(200);
  });
});

describe('upstream headers', () => {
  it('percent-encodes what it passes upstream, so a ticket cannot inject a header', async () => {
    const { upstreamHeaders } = await import('../../packages/cli/src/gateway/server.js');
    const out = upstreamHeaders(
      {
        authorization: 'DPoP x',
        dpop: 'y',
        'proxy-authorization': 'z',
        expect: '100-continue',
        te: 'trailers',
        connection: 'close, X-Trace',
        'x-trace': '1',
        'x-tether-principal': 'prn_forged',
        host: 'gw',
      },
      {
        allow: true,
        status: 200,
        code: 'ok',
        description: 'allowed',
        principal: 'prn_1',
        session: 'ses_1',
        ticket: 'NET-1\r\nx-admin: 1',
        entitlement: { type: 'tether_privilege', privilege: 'firewall-admin', actions: [], resources: [] },
      },
    );
    expect(out).toEqual({
      host: 'gw',
      'x-tether-principal': 'prn_1',
      'x-tether-session': 'ses_1',
      'x-tether-ticket': 'NET-1%0D%0Ax-admin%3A%201',
      'x-tether-privilege': 'firewall-admin',
    });
  });
});
