import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type CryptoKey as JoseKey,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  authenticateConsoleSession,
  startConsoleSession,
} from '../../packages/broker/src/auth/console-session.js';
import { readRevocationLog } from '../../packages/broker/src/revocation/log.js';
import { inTransaction } from '../../packages/broker/src/store/database.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const IDP = 'https://idp.acme.example';
const OLIVIA_EMAIL = 'Olivia@Acme.example';

const SESSION_REVOKED = { [`${CAEP}session-revoked`]: { event_timestamp: 0 } };
const deviceCompliance = (status: string, at: number) => ({
  [`${CAEP}device-compliance-change`]: {
    previous_status: status === 'compliant' ? 'not-compliant' : 'compliant',
    current_status: status,
    event_timestamp: at,
  },
});

/** A transmitter's signing key and the JWKS it publishes on loopback (counting the fetches). */
interface Idp {
  privateKey: JoseKey;
  publicKey: JoseKey;
  kid: string;
  jwksUri: string;
  fetches: number;
  server: Server;
}

async function startIdp(): Promise<Idp> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `rsa-${randomUUID().slice(0, 8)}`;
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] };
  const idp = { privateKey, publicKey, kid, fetches: 0 } as Idp;
  idp.server = createServer((req, res) => {
    if (req.url === '/jwks.json') {
      idp.fetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
    } else if (req.url === '/huge.json') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(`{"keys":[],"pad":"${'x'.repeat(200_000)}"}`);
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => idp.server.listen(0, '127.0.0.1', resolve));
  idp.jwksUri = `http://127.0.0.1:${(idp.server.address() as AddressInfo).port}/jwks.json`;
  return idp;
}

interface SetOptions {
  key?: JoseKey | Uint8Array;
  kid?: string;
  alg?: string;
  typ?: string | undefined;
  iss?: string;
  aud?: string | string[];
  iat?: number;
  jti?: string;
  subId?: Record<string, unknown>;
  events?: Record<string, unknown>;
}

/**
 * CAEP signals in: Security Event Tokens pushed by a registered transmitter (RFC 8417, RFC
 * 8935) change the trust context of the principals they name and re-evaluate their sessions.
 * Everything a forger, a replayer or a confused transmitter sends is refused with RFC 8935's
 * error format and changes nothing.
 */
/** Each tenant's own audience: transmitter audiences are namespaced by tenant. */
const ACME_AUD = `${PUBLIC_URL}/tenants/acme`;
const GLOBEX_AUD = `${PUBLIC_URL}/tenants/globex`;
/** The loopback IdP is on the operator's allow-list, over http. */
const OUTBOUND = { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true };

