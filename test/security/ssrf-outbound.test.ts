import { randomUUID } from 'node:crypto';
import { Socket } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { useOutbound } from '../../packages/broker/src/net/client.js';
import { REMOTE_KEYS } from '../../packages/broker/src/net/key-sets.js';
import { OutboundClient } from '../../packages/broker/src/net/outbound.js';
import { deliverDue } from '../../packages/broker/src/ssf-streams/delivery.js';
import type { Store } from '../../packages/broker/src/store/database.js';
import type { BrokerClient } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import {
  closedPort,
  connectionsTo,
  FORBIDDEN,
  hugeBody,
  rawTcp,
  serve,
  settings,
} from '../support/outbound-targets.js';
import { refusal } from '../support/refusal.js';
import { describeEachStore } from '../support/stores.js';
import { exchangeSubjectToken } from '../support/token-exchange.js';

/**
 * Issue 9 item 4, from the attacker's side. A tenant admin (trust records, signal transmitters)
 * or a receiver (SSF push streams) chooses URLs the broker then calls, some of them on the word
 * of unauthenticated callers (a token exchange, a pushed SET). They try to make the broker reach
 * loopback, private networks and cloud metadata, to learn which ports are open from the error
 * texts, to exhaust its memory with a huge key set, and to make it fetch on every request.
 */

const ISSUER = 'https://ci.attacker.example';
const AUDIENCE = `${PUBLIC_URL}/tenants/acme`;
const UNREACHABLE = "the issuer's keys are unreachable; try again later";
/** The operator's allow-list of the broker-level tests: the loopback test servers, over http. */
const ALLOW_LOOPBACK = { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true };

