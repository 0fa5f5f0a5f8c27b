import { randomUUID } from 'node:crypto';
import type { IdentityFile } from '@tether-broker/protocol';
import { base64url, type CryptoKey, importJWK, type JWK, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pruneSpentJtis } from '../../packages/broker/src/auth/client-assertion.js';
import { newId } from '../../packages/broker/src/domain/ids.js';
import { bootstrapTenant } from '../../packages/broker/src/records/bootstrap.js';
import { listPrincipalKeys } from '../../packages/broker/src/store/repositories/principals.js';
import { type BrokerClient, BrokerError } from '../../packages/client/src/index.js';
import { type Actor, newKeyPair, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const TOKEN_URL = `${PUBLIC_URL}/oauth/token`;
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Broker defaults the assertions are judged by. */
const MAX_ASSERTION_AGE_S = 300;
const TOLERANCE_S = 30;
const API_TOKEN_TTL_S = 600;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Record<string, unknown>;
}

async function refusal(p: Promise<unknown>): Promise<BrokerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BrokerError) return err;
    throw err;
  }
  throw new Error('expected the broker to refuse');
}

describeEachStore('authentication', (fixture) => {
  // One broker per store; every test works with principals (and tenants) of its own.
  let b: TestBroker;
  let s: Scenario;
  let alice: Actor;
  let bob: Actor;
  let counter = 0;
  const unique = (name: string) => `${name}-${++counter}`;

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });
  afterAll(async () => {
    await b.close();
    await fixture.cleanup();
  });
  beforeEach(async () => {
    alice = await b.principal(unique('alice'));
    bob = await b.principal(unique('bob'));
  });
  const aliceName = () => alice.caller.principal.name;
  /** A second tenant on the same broker, with an admin client of its own. */
  async function otherTenant() {
    const other = await bootstrapTenant(b.ctx.store, b.clock, {
      tenantName: unique('other'),
      adminName: 'other-admin',
    });
    const client = b.client({
      broker: PUBLIC_URL,
      tenant: other.tenant.id,
      principal: other.admin.id,
      key: other.adminPrivateJwk as Record<string, unknown>,
    });
    return { ...other, client };
  }

  const nowS = () => Math.floor(b.clock.now() / 1000);
  const admin = () => b.client(b.adminIdentity);

  // --- the token endpoint, byte by byte -------------------------------------------------------

  async function post(payload: string, contentType = 'application/x-www-form-urlencoded'): Promise<Answer> {
    const res = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': contentType },
      payload,
    });
    return { status: res.statusCode, headers: res.headers, body: res.json() as Record<string, unknown> };
  }
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const login = (assertion: string, extra: Record<string, string> = {}) =>
    post(
      form({
        grant_type: 'client_credentials',
        client_assertion_type: JWT_BEARER,
        client_assertion: assertion,
        ...extra,
      }),
    );

  interface AssertionOptions {
    /** Claims to set; `undefined` removes a default claim. */
    claims?: Record<string, unknown>;
    /** Header members to set; `undefined` removes a default member. */
    header?: Record<string, unknown>;
    /** The key that signs (defaults to the identity's own private key). */
    key?: CryptoKey | Uint8Array;
  }

  /** A client assertion as RFC 7523 wants it, with any part overridden. */
  async function assertion(identity: IdentityFile, o: AssertionOptions = {}): Promise<string> {
    const iat = nowS();
    const claims = dropUndefined({
      iss: identity.principal,
      sub: identity.principal,
      aud: TOKEN_URL,
      iat,
      exp: iat + 60,
      jti: randomUUID(),
      ...o.claims,
    });
    const header = dropUndefined({ alg: 'EdDSA', typ: 'JWT', kid: identity.key.kid, ...o.header });
    const key = o.key ?? ((await importJWK(identity.key as JWK, 'EdDSA')) as CryptoKey);
    return new SignJWT(claims as JWTPayload).setProtectedHeader(header as { alg: string }).sign(key);
  }
  function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
    return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  }

  /** Tokens issued so far, as the audit trail counts them (every tenant). */
  async function issuedCount(): Promise<number> {
    const rows = await b.ctx.store.db
      .selectFrom('audit_records')
      .select('id')
      .where('action', '=', 'auth.token_issued')
      .where('outcome', '=', 'success')
      .execute();
    return rows.length;
  }

  /** The request is refused with exactly this RFC 6749 answer, and no token is issued. */
  async function expectRefused(
    send: () => Promise<Answer>,
    expected: { status: number; error: string; description: string | RegExp },
  ): Promise<Answer> {
    const before = await issuedCount();
    const res = await send();
    expect(res.body).toEqual({
      error: expected.error,
      error_description:
        typeof expected.description === 'string'
          ? expected.description
          : expect.stringMatching(expected.description),
    });
    expect(res.status).toBe(expected.status);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
    expect(await issuedCount()).toBe(before);
    return res;
  }
  const invalidClient = (description: string | RegExp) => ({
    status: 401,
    error: 'invalid_client',
    description,
  });

  async function me(token: string): Promise<Answer> {
    const res = await b.app.inject({
      method: 'GET',
      url: '/v1/me',
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: res.statusCode, headers: res.headers, body: res.json() as Record<string, unknown> };
  }

  describe('POST /oauth/token', () => {
    it('issues a working token for a valid assertion, and nothing is kept that could replay it', async () => {
      const before = await issuedCount();
      const res = await login(await assertion(alice.identity));
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toEqual({
        access_token: expect.any(String),
        token_type: 'Bearer',
        expires_in: API_TOKEN_TTL_S,
        scope: 'tether:api',
      });
      expect(await issuedCount()).toBe(before + 1);
      const whoami = await me(res.body.access_token as string);
      expect(whoami.status).toBe(200);
      expect(whoami.body).toMatchObject({ principal: { id: alice.caller.principal.id, name: aliceName() } });
    });

    it('accepts a matching client_id, an assertion without kid, and the issuer as audience', async () => {
      expect(
        (await login(await assertion(alice.identity), { client_id: alice.identity.principal })).status,
      ).toBe(200);
      expect((await login(await assertion(alice.identity, { header: { kid: undefined } }))).status).toBe(200);
      expect((await login(await assertion(alice.identity, { claims: { aud: PUBLIC_URL } }))).status).toBe(
        200,
      );
    });

    it('refuses an assertion signed by another key that claims the registered kid', async () => {
      const { privateJwk } = await newKeyPair();
      const forged = await assertion(alice.identity, {
        key: (await importJWK(privateJwk, 'EdDSA')) as CryptoKey,
      });
      await expectRefused(
        () => login(forged),
        invalidClient('client_assertion signature does not verify with a registered key'),
      );
    });

    it('refuses an unsigned assertion (alg none)', async () => {
      const enc = (o: object) => base64url.encode(JSON.stringify(o));
      const iat = nowS();
      const unsigned = `${enc({ alg: 'none', typ: 'JWT', kid: alice.identity.key.kid })}.${enc({
        iss: alice.identity.principal,
        sub: alice.identity.principal,
        aud: TOKEN_URL,
        iat,
        exp: iat + 60,
        jti: randomUUID(),
      })}.`;
      await expectRefused(
        () => login(unsigned),
        invalidClient('client_assertion uses an algorithm that is not accepted'),
      );
    });

    it('refuses an HS256 assertion keyed with the public key (algorithm confusion)', async () => {
      const publicJwk = { kty: 'OKP', crv: 'Ed25519', x: alice.identity.key.x };
      for (const secret of [
        base64url.decode(alice.identity.key.x as string),
        new TextEncoder().encode(JSON.stringify(publicJwk)),
        new TextEncoder().encode(alice.identity.key.x as string),
      ]) {
        const hs = await assertion(alice.identity, { header: { alg: 'HS256' }, key: secret });
        await expectRefused(
          () => login(hs),
          invalidClient('client_assertion uses an algorithm that is not accepted'),
        );
      }
    });

    it('refuses an assertion once it has expired, clock tolerance included, and not a second before', async () => {
      const early = await assertion(alice.identity);
      const late = await assertion(alice.identity);
      b.clock.advance((60 + TOLERANCE_S - 1) * 1000);
      expect((await login(early)).status).toBe(200);
      b.clock.advance(1000);
      await expectRefused(() => login(late), invalidClient('client_assertion has expired'));
    });

    it('refuses an assertion issued far in the future', async () => {
      const future = await assertion(alice.identity, { claims: { iat: nowS() + 3600, exp: nowS() + 3660 } });
      await expectRefused(
        () => login(future),
        invalidClient('client_assertion iat claim is invalid (check_failed)'),
      );
    });

    it('refuses an assertion issued too long ago, even if it has not expired', async () => {
      const old = await assertion(alice.identity, { claims: { iat: nowS() - 3600, exp: nowS() + 60 } });
      await expectRefused(() => login(old), invalidClient('client_assertion has expired'));
    });

    it('refuses an assertion whose lifetime is longer than allowed', async () => {
      const long = await assertion(alice.identity, { claims: { exp: nowS() + MAX_ASSERTION_AGE_S + 1 } });
      await expectRefused(
        () => login(long),
        invalidClient(`client_assertion lifetime exceeds ${MAX_ASSERTION_AGE_S} s`),
      );
      const longest = await assertion(alice.identity, { claims: { exp: nowS() + MAX_ASSERTION_AGE_S } });
      expect((await login(longest)).status).toBe(200);
    });

    it('refuses a replayed assertion, after the first use succeeded', async () => {
      const once = await assertion(alice.identity);
      expect((await login(once)).status).toBe(200);
      await expectRefused(
        () => login(once),
        invalidClient('client_assertion has already been used (jti replay)'),
      );
      b.clock.advance(30_000);
      await expectRefused(
        () => login(once),
        invalidClient('client_assertion has already been used (jti replay)'),
      );
    });

    it('refuses a fresh assertion that reuses a spent jti', async () => {
      const jti = randomUUID();
      expect((await login(await assertion(alice.identity, { claims: { jti } }))).status).toBe(200);
      b.clock.advance(1000);
      const again = await assertion(alice.identity, { claims: { jti } });
      await expectRefused(
        () => login(again),
        invalidClient('client_assertion has already been used (jti replay)'),
      );
    });

    it('still refuses a replay after the sweeper forgot the jti: by then the assertion has expired', async () => {
      const once = await assertion(alice.identity);
      expect((await login(once)).status).toBe(200);
      b.clock.advance((60 + TOLERANCE_S) * 1000 + 1);
      await pruneSpentJtis(b.ctx.store, b.clock.now());
      const jti = (JSON.parse(Buffer.from(once.split('.')[1]!, 'base64url').toString()) as { jti: string })
        .jti;
      const left = await b.ctx.store.db
        .selectFrom('client_assertion_jtis')
        .selectAll()
        .where('jti', '=', jti)
        .execute();
      expect(left).toEqual([]);
      await expectRefused(() => login(once), invalidClient('client_assertion has expired'));
    });

    it("keeps spent jtis per principal: one principal cannot burn another one's jti", async () => {
      const jti = randomUUID();
      expect((await login(await assertion(bob.identity, { claims: { jti } }))).status).toBe(200);
      expect((await login(await assertion(alice.identity, { claims: { jti } }))).status).toBe(200);
    });

    it('refuses an assertion for another audience', async () => {
      for (const aud of [
        'https://evil.example/oauth/token',
        `${PUBLIC_URL}/oauth/token/`,
        'https://fw.example',
      ]) {
        const wrong = await assertion(alice.identity, { claims: { aud } });
        await expectRefused(
          () => login(wrong),
          invalidClient('client_assertion aud claim is invalid (check_failed)'),
        );
      }
    });

    it.each([
      ['jti', 'client_assertion jti claim is invalid (missing)'],
      ['exp', 'client_assertion exp claim is invalid (missing)'],
      ['iat', 'client_assertion iat claim is invalid (missing)'],
      ['aud', 'client_assertion aud claim is invalid (missing)'],
    ])('refuses an assertion without %s', async (claim, description) => {
      const missing = await assertion(alice.identity, { claims: { [claim]: undefined } });
      await expectRefused(() => login(missing), invalidClient(description));
    });

    it('refuses a jti longer than 256 characters', async () => {
      const long = await assertion(alice.identity, { claims: { jti: 'x'.repeat(257) } });
      await expectRefused(() => login(long), invalidClient('client_assertion jti is too long'));
    });

    it('refuses an assertion whose iss is not its sub', async () => {
      for (const claims of [
        { sub: bob.identity.principal },
        { iss: bob.identity.principal },
        { sub: undefined },
        { iss: undefined },
      ]) {
        const mixed = await assertion(alice.identity, { claims });
        await expectRefused(() => login(mixed), invalidClient('client_assertion must have iss equal to sub'));
      }
    });

    it("refuses a client_id that is not the assertion's principal", async () => {
      const valid = await assertion(alice.identity);
      await expectRefused(
        () => login(valid, { client_id: bob.identity.principal }),
        invalidClient('client_id does not match the assertion'),
      );
      // The assertion was not spent by the refused attempt.
      expect((await login(valid)).status).toBe(200);
    });

    it('refuses an unknown principal', async () => {
      const ghost = newId('principal');
      const unknown = await assertion({ ...alice.identity, principal: ghost });
      await expectRefused(() => login(unknown), invalidClient('unknown client'));
    });

    it('refuses a disabled principal, and says so only to the holder of its key', async () => {
      await admin().call('PATCH', `/v1/principals/${aliceName()}`, { enabled: false });
      const valid = await assertion(alice.identity);
      await expectRefused(() => login(valid), invalidClient('the principal is disabled'));
      // Without alice's key, the refusal is the same as for an enabled principal's forgery.
      const { privateJwk } = await newKeyPair();
      const forged = await assertion(alice.identity, {
        key: (await importJWK(privateJwk, 'EdDSA')) as CryptoKey,
      });
      await expectRefused(
        () => login(forged),
        invalidClient('client_assertion signature does not verify with a registered key'),
      );
      await admin().call('PATCH', `/v1/principals/${aliceName()}`, { enabled: true });
      expect((await login(await assertion(alice.identity))).status).toBe(200);
    });

    it('refuses a key removed after registration', async () => {
      await admin().call('DELETE', `/v1/principals/${aliceName()}/keys/${alice.identity.key.kid}`);
      await expectRefused(
        () => assertion(alice.identity).then(login),
        invalidClient('no registered key has that kid'),
      );
      await expectRefused(
        () => assertion(alice.identity, { header: { kid: undefined } }).then(login),
        invalidClient('the principal has no registered key'),
      );
    });

    it("refuses an assertion for one principal signed with another principal's key", async () => {
      const bobKey = (await importJWK(bob.identity.key as JWK, 'EdDSA')) as CryptoKey;
      // Bob's kid: alice has no such key.
      const withBobKid = await assertion(alice.identity, {
        key: bobKey,
        header: { kid: bob.identity.key.kid },
      });
      await expectRefused(() => login(withBobKid), invalidClient('no registered key has that kid'));
      // Alice's kid, or none: bob's signature does not verify with alice's key.
      const withAliceKid = await assertion(alice.identity, { key: bobKey });
      await expectRefused(
        () => login(withAliceKid),
        invalidClient('client_assertion signature does not verify with a registered key'),
      );
      const noKid = await assertion(alice.identity, { key: bobKey, header: { kid: undefined } });
      await expectRefused(
        () => login(noKid),
        invalidClient('client_assertion signature does not verify with a registered key'),
      );
    });

    it('refuses a principal of another tenant signing for this one', async () => {
      const other = await otherTenant();
      const theirKey = (await importJWK(other.adminPrivateJwk, 'EdDSA')) as CryptoKey;
      const cross = await assertion(alice.identity, {
        key: theirKey,
        header: { kid: other.adminPrivateJwk.kid },
      });
      await expectRefused(() => login(cross), invalidClient('no registered key has that kid'));
    });

    it('refuses a wrong or missing client_assertion_type', async () => {
      const valid = await assertion(alice.identity);
      const description = `client authentication requires client_assertion_type=${JWT_BEARER} and a client_assertion`;
      for (const type of ['urn:ietf:params:oauth:client-assertion-type:saml2-bearer', 'jwt', '']) {
        await expectRefused(
          () =>
            post(
              form({
                grant_type: 'client_credentials',
                client_assertion_type: type,
                client_assertion: valid,
              }),
            ),
          invalidClient(description),
        );
      }
      await expectRefused(
        () => post(form({ grant_type: 'client_credentials', client_assertion: valid })),
        invalidClient(description),
      );
      await expectRefused(
        () => post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER })),
        invalidClient(description),
      );
      expect((await login(valid)).status).toBe(200); // none of that spent it
    });

    it('refuses an unsupported or missing grant_type', async () => {
      const valid = await assertion(alice.identity);
      for (const grant of ['password', 'authorization_code', 'urn:ietf:params:oauth:grant-type:jwt-bearer']) {
        await expectRefused(() => login(valid, { grant_type: grant }), {
          status: 400,
          error: 'unsupported_grant_type',
          description: `grant_type ${JSON.stringify(grant)} is not supported`,
        });
      }
      await expectRefused(() => post(form({ client_assertion_type: JWT_BEARER, client_assertion: valid })), {
        status: 400,
        error: 'invalid_request',
        description: /grant_type/,
      });
    });

    it('refuses garbage in place of a JWT', async () => {
      for (const garbage of ['garbage', 'a.b.c', 'eyJhbGciOiJFZERTQSJ9..', '...', 'eyJ.eyJ.sig', '😀']) {
        await expectRefused(() => login(garbage), invalidClient('client_assertion is not a JWT'));
      }
    });

    it('refuses a JSON body: the token endpoint takes a form (RFC 6749 §4.4.2)', async () => {
      const valid = await assertion(alice.identity);
      const body = JSON.stringify({
        grant_type: 'client_credentials',
        client_assertion_type: JWT_BEARER,
        client_assertion: valid,
      });
      await expectRefused(() => post(body, 'application/json'), {
        status: 400,
        error: 'invalid_request',
        description: /application\/x-www-form-urlencoded/,
      });
      expect((await login(valid)).status).toBe(200);
    });

    it('refuses a parameter sent twice (RFC 6749 §3.2)', async () => {
      const valid = await assertion(alice.identity);
      const twice = `${form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: valid })}&client_assertion=${valid}`;
      await expectRefused(() => post(twice), {
        status: 400,
        error: 'invalid_request',
        description: /client_assertion/,
      });
    });
  });

  // --- the API's bearer tokens ------------------------------------------------------------------

  async function call(method: 'GET' | 'POST', url: string, authorization?: string): Promise<Answer> {
    const res = await b.app.inject({
      method,
      url,
      headers: authorization === undefined ? {} : { authorization },
    });
    return { status: res.statusCode, headers: res.headers, body: res.json() as Record<string, unknown> };
  }
  async function tokenFor(identity: IdentityFile): Promise<string> {
    const res = await login(await assertion(identity));
    expect(res.status).toBe(200);
    return res.body.access_token as string;
  }

  interface ApiTokenOptions {
    claims?: Record<string, unknown>;
    header?: Record<string, unknown>;
    key?: CryptoKey;
  }
  /** An API token shaped exactly like the broker's, signed by its real key unless told otherwise. */
  async function apiToken(principal: Actor['caller'], o: ApiTokenOptions = {}): Promise<string> {
    const signer = b.ctx.keys.signer();
    const iat = nowS();
    // The broker names the registered key that obtained the token; the principal's first one here.
    const [clientKey] = await listPrincipalKeys(b.ctx.store, principal.principal.id);
    const claims = dropUndefined({
      iss: PUBLIC_URL,
      sub: principal.principal.id,
      aud: PUBLIC_URL,
      iat,
      exp: iat + API_TOKEN_TTL_S,
      jti: randomUUID(),
      client_id: principal.principal.id,
      tenant: principal.tenant.id,
      scope: 'tether:api',
      tether_ckid: clientKey?.kid,
      ...o.claims,
    });
    const header = dropUndefined({ alg: 'EdDSA', typ: 'at+jwt', kid: signer.kid, ...o.header });
    return new SignJWT(claims as JWTPayload)
      .setProtectedHeader(header as { alg: string })
      .sign(o.key ?? signer.privateKey);
  }

  function expectProblem(res: Answer, status: number, code: string, detail?: string) {
    expect(res.status).toBe(status);
    expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status, code, ...(detail === undefined ? {} : { detail }) });
  }
  const expectInvalidToken = (res: Answer, detail: string) => {
    expectProblem(res, 401, 'invalid_token', detail);
    expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
  };

  describe('the API', () => {
    it('asks for a token when none is sent (RFC 6750 §3.1: no error code then)', async () => {
      const res = await call('GET', '/v1/me');
      expectProblem(res, 401, 'unauthenticated');
      // Both schemes are offered (RFC 9110 §11.6.1), neither with an error code (RFC 6750 §3.1).
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="tether", DPoP algs="[A-Za-z0-9 ]+"$/);
    });

    it('calls a malformed Authorization header an invalid request', async () => {
      for (const authorization of [
        'Basic YWxpY2U6cGFzcw==',
        'Bearer',
        'Bearer a b',
        'Token abc',
        'Bearer !!!',
      ]) {
        const res = await call('GET', '/v1/me', authorization);
        expectProblem(res, 401, 'unauthenticated');
        expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_request"');
      }
    });

    it('refuses a garbage bearer token', async () => {
      expectInvalidToken(await call('GET', '/v1/me', 'Bearer garbage'), 'the access token is invalid');
      expectInvalidToken(await call('GET', '/v1/me', 'Bearer a.b.c'), 'the access token is invalid');
    });

    it('accepts a token shaped like ours and signed by our key (the control for what follows)', async () => {
      const res = await call('GET', '/v1/me', `Bearer ${await apiToken(alice.caller)}`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ principal: { id: alice.caller.principal.id } });
    });

    it('refuses a token signed by a foreign Ed25519 key that names our kid', async () => {
      const { privateJwk } = await newKeyPair();
      const forged = await apiToken(alice.caller, {
        key: (await importJWK(privateJwk, 'EdDSA')) as CryptoKey,
      });
      expectInvalidToken(await call('GET', '/v1/me', `Bearer ${forged}`), 'the access token is invalid');
    });

    it('refuses a token whose kid is not one of ours', async () => {
      const token = await apiToken(alice.caller, { header: { kid: 'not-our-key' } });
      expectInvalidToken(await call('GET', '/v1/me', `Bearer ${token}`), 'unknown signing key');
    });

    it('refuses an expired token, clock tolerance included', async () => {
      const token = await tokenFor(alice.identity);
      b.clock.advance((API_TOKEN_TTL_S + TOLERANCE_S - 1) * 1000);
      expect((await call('GET', '/v1/me', `Bearer ${token}`)).status).toBe(200);
      b.clock.advance(1000);
      expectInvalidToken(await call('GET', '/v1/me', `Bearer ${token}`), 'the access token has expired');
    });

    it('refuses the token of a principal disabled since it was issued', async () => {
      const token = await tokenFor(alice.identity);
      await admin().call('PATCH', `/v1/principals/${aliceName()}`, { enabled: false });
      const res = await call('GET', '/v1/me', `Bearer ${token}`);
      expectProblem(res, 403, 'principal_disabled', 'the principal is disabled');
    });

    it.each<[string, ApiTokenOptions]>([
      ['typ JWT instead of at+jwt', { header: { typ: 'JWT' } }],
      ['no typ', { header: { typ: undefined } }],
      ['another audience', { claims: { aud: 'https://fw.example' } }],
      ['the token endpoint as audience', { claims: { aud: TOKEN_URL } }],
      ['another issuer', { claims: { iss: 'https://evil.example' } }],
      ['no jti', { claims: { jti: undefined } }],
      ['an exp in the past', { claims: { exp: Math.floor(Date.UTC(2026, 0, 5, 9, 0, 0) / 1000) } }],
      ['an nbf in the future', { claims: { nbf: Math.floor(Date.UTC(2026, 0, 5, 11, 0, 0) / 1000) } }],
    ])('refuses a token signed by our real key with %s', async (_name, options) => {
      const token = await apiToken(alice.caller, options);
      const res = await call('GET', '/v1/me', `Bearer ${token}`);
      expectProblem(res, 401, 'invalid_token');
      expect(res.body.detail).toMatch(/^the access token (is invalid|has expired)$/);
    });

    it.each<[string, ApiTokenOptions]>([
      ['no scope', { claims: { scope: undefined } }],
      ['another scope', { claims: { scope: 'tether:admin' } }],
      ['no tenant', { claims: { tenant: undefined } }],
    ])('refuses a token signed by our real key with %s', async (_name, options) => {
      const token = await apiToken(alice.caller, options);
      expectInvalidToken(
        await call('GET', '/v1/me', `Bearer ${token}`),
        'the access token is not a broker API token',
      );
    });

    it("refuses a token that puts a principal in another tenant's name", async () => {
      const other = await otherTenant();
      const token = await apiToken(alice.caller, { claims: { tenant: other.tenant.id } });
      expectInvalidToken(
        await call('GET', '/v1/me', `Bearer ${token}`),
        'the token names a principal that no longer exists',
      );
    });

    it('refuses an HS256 token keyed with our public key', async () => {
      const jwk = b.ctx.keys.signer().publicJwk;
      const token = await new SignJWT({ tenant: alice.caller.tenant.id, scope: 'tether:api' })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: b.ctx.keys.signer().kid })
        .setIssuer(PUBLIC_URL)
        .setSubject(alice.caller.principal.id)
        .setAudience(PUBLIC_URL)
        .setIssuedAt(nowS())
        .setExpirationTime(nowS() + 60)
        .setJti(randomUUID())
        .sign(base64url.decode(jwk.x as string));
      expectInvalidToken(await call('GET', '/v1/me', `Bearer ${token}`), 'the access token is invalid');
    });

    it('does not take a client assertion as an access token', async () => {
      const res = await call('GET', '/v1/me', `Bearer ${await assertion(alice.identity)}`);
      expectInvalidToken(res, 'unknown signing key');
    });
  });

  // --- tenants and roles ------------------------------------------------------------------------

  describe('tenant isolation', () => {
    let intruder: BrokerClient;
    let intruderTenant: string;
    let pending: { id: string };

    beforeEach(async () => {
      pending = await s.operator.client.call('POST', '/v1/requests', {
        privilege: 'firewall-admin',
        ticket: 'NET-42',
        justification: 'rotate edge rules',
        duration: 1800,
      });
      const other = await otherTenant();
      intruder = other.client;
      intruderTenant = other.tenant.name;
    });

    const notFound = async (p: Promise<unknown>) => {
      const err = await refusal(p);
      expect({ status: err.status, code: err.code }).toEqual({ status: 404, code: 'not_found' });
    };

    it("cannot read, review, cancel or list the other tenant's requests", async () => {
      await notFound(intruder.call('GET', `/v1/requests/${pending.id}`));
      await notFound(intruder.call('POST', `/v1/requests/${pending.id}/approve`, { comment: 'mine now' }));
      await notFound(intruder.call('POST', `/v1/requests/${pending.id}/deny`));
      await notFound(intruder.call('POST', `/v1/requests/${pending.id}/cancel`));
      expect(await intruder.call('GET', '/v1/requests')).toEqual({ requests: [] });
      expect(await intruder.call('GET', '/v1/requests?state=pending')).toEqual({ requests: [] });
      await notFound(intruder.call('GET', '/v1/requests?principal=olivia'));
      await notFound(intruder.call('GET', '/v1/requests?privilege=firewall-admin'));
      await notFound(
        intruder.call('POST', '/v1/requests', {
          privilege: 'firewall-admin',
          ticket: 'NET-1',
          justification: 'x',
        }),
      );
      const privilegeId = (await s.admin.call<{ id: string }>('GET', '/v1/privileges/firewall-admin')).id;
      await notFound(
        intruder.call('POST', '/v1/requests', {
          privilege: privilegeId,
          ticket: 'NET-1',
          justification: 'x',
        }),
      );
      const after = await s.admin.call<{ state: string; reviews: unknown[] }>(
        'GET',
        `/v1/requests/${pending.id}`,
      );
      expect(after).toMatchObject({ state: 'pending', reviews: [] });
    });

    it("cannot read or change the other tenant's principals, by id or by name", async () => {
      const olivia = s.operator.caller.principal;
      for (const ref of [olivia.id, 'olivia']) {
        await notFound(intruder.call('GET', `/v1/principals/${ref}`));
        await notFound(intruder.call('PATCH', `/v1/principals/${ref}`, { enabled: false }));
        await notFound(
          intruder.call('POST', `/v1/principals/${ref}/keys`, { jwk: (await newKeyPair()).publicJwk }),
        );
        await notFound(intruder.call('DELETE', `/v1/principals/${ref}/keys/${s.operator.identity.key.kid}`));
      }
      await notFound(intruder.call('GET', `/v1/principals/${b.admin.principal.id}`));
      const listed = await intruder.call<{ principals: { name: string }[] }>('GET', '/v1/principals');
      expect(listed.principals.map((p) => p.name)).toEqual(['other-admin']);
      // Olivia is untouched: enabled, her key still works.
      const fresh = b.client(s.operator.identity);
      expect(await fresh.call('GET', '/v1/me')).toMatchObject({
        principal: { name: 'olivia', enabled: true },
      });
    });

    it("cannot read, change or use the other tenant's privileges and groups", async () => {
      const privilege = await s.admin.call<{ id: string }>('GET', '/v1/privileges/firewall-admin');
      const group = await s.admin.call<{ id: string }>('GET', '/v1/groups/operators');
      for (const ref of [privilege.id, 'firewall-admin']) {
        await notFound(intruder.call('GET', `/v1/privileges/${ref}`));
        await notFound(intruder.call('PATCH', `/v1/privileges/${ref}`, { max_duration: 604800 }));
        await notFound(intruder.call('DELETE', `/v1/privileges/${ref}`));
      }
      for (const ref of [group.id, 'operators']) {
        await notFound(intruder.call('GET', `/v1/groups/${ref}`));
        await notFound(intruder.call('PUT', `/v1/groups/${ref}/members/other-admin`));
        await notFound(intruder.call('DELETE', `/v1/groups/${ref}/members/olivia`));
        await notFound(intruder.call('DELETE', `/v1/groups/${ref}`));
      }
      expect(await intruder.call('GET', '/v1/privileges')).toEqual({ privileges: [] });
      expect(await intruder.call('GET', '/v1/groups')).toEqual({ groups: [] });
      // Names of the other tenant's records mean nothing here, even inside its own records.
      await intruder.call('POST', '/v1/groups', { name: 'ops' });
      await notFound(intruder.call('PUT', '/v1/groups/ops/members/olivia'));
      await notFound(intruder.call('PUT', `/v1/groups/ops/members/${s.operator.caller.principal.id}`));
      const borrowing = (approvers: Record<string, string[]>) =>
        intruder.call('POST', '/v1/privileges', {
          name: 'borrowed',
          actions: ['a:b'],
          resources: ['r'],
          audiences: ['https://x.example'],
          approval: { approvals: 1, approvers },
        });
      await notFound(borrowing({ groups: ['operators'] }));
      await notFound(borrowing({ groups: [group.id] }));
      await notFound(borrowing({ principals: ['olivia'] }));
      await notFound(borrowing({ principals: [s.approvers[0]!.caller.principal.id] }));
      // The same names are free to use in the intruder's own tenant, and stay apart.
      await intruder.call('POST', '/v1/groups', { name: 'operators' });
      expect((await s.admin.call<{ members: string[] }>('GET', '/v1/groups/operators')).members).toEqual([
        s.operator.caller.principal.id,
      ]);
    });

    it("cannot read or replace the other tenant's policies", async () => {
      expect(await intruder.call('GET', '/v1/policies')).toMatchObject({ version: 0, policies: {} });
      expect(await intruder.call('GET', '/v1/policies/versions')).toEqual({ versions: [] });
      await notFound(intruder.call('GET', '/v1/policies/versions/1'));
      await intruder.call('PUT', '/v1/policies', {
        policies: { 'allow-all': 'permit(principal, action, resource);' },
      });
      const ours = await s.admin.call<{ version: number; policies: Record<string, string> }>(
        'GET',
        '/v1/policies',
      );
      expect(ours.version).toBe(1);
      expect(Object.keys(ours.policies).sort()).toEqual(
        ['approvers-approve', 'operators-request', 'pipeline-auto-deploy', 'pipeline-request-deploy'].sort(),
      );
    });

    it("cannot read or verify the other tenant's audit trail", async () => {
      const ours = (await s.admin.call<{ records: { id: string }[] }>('GET', '/v1/audit?limit=1000')).records;
      const theirs = (
        await intruder.call<{ records: { id: string; actor: string; target: string }[] }>(
          'GET',
          '/v1/audit?limit=1000',
        )
      ).records;
      expect(theirs.map((r) => (r as unknown as { action: string }).action)).toEqual([
        'tenant.created',
        'principal.created',
        'auth.token_issued',
      ]);
      const ourIds = new Set(ours.map((r) => r.id));
      expect(theirs.some((r) => ourIds.has(r.id))).toBe(false);
      expect(await intruder.call('GET', `/v1/audit?request=${pending.id}`)).toEqual({ records: [] });
      expect(await intruder.call('GET', '/v1/audit?ticket=NET-42')).toEqual({ records: [] });
      await notFound(intruder.call('GET', `/v1/audit?principal=${s.operator.caller.principal.id}`));
      await notFound(intruder.call('GET', '/v1/audit?principal=olivia'));
      expect(await intruder.call('GET', '/v1/audit/verify')).toEqual({ ok: true, checked: theirs.length });
    });

    it('cannot see the other tenant', async () => {
      await notFound(intruder.call('GET', `/v1/tenants/${b.tenant.id}`));
      const tenants = await intruder.call<{ tenants: { name: string }[] }>('GET', '/v1/tenants');
      expect(tenants.tenants.map((t) => t.name)).toEqual([intruderTenant]);
    });
  });

  describe('roles', () => {
    const forbidden = async (p: Promise<unknown>) => {
      const err = await refusal(p);
      expect({ status: err.status, code: err.code }).toEqual({ status: 403, code: 'forbidden' });
    };

    it('a principal without the admin role cannot create or change records', async () => {
      const olivia = s.operator.client;
      await forbidden(
        olivia.call('POST', '/v1/principals', { name: 'mallory', kind: 'human', roles: ['admin'] }),
      );
      await forbidden(olivia.call('PATCH', '/v1/principals/olivia', { roles: ['admin'] }));
      await forbidden(olivia.call('PATCH', '/v1/principals/oscar', { enabled: false }));
      await forbidden(
        olivia.call('POST', '/v1/privileges', {
          name: 'everything',
          actions: ['*'],
          resources: ['*'],
          audiences: ['https://fw.example'],
        }),
      );
      await forbidden(
        olivia.call('PATCH', '/v1/privileges/firewall-admin', { approval: { approvals: 1, approvers: {} } }),
      );
      await forbidden(olivia.call('DELETE', '/v1/privileges/deploy'));
      await forbidden(olivia.call('POST', '/v1/groups', { name: 'cabal' }));
      await forbidden(olivia.call('PUT', '/v1/groups/approvers/members/oscar'));
      await forbidden(olivia.call('DELETE', '/v1/groups/approvers/members/approver-0'));
      await forbidden(olivia.call('DELETE', '/v1/groups/approvers'));
      await forbidden(
        olivia.call('PUT', '/v1/policies', {
          policies: { 'allow-all': 'permit(principal, action, resource);' },
        }),
      );
      // A principal may manage its own keys, not anyone else's.
      await forbidden(
        olivia.call('POST', '/v1/principals/oscar/keys', { jwk: (await newKeyPair()).publicJwk }),
      );
      await forbidden(olivia.call('DELETE', `/v1/principals/oscar/keys/${s.outsider.identity.key.kid}`));
      // Nothing changed.
      const principals = await s.admin.call<{
        principals: { name: string; roles: string[]; enabled: boolean }[];
      }>('GET', '/v1/principals');
      expect(principals.principals.map((p) => p.name)).not.toContain('mallory');
      expect(principals.principals.find((p) => p.name === 'olivia')?.roles).toEqual([]);
      const scenarioNames = ['olivia', 'oscar', 'deploy-bot', 'approver-0', 'approver-1', 'approver-2'];
      const scenarioPrincipals = principals.principals.filter((p) => scenarioNames.includes(p.name));
      expect(scenarioPrincipals).toHaveLength(scenarioNames.length);
      expect(scenarioPrincipals.every((p) => p.enabled)).toBe(true);
      expect((await s.admin.call<{ groups: unknown[] }>('GET', '/v1/groups')).groups).toHaveLength(2);
      expect(
        (await s.admin.call<{ privileges: unknown[] }>('GET', '/v1/privileges')).privileges,
      ).toHaveLength(2);
      expect((await s.admin.call<{ version: number }>('GET', '/v1/policies')).version).toBe(1);
      const oscar = await s.admin.call<{ keys: { kid: string }[] }>('GET', '/v1/principals/oscar');
      expect(oscar.keys.map((k) => k.kid)).toEqual([s.outsider.identity.key.kid]);
    });

    it('a principal that is neither admin nor auditor cannot read the audit trail', async () => {
      await forbidden(s.operator.client.call('GET', '/v1/audit'));
      await forbidden(s.operator.client.call('GET', `/v1/audit?principal=olivia`));
      await forbidden(s.operator.client.call('GET', '/v1/audit/verify'));
      await forbidden(s.pipeline.client.call('GET', '/v1/audit'));
    });

    it('an auditor reads the audit trail and nothing more', async () => {
      const auditor = await b.principal(unique('ada'), 'human', ['auditor']);
      expect(
        (await auditor.client.call<{ records: unknown[] }>('GET', '/v1/audit')).records.length,
      ).toBeGreaterThan(0);
      expect(await auditor.client.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
      await forbidden(auditor.client.call('POST', '/v1/principals', { name: 'mallory', kind: 'human' }));
      await forbidden(auditor.client.call('PUT', '/v1/policies', { policies: {} }));
    });
  });
});
