/**
 * Flooding the broker: attempts an attacker can repeat at will (replayed assertions, bad DPoP
 * proofs, bad API tokens, stream after stream, slow connections) must neither write without
 * bound to the audit trail nor exhaust the broker, and one tenant's flood must not limit another.
 */
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { IdentityFile } from '@tether-broker/protocol';
import { importJWK, type JWK, type JWTPayload, SignJWT } from 'jose';
import { afterEach, expect, it } from 'vitest';
import type { ConfigInput } from '../../packages/broker/src/config/config.js';
import { flushDueRefusals } from '../../packages/broker/src/core/audit-refusal.js';
import { bootstrapTenant } from '../../packages/broker/src/records/bootstrap.js';
import { generateSessionKey } from '../../packages/client/src/index.js';
import { handmadeProof } from '../support/attacks.js';
import { GENEROUS_LIMITS, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { openSse, type SseStream } from '../support/sse.js';
import { describeEachStore } from '../support/stores.js';

const TOKEN_URL = `${PUBLIC_URL}/oauth/token`;
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FLOOD = 2000;
const WINDOW_S = 60;

interface AuditRow {
  action: string;
  outcome: string;
  details: Record<string, unknown>;
}

describeEachStore('flooding', (fixture) => {
  let b: TestBroker | undefined;
  const streams: SseStream[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    for (const s of sockets.splice(0)) s.destroy();
    await b?.close();
    b = undefined;
    await fixture.cleanup();
  });

  async function broker(limits: NonNullable<ConfigInput['limits']>, config: Partial<ConfigInput> = {}) {
    b = await startTestBroker(await fixture.open(), {
      config: { limits: { ...GENEROUS_LIMITS, windowSeconds: WINDOW_S, ...limits }, ...config },
    });
    return b;
  }

  /** Every audit record of every tenant, oldest first. */
  async function auditRows(t: TestBroker): Promise<AuditRow[]> {
    const rows = await t.ctx.store.db
      .selectFrom('audit_records')
      .select(['action', 'outcome', 'details'])
      .orderBy('at')
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({
      action: r.action,
      outcome: r.outcome,
      details: (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as Record<string, unknown>,
    }));
  }

  async function assertion(t: TestBroker, identity: IdentityFile, lifetimeS = 60): Promise<string> {
    const iat = Math.floor(t.clock.now() / 1000);
    const key = await importJWK(identity.key as JWK, 'EdDSA');
    return new SignJWT({
      iss: identity.principal,
      sub: identity.principal,
      aud: TOKEN_URL,
      jti: randomUUID(),
    } as JWTPayload)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: identity.key.kid as string })
      .setIssuedAt(iat)
      .setExpirationTime(iat + lifetimeS)
      .sign(key);
  }

  function login(
    t: TestBroker,
    clientAssertion: string,
    headers: Record<string, string> = {},
    remoteAddress?: string,
  ) {
    return t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: JWT_BEARER,
        client_assertion: clientAssertion,
      }).toString(),
      ...(remoteAddress ? { remoteAddress } : {}),
    });
  }

  /** Sends `count` requests, a few at a time, and answers the status codes seen, with how many each. */
  async function flood(count: number, send: (i: number) => Promise<{ statusCode: number }>) {
    const seen: Record<number, number> = {};
    for (let i = 0; i < count; i += 25) {
      const batch = await Promise.all(Array.from({ length: Math.min(25, count - i) }, (_, j) => send(i + j)));
      for (const res of batch) seen[res.statusCode] = (seen[res.statusCode] ?? 0) + 1;
    }
    return seen;
  }

  it('counts 2,000 replays of an expired client assertion into one record per source and window', async () => {
    const t = await broker({});
    const alice = await t.principal('alice');
    const expired = await assertion(t, alice.identity);
    t.clock.advance(10 * 60_000);
    const before = (await auditRows(t)).length;

    const seen = await flood(FLOOD, (i) =>
      login(t, expired, {}, i % 2 === 0 ? '198.51.100.7' : '203.0.113.9'),
    );
    expect(seen).toEqual({ 401: FLOOD });
    const first = (await auditRows(t)).slice(before);
    // The first attempt of each source at once, each with its count; not one record per attempt.
    expect(first).toHaveLength(2);
    for (const r of first)
      expect(r).toMatchObject({
        action: 'auth.token_issued',
        outcome: 'refused',
        details: { reason: 'client_assertion has expired', count: 1 },
      });
    expect(first.map((r) => r.details.source).sort()).toEqual(['198.51.100.7', '203.0.113.9']);

    // Within the window nothing more is written; when it ends, one record per source with the rest.
    await flushDueRefusals(t.ctx);
    expect((await auditRows(t)).length).toBe(before + 2);
    t.clock.advance(WINDOW_S * 1000);
    await flushDueRefusals(t.ctx);
    const all = (await auditRows(t)).slice(before);
    expect(all).toHaveLength(4);
    expect(all.reduce((n, r) => n + (r.details.count as number), 0)).toBe(FLOOD);
    expect(all.slice(2).map((r) => r.details.count)).toEqual([FLOOD / 2 - 1, FLOOD / 2 - 1]);
    // Still part of the chain, which verifies.
    const verified = await t.client(t.adminIdentity).call('GET', '/v1/audit/verify');
    expect(verified, JSON.stringify(verified)).toMatchObject({ ok: true });
  });

  it('writes what is still counted when the broker closes', async () => {
    const t = await broker({});
    const alice = await t.principal('alice');
    const expired = await assertion(t, alice.identity);
    t.clock.advance(10 * 60_000);
    const before = (await auditRows(t)).length;
    await flood(50, () => login(t, expired));
    expect((await auditRows(t)).length).toBe(before + 1);
    await t.app.close();
    b = undefined;
    const after = (await auditRows(t)).slice(before);
    expect(after.map((r) => r.details.count)).toEqual([1, 49]);
  });

  it('cuts off a source sending bad DPoP proofs to /oauth/token after the limit, with no audit record', async () => {
    const t = await broker({ oauthPerSource: 100 });
    const alice = await t.principal('alice');
    const auditBefore = (await auditRows(t)).length;
    const attacker = await generateSessionKey();
    // Valid proofs of the attacker's own key, each with an unsigned (worthless) assertion.
    const seen = await flood(FLOOD, async () =>
      login(t, `${alice.identity.principal}.not.signed`, {
        dpop: await handmadeProof(attacker, { method: 'POST', url: TOKEN_URL, now: t.clock.now() }),
      }),
    );
    expect(seen).toEqual({ 401: 100, 429: FLOOD - 100 });
    const proofs = await t.ctx.store.db.selectFrom('dpop_jtis').select('jti').execute();
    expect(proofs.length).toBeLessThanOrEqual(100);
    expect((await auditRows(t)).length).toBe(auditBefore);

    const limited = await login(t, 'x.y.z');
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual({
      error: 'slow_down',
      error_description: expect.stringMatching(/retry after/),
    });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(WINDOW_S);
    expect(limited.headers['cache-control']).toBe('no-store');
    // Another source is not affected; and the limited one is served again once the window ends.
    expect((await login(t, await assertion(t, alice.identity), {}, '192.0.2.1')).statusCode).toBe(200);
    t.clock.advance(WINDOW_S * 1000);
    expect((await login(t, await assertion(t, alice.identity))).statusCode).toBe(200);
  });

  it('refuses a source that keeps sending bad API tokens, before any token check, and no one else', async () => {
    const t = await broker({ authFailuresPerSource: 20 });
    const alice = await t.principal('alice');
    const token = await alice.client.bearerToken();
    const auditBefore = (await auditRows(t)).length;
    const me = (token: string, remoteAddress = '198.51.100.7') =>
      t.app.inject({
        method: 'GET',
        url: '/v1/me',
        headers: { authorization: `Bearer ${token}` },
        remoteAddress,
      });
    const seen = await flood(FLOOD, (i) => me(`bogus.${i}.token`));
    expect(seen[401]).toBeGreaterThanOrEqual(20);
    expect(seen[401]).toBeLessThan(20 + 25);
    expect(seen[429]).toBe(FLOOD - (seen[401] ?? 0));
    // Even a good token from that source waits for the window; from elsewhere it works.
    const refused = await me(token);
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ code: 'rate_limited', status: 429 });
    expect(refused.headers['retry-after']).toBeDefined();
    expect((await me(token, '192.0.2.1')).statusCode).toBe(200);
    expect((await auditRows(t)).length).toBe(auditBefore);
    t.clock.advance(WINDOW_S * 1000);
    expect((await me(token)).statusCode).toBe(200);
  });

  it('limits calls per principal, and one tenant flooding does not limit another tenant', async () => {
    const t = await broker({ perPrincipal: 30 });
    const alice = await t.principal('alice');
    const bob = await t.principal('bob');
    const other = await bootstrapTenant(t.ctx.store, t.clock, {
      tenantName: 'globex',
      adminName: 'globex-admin',
    });
    const globex = t.client({
      broker: PUBLIC_URL,
      tenant: other.tenant.id,
      principal: other.admin.id,
      key: other.adminPrivateJwk as Record<string, unknown>,
    });
    const me = async (client: typeof alice.client) =>
      t.app.inject({
        method: 'GET',
        url: '/v1/me',
        headers: { authorization: `Bearer ${await client.bearerToken()}` },
      });

    const seen = await flood(200, () => me(alice.client));
    expect(seen).toEqual({ 200: 30, 429: 170 });
    const limited = await me(alice.client);
    expect(limited.json()).toMatchObject({ code: 'rate_limited' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Same source, same tenant, other principal; and another tenant's admin: untouched budgets.
    expect((await me(bob.client)).statusCode).toBe(200);
    expect((await me(globex)).statusCode).toBe(200);
    t.clock.advance(WINDOW_S * 1000);
    expect((await me(alice.client)).statusCode).toBe(200);
  });

  it('caps the revocation streams a PEP principal may hold open', async () => {
    const t = await broker({ streamsPerPrincipal: 2 }, { heartbeatIntervalMs: 50 });
    const pep = await t.principal('edge-pep', 'service', ['pep']);
    const otherPep = await t.principal('core-pep', 'service', ['pep']);
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const follow = async (actor: typeof pep) => {
      const stream = await openSse(`${base}/v1/events`, {
        authorization: `Bearer ${await actor.client.bearerToken()}`,
      });
      streams.push(stream);
      return stream;
    };
    const first = await follow(pep);
    const second = await follow(pep);
    await first.nextOf('heartbeat');
    await second.nextOf('heartbeat');
    const third = await follow(pep);
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({ code: 'rate_limited' });
    expect(third.headers['retry-after']).toBeDefined();
    expect(t.ctx.revocations.listenerCount(t.tenant.id)).toBe(2);
    // Another PEP principal has its own cap; a closed stream frees its place.
    expect((await follow(otherPep)).status).toBe(200);
    first.close();
    await eventually(() => t.ctx.revocations.listenerCount(t.tenant.id) === 2);
    const again = await follow(pep);
    expect(again.status).toBe(200);
    await again.nextOf('heartbeat');
  });

  /** Opens a raw connection and answers what the server sent, once it closed the connection. */
  async function rawConnection(base: string, write: (socket: Socket) => void): Promise<string> {
    const { hostname, port } = new URL(base);
    const socket = connect(Number(port), hostname);
    sockets.push(socket);
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    write(socket);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve('still open'), 5000);
      }),
    ]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
    return received;
  }

  it('closes connections whose headers or body arrive too slowly', async () => {
    const t = await broker({ headersTimeoutMs: 200, requestTimeoutMs: 400, idleTimeoutMs: 5000 });
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const slowHeaders = await rawConnection(base, (s) =>
      s.write('GET /healthz HTTP/1.1\r\nHost: broker.test\r\n'),
    );
    expect(slowHeaders).toMatch(/^HTTP\/1\.1 408 /);
    const slowBody = await rawConnection(base, (s) =>
      s.write(
        'POST /oauth/token HTTP/1.1\r\nHost: broker.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type',
      ),
    );
    expect(slowBody).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('answers 401 to an unauthenticated upload and closes the connection without reading the body', async () => {
    const t = await broker({});
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const answer = await rawConnection(base, (s) =>
      s.write(
        `POST /v1/principals HTTP/1.1\r\nHost: broker.test\r\nContent-Type: application/json\r\nContent-Length: ${200 * 1024 * 1024}\r\n\r\n{"name":`,
      ),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer.toLowerCase()).toContain('connection: close');
  });

  it('refuses an over-large body at /oauth/token', async () => {
    const t = await broker({ oauthBodyLimitBytes: 2048 });
    const res = await login(t, 'a'.repeat(4096));
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).toBeLessThan(500);
    expect(res.json()).toEqual({
      error: 'invalid_request',
      error_description: expect.stringMatching(/too large/i),
    });
  });

  it('refuses /metrics without the metrics token when one is set, and to remote callers when none is', async () => {
    const token = 'metrics-token-0123456789abcdef';
    const t = await broker({}, { metricsToken: token });
    const scrape = (headers: Record<string, string> = {}) =>
      t.app.inject({ method: 'GET', url: '/metrics', headers });
    const none = await scrape();
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ code: 'unauthenticated' });
    expect(none.body).not.toContain('tether_http_requests_total');
    expect((await scrape({ authorization: `Bearer ${token}x` })).statusCode).toBe(401);
    expect((await scrape({ authorization: `Bearer ${token.slice(1)}` })).statusCode).toBe(401);
    const allowed = await scrape({ authorization: `Bearer ${token}` });
    expect(allowed.statusCode).toBe(200);
    expect(allowed.body).toContain('tether_http_requests_total');
    expect(t.logs.join('\n')).not.toContain(token);
    await t.close();

    const open = await broker({});
    const remote = await open.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '203.0.113.9' });
    expect(remote.statusCode).toBe(403);
    expect(remote.json()).toMatchObject({ code: 'forbidden' });
    expect((await open.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });
});