describeEachStore('CAEP signals in (POST /v1/signals)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let idp: Idp;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: OUTBOUND });
    s = await setUpScenario(b);
    idp = await startIdp();
    await s.admin.call('PATCH', '/v1/principals/olivia', { attributes: { email: 'olivia@acme.example' } });
    await s.admin.call('PATCH', '/v1/principals/deploy-bot', { attributes: { idp_sub: 'wl-42' } });
    // firewall-admin needs a compliant device (a privilege tag policy reads); wiki-edit does not.
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', {
      attributes: { requires_compliant_device: 'true' },
    });
    await s.admin.call('POST', '/v1/privileges', {
      name: 'wiki-edit',
      actions: ['wiki:edit'],
      resources: ['wiki/*'],
      audiences: ['https://wiki.example'],
      approval: { approvals: 1, approvers: { groups: ['approvers'] } },
    });
    const current = await s.admin.call<{ policies: Record<string, string> }>('GET', '/v1/policies');
    await s.admin.call('PUT', '/v1/policies', {
      policies: {
        ...current.policies,
        'compliant-device': `forbid(principal, action == Tether::Action::"continue", resource)
          when { resource.hasTag("requires_compliant_device")
            && resource.getTag("requires_compliant_device") == "true"
            && context.trust.device_compliance == "not-compliant" };`,
      },
    });
    await s.admin.call('POST', '/v1/signal-transmitters', {
      name: 'acme-idp',
      issuer: IDP,
      jwks_uri: idp.jwksUri,
    });
    await b.ctx.reevaluation.idle();
  });
  afterEach(async () => {
    await b.ctx.reevaluation.idle();
    await b.close();
    await new Promise((resolve) => idp.server.close(resolve));
  });

  const nowS = () => Math.floor(b.clock.now() / 1000);

  async function sign(o: SetOptions = {}): Promise<string> {
    const claims: JWTPayload = {
      iss: o.iss ?? IDP,
      aud: o.aud ?? ACME_AUD,
      iat: o.iat ?? nowS(),
      jti: o.jti ?? randomUUID(),
      sub_id: o.subId ?? { format: 'email', email: OLIVIA_EMAIL },
      events: o.events ?? SESSION_REVOKED,
    };
    const header: Record<string, unknown> = { alg: o.alg ?? 'RS256', kid: o.kid ?? idp.kid };
    if (o.typ !== undefined || !('typ' in o)) header.typ = o.typ ?? 'secevent+jwt';
    return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(o.key ?? idp.privateKey);
  }

  const push = (body: string, contentType = 'application/secevent+jwt') =>
    b.app.inject({
      method: 'POST',
      url: '/v1/signals',
      headers: { 'content-type': contentType },
      payload: body,
    });

  async function approvedSession(actor: Actor, privilege: string, ticket?: string): Promise<BoundSession> {
    const req = await actor.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege,
      ...(ticket ? { ticket } : {}),
      justification: 'task',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return BoundSession.activate(actor.client, req.id);
  }
  const firewall = () => approvedSession(s.operator, 'firewall-admin', 'NET-7');
  const wiki = () => approvedSession(s.operator, 'wiki-edit');
  async function deploy(): Promise<BoundSession> {
    const req = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 900,
    });
    return BoundSession.activate(s.pipeline.client, req.id);
  }
  const stateOf = async (sess: BoundSession) =>
    s.admin.call<{ state: string; end_reason: string | null }>('GET', `/v1/sessions/${sess.info.id}`);

  /** Everything a refused SET must leave as it was. */
  async function snapshot() {
    const db = b.ctx.store.db;
    return {
      sessions: await db
        .selectFrom('sessions')
        .select(['id', 'state', 'end_reason', 'grant'])
        .orderBy('id')
        .execute(),
      audit: await db.selectFrom('audit_heads').selectAll().orderBy('tenant_id').execute(),
      revocations: await db.selectFrom('revocation_heads').selectAll().execute(),
      jtis: (await db.selectFrom('signal_jtis').selectAll().execute()).length,
      trust: await db.selectFrom('trust_contexts').selectAll().orderBy('principal_id').execute(),
      jobs: (await db.selectFrom('reevaluation_jobs').selectAll().execute()).length,
    };
  }

  function expectSetError(res: LightMyRequestResponse, err: string): void {
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json() as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['description', 'err']);
    expect(body.err).toBe(err);
    expect(typeof body.description).toBe('string');
  }

  it('a session-revoked SET for the principal ends its live sessions (trust_changed), and only theirs', async () => {
    // olivia is also signed in to the console (a browser's cookie): that sign-in ends too.
    const signedIn = await inTransaction(b.ctx.store, (tx) =>
      startConsoleSession(tx, {
        tenantId: b.tenant.id,
        principalId: s.operator.caller.principal.id,
        passkeyId: 'test-passkey',
        now: b.clock.now(),
      }),
    );
    const consoleCall = () =>
      authenticateConsoleSession(b.ctx, { cookie: signedIn.cookie, csrf: undefined, method: 'GET' });
    expect((await consoleCall()).principal.name).toBe('olivia');
    const a = await firewall();
    const c = await wiki();
    const other = await deploy();
    const jti = randomUUID();
    const res = await push(await sign({ jti }));
    expect(res.statusCode).toBe(202);
    expect(res.body).toBe('');
    // Ended with the signal's own transaction.
    expect(await stateOf(a)).toMatchObject({ state: 'ended', end_reason: 'trust_changed' });
    expect(await stateOf(c)).toMatchObject({ state: 'ended', end_reason: 'trust_changed' });
    expect(await stateOf(other)).toMatchObject({ state: 'active' });
    expect((await refusal(a.refresh())).code).toBe('invalid_grant');
    await expect(consoleCall()).rejects.toMatchObject({ code: 'unauthenticated' });

    const log = await readRevocationLog(b.ctx.store, b.tenant.id, 0, 1000);
    expect(log.filter((e) => e.event.type === 'session_ended').map((e) => e.event.data)).toEqual(
      expect.arrayContaining([expect.objectContaining({ sid: a.info.id, reason: 'trust_changed' })]),
    );
    const trail = await s.admin.call<{
      records: { action: string; actor: string; details: Record<string, unknown> }[];
    }>('GET', `/v1/audit?session=${a.info.id}`);
    const ended = trail.records.find((r) => r.action === 'session.ended');
    expect(ended?.details).toMatchObject({
      reason: 'trust_changed',
      trigger: {
        kind: 'signal',
        jti,
        event_type: `${CAEP}session-revoked`,
        issuer: IDP,
        transmitter: 'acme-idp',
      },
    });
    const received = (
      await s.admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
        'GET',
        '/v1/audit?limit=1000',
      )
    ).records.find((r) => r.action === 'signal.received');
    expect(received?.details).toMatchObject({
      jti,
      issuer: IDP,
      effect: 'sessions_ended',
      principals: [s.operator.caller.principal.id],
    });
    expect(received?.details.ended_sessions).toEqual(expect.arrayContaining([a.info.id, c.info.id]));
    expect(await s.admin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
  });

  it('device-compliance-change to not-compliant ends the sessions whose policy needs a compliant device and leaves the others', async () => {
    const needsCompliance = await firewall();
    const plain = await wiki();
    const res = await push(
      await sign({
        subId: {
          format: 'complex',
          user: { format: 'email', email: OLIVIA_EMAIL },
          device: { format: 'opaque', id: 'laptop-7' },
        },
        events: deviceCompliance('not-compliant', nowS()),
      }),
    );
    expect(res.statusCode, res.body).toBe(202);
    await b.ctx.reevaluation.idle();
    expect(await stateOf(needsCompliance)).toMatchObject({ state: 'ended', end_reason: 'trust_changed' });
    expect(await stateOf(plain)).toMatchObject({ state: 'active' });
    await plain.refresh();

    // While the device is not compliant, such a session cannot even start.
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-8',
      justification: 'again',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    expect((await refusal(BoundSession.activate(s.operator.client, req.id))).code).toBe('not_eligible');

    // An older report arriving late changes nothing; a newer one restores compliance.
    b.clock.advance(5000);
    expect((await push(await sign({ events: deviceCompliance('compliant', nowS() - 60) }))).statusCode).toBe(
      202,
    );
    expect((await refusal(BoundSession.activate(s.operator.client, req.id))).code).toBe('not_eligible');
    expect((await push(await sign({ events: deviceCompliance('compliant', nowS()) }))).statusCode).toBe(202);
    await b.ctx.reevaluation.idle();
    const again = await BoundSession.activate(s.operator.client, req.id);
    expect(await stateOf(again)).toMatchObject({ state: 'active' });
    // Only the JWKS's first use fetched it: later SETs were verified with the cached keys.
    expect(idp.fetches).toBe(1);
  });

  it('maps iss_sub, opaque session ids and complex subjects; an unknown subject is accepted and changes no session', async () => {
    const pipeline = await deploy();
    const first = await firewall();
    const second = await wiki();
    // The complex subject names one of olivia's sessions by its Tether id: only that one ends.
    const bySession = await push(
      await sign({
        subId: {
          format: 'complex',
          user: { format: 'email', email: OLIVIA_EMAIL },
          session: { format: 'opaque', id: first.info.id },
        },
      }),
    );
    expect(bySession.statusCode).toBe(202);
    expect(await stateOf(first)).toMatchObject({ state: 'ended', end_reason: 'trust_changed' });
    expect(await stateOf(second)).toMatchObject({ state: 'active' });
    // A session named with someone else as its user is no match.
    expect(
      (
        await push(
          await sign({
            subId: {
              format: 'complex',
              user: { format: 'email', email: 'nobody@acme.example' },
              session: { format: 'opaque', id: second.info.id },
            },
          }),
        )
      ).statusCode,
    ).toBe(202);
    expect(await stateOf(second)).toMatchObject({ state: 'active' });
    // iss_sub with the transmitter's issuer maps through the principal's idp_sub attribute.
    expect(
      (await push(await sign({ subId: { format: 'iss_sub', iss: IDP, sub: 'wl-42' } }))).statusCode,
    ).toBe(202);
    expect(await stateOf(pipeline)).toMatchObject({ state: 'ended', end_reason: 'trust_changed' });
    const unknown = await push(
      await sign({ subId: { format: 'phone_number', phone_number: '+12065550100' } }),
    );
    expect(unknown.statusCode).toBe(202);
    expect(await stateOf(second)).toMatchObject({ state: 'active' });
    const audit = await s.admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/v1/audit?limit=1000',
    );
    expect(audit.records.filter((r) => r.action === 'signal.received').map((r) => r.details.effect)).toEqual([
      'sessions_ended',
      'no_subject',
      'sessions_ended',
      'no_subject',
    ]);
  });

  it('stays in the tenant of the registration the SET is addressed to', async () => {
    const globex = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const admin2 = globex.client(globex.adminIdentity);
    const twin = await globex.principal('olivia', 'human', [], { email: 'olivia@acme.example' });
    await admin2.call('POST', '/v1/privileges', {
      name: 'wiki-edit',
      actions: ['wiki:edit'],
      resources: ['wiki/*'],
      audiences: ['https://wiki.example'],
      approval: { approvals: 1, approvers: { principals: ['root-admin'] } },
    });
    await admin2.call('PUT', '/v1/policies', {
      policies: {
        request: 'permit(principal, action == Tether::Action::"request", resource);',
        approve:
          'permit(principal, action == Tether::Action::"approve", resource) when { principal != context.requester };',
      },
    });
    // The same issuer in another tenant cannot take acme's audience; by default it gets its own.
    const clash = await refusal(
      admin2.call('POST', '/v1/signal-transmitters', {
        name: 'idp',
        issuer: IDP,
        audience: ACME_AUD,
        jwks_uri: idp.jwksUri,
      }),
    );
    expect(clash.code).toBe('audience_not_in_tenant');
    expect(clash.detail).not.toContain('acme');
    expect(
      await admin2.call('POST', '/v1/signal-transmitters', {
        name: 'idp',
        issuer: IDP,
        jwks_uri: idp.jwksUri,
      }),
    ).toMatchObject({ audience: GLOBEX_AUD });
    const req = await twin.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'wiki-edit',
      justification: 'x',
      duration: 600,
    });
    await admin2.call('POST', `/v1/requests/${req.id}/approve`);
    const theirs = await BoundSession.activate(twin.client, req.id);
    const ours = await wiki();

    expect((await push(await sign())).statusCode).toBe(202);
    expect(await stateOf(ours)).toMatchObject({ state: 'ended' });
    expect(await admin2.call('GET', `/v1/sessions/${theirs.info.id}`)).toMatchObject({ state: 'active' });
    // A SET addressed to both registrations names no single tenant.
    expectSetError(await push(await sign({ aud: [ACME_AUD, GLOBEX_AUD] })), 'invalid_audience');
    expect((await push(await sign({ aud: GLOBEX_AUD }))).statusCode).toBe(202);
    expect(await admin2.call('GET', `/v1/sessions/${theirs.info.id}`)).toMatchObject({
      state: 'ended',
      end_reason: 'trust_changed',
    });
  });

  describe('refuses, with the RFC 8935 error format, and changes nothing', () => {
    let session: BoundSession;
    beforeEach(async () => {
      session = await firewall();
    });

    async function expectRefused(body: string, err: string, contentType?: string): Promise<void> {
      const before = await snapshot();
      expectSetError(await push(body, contentType), err);
      expect(await snapshot()).toEqual(before);
      expect(await stateOf(session)).toMatchObject({ state: 'active' });
    }

    it('a bad signature, a tampered payload, an unknown key', async () => {
      const { privateKey: foreign } = await generateKeyPair('RS256');
      await expectRefused(await sign({ key: foreign }), 'invalid_key');
      const genuine = await sign();
      const [h, p, sig] = genuine.split('.');
      const claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as JWTPayload;
      const forged = Buffer.from(
        JSON.stringify({ ...claims, sub_id: { format: 'email', email: 'root@acme.example' } }),
      ).toString('base64url');
      await expectRefused(`${h}.${forged}.${sig}`, 'invalid_key');
      await expectRefused(await sign({ key: foreign, kid: 'not-published' }), 'invalid_key');
    });

    it('alg none, and HS256 keyed with the public key (algorithm confusion)', async () => {
      const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'secevent+jwt' })).toString('base64url')}.${(await sign()).split('.')[1]}.`;
      await expectRefused(unsigned, 'invalid_request');
      // The transmitter's own public key, as an HMAC secret: refused before any key is used.
      const pem = await exportSPKI(idp.publicKey);
      await expectRefused(await sign({ alg: 'HS256', key: new TextEncoder().encode(pem) }), 'invalid_key');
    });

    it('an unknown issuer, a wrong audience, a missing audience', async () => {
      await expectRefused(await sign({ iss: 'https://evil.example' }), 'invalid_issuer');
      await expectRefused(await sign({ aud: 'https://other-broker.example' }), 'invalid_audience');
      await expectRefused(await sign({ aud: [] }), 'invalid_audience');
    });

    it('an unknown event type, two events, a payload that does not conform, no subject', async () => {
      await expectRefused(await sign({ events: { [`${CAEP}session-established`]: {} } }), 'invalid_request');
      await expectRefused(await sign({ events: { 'https://example.com/evil': {} } }), 'invalid_request');
      await expectRefused(
        await sign({ events: { ...SESSION_REVOKED, ...deviceCompliance('not-compliant', nowS()) } }),
        'invalid_request',
      );
      await expectRefused(await sign({ events: deviceCompliance('maybe', nowS()) }), 'invalid_request');
      await expectRefused(await sign({ subId: { format: 'email' } }), 'invalid_request');
    });

    it('a replayed jti, an expired iat, an iat from the future', async () => {
      const jti = randomUUID();
      const wiki2 = await wiki();
      const first = await sign({ jti, subId: { format: 'opaque', id: wiki2.info.id } });
      expect((await push(first)).statusCode).toBe(202);
      expect(await stateOf(wiki2)).toMatchObject({ state: 'ended' });
      await expectRefused(first, 'invalid_request');
      // The same jti in a freshly signed SET is a replay too.
      await expectRefused(await sign({ jti }), 'invalid_request');
      await expectRefused(await sign({ iat: nowS() - 3600 }), 'invalid_request');
      await expectRefused(await sign({ iat: nowS() + 600 }), 'invalid_request');
    });

    it('the wrong typ, the wrong media type, an empty body, an encrypted or malformed token, a query', async () => {
      await expectRefused(await sign({ typ: 'JWT' }), 'invalid_request');
      await expectRefused(await sign({ typ: undefined }), 'invalid_request');
      await expectRefused(await sign(), 'invalid_request', 'application/json');
      await expectRefused(await sign(), 'invalid_request', 'text/plain');
      await expectRefused('', 'invalid_request');
      await expectRefused('a.b.c.d.e', 'invalid_request');
      await expectRefused('not a token', 'invalid_request');
      await expectRefused(`${'A'.repeat(70_000)}.b.c`, 'invalid_request');
      const before = await snapshot();
      expectSetError(
        await b.app.inject({
          method: 'POST',
          url: '/v1/signals?tenant=acme',
          headers: { 'content-type': 'application/secevent+jwt' },
          payload: await sign(),
        }),
        'invalid_request',
      );
      expect(await snapshot()).toEqual(before);
    });

    it('a transmitter whose JWKS cannot be fetched (too large), and one that was removed', async () => {
      await s.admin.call('POST', '/v1/signal-transmitters', {
        name: 'huge',
        issuer: 'https://huge.example',
        jwks_uri: idp.jwksUri.replace('/jwks.json', '/huge.json'),
      });
      await expectRefused(await sign({ iss: 'https://huge.example' }), 'authentication_failed');
      await s.admin.call('DELETE', '/v1/signal-transmitters/acme-idp');
      await expectRefused(await sign(), 'invalid_issuer');
    });
  });

  it('registering transmitters: admin only, public keys only, https (or loopback) only', async () => {
    const listed = await s.admin.call<{
      transmitters: { name: string; audience: string; push_url: string }[];
    }>('GET', '/v1/signal-transmitters');
    expect(listed.transmitters).toEqual([
      expect.objectContaining({
        name: 'acme-idp',
        audience: ACME_AUD,
        push_url: `${PUBLIC_URL}/v1/signals`,
      }),
    ]);
    expect((await refusal(s.operator.client.call('GET', '/v1/signal-transmitters'))).code).toBe('forbidden');
    expect(
      (
        await refusal(
          s.operator.client.call('POST', '/v1/signal-transmitters', {
            name: 'x',
            issuer: 'https://x',
            jwks_uri: idp.jwksUri,
          }),
        )
      ).code,
    ).toBe('forbidden');
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const leaked = await refusal(
      s.admin.call('POST', '/v1/signal-transmitters', {
        name: 'leak',
        issuer: 'https://leak.example',
        jwks: { keys: [privateJwk] },
      }),
    );
    expect(leaked.code).toBe('invalid_key');
    expect(JSON.stringify(leaked)).not.toContain(String(privateJwk.d));
    expect(
      (
        await refusal(
          s.admin.call('POST', '/v1/signal-transmitters', {
            name: 'clear',
            issuer: 'https://c.example',
            jwks_uri: 'http://idp.example/jwks',
          }),
        )
      ).code,
    ).toBe('destination_refused');

    // An inline Ed25519 JWKS works as well as a fetched RSA one.
    const ed = await generateKeyPair('Ed25519', { extractable: true });
    const edPublic = { ...(await exportJWK(ed.publicKey)), kid: 'ed-1' };
    await s.admin.call('POST', '/v1/signal-transmitters', {
      name: 'edge-idp',
      issuer: 'https://edge.example',
      jwks: { keys: [edPublic] },
    });
    const sess = await wiki();
    const res = await push(
      await sign({ iss: 'https://edge.example', alg: 'EdDSA', kid: 'ed-1', key: ed.privateKey }),
    );
    expect(res.statusCode).toBe(202);
    expect(await stateOf(sess)).toMatchObject({ state: 'ended', end_reason: 'trust_changed' });
    expect(await s.admin.call('GET', '/v1/signal-transmitters/edge-idp')).toMatchObject({
      jwks: { keys: [edPublic] },
    });
    expect(await s.admin.call('DELETE', '/v1/signal-transmitters/edge-idp')).toEqual({ deleted: true });
    expect((await refusal(s.admin.call('GET', '/v1/signal-transmitters/edge-idp'))).code).toBe('not_found');
  });
});