describeEachStore('SSRF through the URLs the broker calls', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let admin: BrokerClient;
  let ciKey: CryptoKey;
  let ciJwk: JWK;
  const servers: { close: () => Promise<void> }[] = [];

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    ciKey = pair.privateKey;
    ciJwk = { ...(await exportJWK(pair.publicKey)), kid: 'ci-1', alg: 'ES256' };
  });
  afterAll(() => fixture.cleanup());
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await b.close();
  });

  async function start(config: Record<string, unknown> = ALLOW_LOOPBACK) {
    store = await fixture.open();
    b = await startTestBroker(store, { config });
    admin = b.client(b.adminIdentity);
    await admin.call('POST', '/v1/principals', { name: 'ci-bot', kind: 'pipeline' });
  }

  const track = <T extends { close: () => Promise<void> }>(s: T): T => {
    servers.push(s);
    return s;
  };

  /** What the attack could change: trust records, transmitters, streams and every audit head. */
  const footprint = async () =>
    JSON.stringify({
      federations: await store.db.selectFrom('federations').selectAll().orderBy('id').execute(),
      transmitters: await store.db.selectFrom('signal_transmitters').selectAll().orderBy('id').execute(),
      streams: await store.db.selectFrom('ssf_streams').selectAll().orderBy('id').execute(),
      heads: await store.db.selectFrom('audit_heads').selectAll().orderBy('tenant_id').execute(),
    });

  const trust = (name: string, jwksUri: string) =>
    admin.call('POST', '/v1/federations', {
      name,
      issuer: ISSUER,
      audience: `${AUDIENCE}/${name}`,
      jwks_uri: jwksUri,
      principal_mapping: [{ match: { repository: 'acme/web' }, principal: 'ci-bot' }],
    });

  /** An unauthenticated token exchange with a token for the trust record `name`. */
  async function exchange(
    name: string,
    kid = 'ci-1',
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const now = Math.floor(b.clock.now() / 1000);
    const token = await new SignJWT({ repository: 'acme/web', run_id: '1', jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid })
      .setIssuer(ISSUER)
      .setAudience(`${AUDIENCE}/${name}`)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(ciKey);
    const res = await exchangeSubjectToken(b, token);
    expect(res.statusCode, res.body).toBeLessThan(500);
    return { status: res.statusCode, body: res.json() };
  }

  it('refuses loopback, private, metadata and clear-text URLs when trust records, transmitters and push streams are created', async () => {
    await start({});
    const receiver: Actor = await b.principal('saas-receiver', 'service', ['receiver']);
    // Both callers hold their broker-API tokens already (getting one is audited).
    await receiver.client.call('GET', '/v1/ssf/streams');
    await admin.call('GET', '/v1/federations');
    const before = await footprint();
    for (const url of FORBIDDEN) {
      const attempts = [
        () => trust('evil', url),
        () => admin.call('POST', '/v1/signal-transmitters', { name: 'evil', issuer: ISSUER, jwks_uri: url }),
        () =>
          receiver.client.call('POST', '/v1/ssf/streams', {
            delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: url },
          }),
      ];
      for (const attempt of attempts) {
        const err = await refusal(attempt());
        expect({ status: err.status, code: err.code }, url).toEqual({
          status: 400,
          code: 'destination_refused',
        });
      }
    }
    // The SSF stream's push endpoint with the receiver's chosen Authorization: refused just the same.
    const withAuth = await refusal(
      receiver.client.call('POST', '/v1/ssf/streams', {
        delivery: {
          method: 'urn:ietf:rfc:8935',
          endpoint_url: 'https://169.254.169.254/latest/api/token',
          authorization_header: 'Bearer attacker-chosen',
        },
      }),
    );
    expect(withAuth.code).toBe('destination_refused');
    expect(await footprint()).toBe(before);
  });

  it('refuses at fetch time what creation could not tell: a name resolving to loopback, a record written before the rule', async () => {
    await start({});
    const connect = vi.spyOn(Socket.prototype, 'connect');
    const loopback = track(
      await serve((_req, res) => res.writeHead(200).end(JSON.stringify({ keys: [ciJwk] }))),
    );
    const resolver = vi.fn(async () => [{ address: '127.0.0.1', family: 4 }]);
    useOutbound(b.ctx, new OutboundClient(settings(), { resolver }));
    await trust('rebound', `https://jwks.attacker.example:${loopback.port}/jwks`);
    await trust('legacy', 'https://jwks.public.example/jwks');
    // A record stored before this rule existed, pointing at a private address.
    await store.db
      .updateTable('federations')
      .set({ jwks_uri: 'https://10.0.0.1/jwks' })
      .where('name', '=', 'legacy')
      .execute();
    for (const name of ['rebound', 'legacy']) {
      const answer = await exchange(name);
      expect(answer).toEqual({
        status: 400,
        body: { error: 'invalid_grant', error_description: UNREACHABLE },
      });
    }
    expect(loopback.hits()).toBe(0);
    expect(connectionsTo(connect, '10.0.0.1')).toBe(0);
    expect(connectionsTo(connect, String(loopback.port))).toBe(0);
    expect(b.logs.join('\n')).toContain('name resolves to a non-public address');
  });

  it('answers the same text for a closed port, an open non-HTTP port, an error status, a redirect, garbage and an oversized set', async () => {
    await start();
    const tcp = track(await rawTcp());
    const notFound = track(await serve((_req, res) => res.writeHead(404).end('nginx: not found')));
    const garbage = track(await serve((_req, res) => res.writeHead(200).end('<html>admin console</html>')));
    const inner = track(
      await serve((_req, res) => res.writeHead(200).end(JSON.stringify({ keys: [ciJwk] }))),
    );
    const redirect = track(await serve((_req, res) => res.writeHead(302, { location: inner.url() }).end()));
    // The issue's 64 MB set: cut off at the cap, never read through.
    const big = hugeBody(64 * 1024 * 1024);
    const huge = track(await serve(big.handler));
    const targets: Record<string, string> = {
      closed: `http://127.0.0.1:${await closedPort()}/jwks`,
      tcp: `http://127.0.0.1:${tcp.port}/jwks`,
      status: notFound.url(),
      garbage: garbage.url(),
      redirect: redirect.url(),
      huge: huge.url(),
    };
    for (const [name, url] of Object.entries(targets)) await trust(name, url);
    const answers = new Map<string, unknown>();
    for (const name of Object.keys(targets)) answers.set(name, await exchange(name));
    for (const [name, answer] of answers)
      expect(answer, name).toEqual({
        status: 400,
        body: { error: 'invalid_grant', error_description: UNREACHABLE },
      });
    expect(inner.hits()).toBe(0);
    await vi.waitFor(() => expect(big.seen.closed).toBe(true));
    expect(big.seen.finished).toBe(false);
    expect(big.seen.written).toBeLessThan(16 * 1024 * 1024);
  });

  it('fetches a failing or unknown-kid key set at most once per window, however many unauthenticated exchanges ask', async () => {
    await start();
    const failing = track(await serve((_req, res) => res.writeHead(503).end()));
    const working = track(
      await serve((_req, res) => res.writeHead(200).end(JSON.stringify({ keys: [ciJwk] }))),
    );
    await trust('failing', failing.url());
    await trust('working', working.url());

    const flood = async (name: string, kid?: string) => {
      const answers = await Promise.all(Array.from({ length: 12 }, () => exchange(name, kid)));
      for (const a of answers) expect(a.status).toBe(400);
      for (let i = 0; i < 12; i++) expect((await exchange(name, kid)).status).toBe(400);
    };
    await flood('failing');
    expect(failing.hits()).toBe(1);
    await flood('working', 'unknown-kid');
    expect(working.hits()).toBe(1);

    // The next window allows one more attempt each, and no more.
    b.clock.advance(REMOTE_KEYS.cooldownMs);
    await flood('failing');
    await flood('working', 'unknown-kid');
    expect(failing.hits()).toBe(2);
    expect(working.hits()).toBe(2);
  });

  it('fetches a transmitter key set at most once per window, however many unauthenticated SETs are pushed', async () => {
    await start();
    const failing = track(await serve((_req, res) => res.writeHead(500).end()));
    await admin.call('POST', '/v1/signal-transmitters', {
      name: 'idp',
      issuer: ISSUER,
      jwks_uri: failing.url(),
    });
    const now = Math.floor(b.clock.now() / 1000);
    for (let i = 0; i < 20; i++) {
      const set = await new SignJWT({
        events: { 'https://schemas.openid.net/secevent/caep/event-type/session-revoked': {} },
        sub_id: { format: 'opaque', id: 'x' },
      })
        .setProtectedHeader({ alg: 'ES256', kid: 'ci-1', typ: 'secevent+jwt' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(now)
        .setJti(randomUUID())
        .sign(ciKey);
      const res = await b.app.inject({
        method: 'POST',
        url: '/v1/signals',
        headers: { 'content-type': 'application/secevent+jwt' },
        payload: set,
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        err: 'authentication_failed',
        description: "the transmitter's keys could not be fetched; try again later",
      });
    }
    expect(failing.hits()).toBe(1);
  });

  it('does not push SETs to a redirect target, a name resolving to loopback, or a closed port, and says only "unreachable"', async () => {
    await start();
    const receiver: Actor = await b.principal('saas-receiver', 'service', ['receiver']);
    const inner = track(await serve((_req, res) => res.writeHead(202).end()));
    const redirect = track(
      await serve((_req, res) => res.writeHead(307, { location: inner.url('/events') }).end()),
    );
    const resolved = track(await serve((_req, res) => res.writeHead(202).end()));
    const resolver = vi.fn(async () => [{ address: '127.0.0.1', family: 4 }]);
    useOutbound(
      b.ctx,
      new OutboundClient(
        settings({
          allowHosts: ['127.0.0.1'],
          allowHttp: true,
          maxResponseBytes: 256 * 1024,
          timeoutMs: 10_000,
        }),
        { resolver },
      ),
    );
    const endpoints = [
      redirect.url('/events'),
      `https://push.attacker.example:${resolved.port}/events`,
      `http://127.0.0.1:${await closedPort()}/events`,
    ];
    for (const endpoint of endpoints) {
      const { stream_id } = await receiver.client.call<{ stream_id: string }>('POST', '/v1/ssf/streams', {
        delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: endpoint, authorization_header: 'Bearer x' },
      });
      await receiver.client.call('POST', '/v1/ssf/verify', { stream_id });
    }
    expect(await deliverDue(b.ctx)).toEqual({ delivered: 0, refused: 0, failed: 3 });
    const errors = await store.db.selectFrom('ssf_outbox').select('last_error').execute();
    expect(errors.map((e) => e.last_error)).toEqual(['unreachable', 'unreachable', 'unreachable']);
    expect(inner.hits() + resolved.hits()).toBe(0);
  });
});
