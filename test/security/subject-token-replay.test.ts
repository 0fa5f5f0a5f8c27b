import { createHash, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';
import { exchangeSubjectToken } from '../support/token-exchange.js';

const ISSUER = 'https://token.actions.example';
/** Acme's own audience: trust-record audiences are namespaced by tenant. */
const AUDIENCE = `${PUBLIC_URL}/tenants/acme`;
const REUSED =
  'the subject token has already been exchanged for a session: a subject token is single-use, ask its issuer for a new one';

/**
 * Issue 9 item 6 (a): one CI run's OIDC token made two sessions. A subject token now starts at
 * most one session in its lifetime — sequentially, concurrently, with or without a `jti` — and
 * a refused exchange leaves no session, request or use row behind.
 */
describeEachStore('subject token replay (RFC 8693 token exchange)', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let ciKey: CryptoKey;
  let run = 0;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    const pair = await generateKeyPair('ES256', { extractable: true });
    ciKey = pair.privateKey;
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'ci-1', alg: 'ES256', use: 'sig' };
    await s.admin.call('POST', '/v1/federations', {
      name: 'actions',
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [publicJwk] },
      principal_mapping: [{ match: { repository: 'acme/web' }, principal: 'deploy-bot' }],
    });
  });
  afterEach(() => b.close());

  const nowS = () => Math.floor(b.clock.now() / 1000);

  /** A run's OIDC token (its run id, CHG-n, is the ticket the scenario's policy auto-approves). */
  const ciToken = (claims: JWTPayload = {}) =>
    new SignJWT({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'repo:acme/web:ref:refs/heads/main',
      repository: 'acme/web',
      run_id: `CHG-${++run}`,
      jti: randomUUID(),
      iat: nowS(),
      exp: nowS() + 300,
      ...claims,
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'ci-1', typ: 'JWT' })
      .sign(ciKey);

  /** One exchange, each with its own session key and proof, as separate attackers would send it. */
  async function exchange(subjectToken: string, duration = 900) {
    const response = await exchangeSubjectToken(b, subjectToken, { duration: String(duration) });
    return { status: response.statusCode, body: response.json() as Record<string, unknown> };
  }

  /** Rows an exchange writes: sessions, access requests, and spent subject tokens. */
  async function rows() {
    const count = async (table: 'sessions' | 'access_requests' | 'subject_token_uses') =>
      Number(
        (
          await b.ctx.store.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    return {
      sessions: await count('sessions'),
      requests: await count('access_requests'),
      uses: await count('subject_token_uses'),
    };
  }

  const refusedAsReused = (answer: { status: number; body: Record<string, unknown> }) => {
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: 'invalid_grant', error_description: REUSED });
  };

  it('the same token exchanged twice: one session; the second is refused and changes no rows', async () => {
    const token = await ciToken();
    const first = await exchange(token);
    expect(first).toMatchObject({ status: 200, body: { token_type: 'DPoP' } });
    const after = await rows();
    expect(after).toMatchObject({ uses: 1 });

    refusedAsReused(await exchange(token));
    expect(await rows()).toEqual(after);
    // The replay is in the audit trail; the token is in no row, only its digest.
    const audit = await s.admin.call<{
      records: { action: string; outcome: string; details: Record<string, unknown> }[];
    }>('GET', '/v1/audit?limit=1000');
    expect(
      audit.records.some(
        (r) => r.action === 'auth.token_exchange' && r.outcome === 'refused' && r.details.reason === REUSED,
      ),
    ).toBe(true);
    const stored = await b.ctx.store.db.selectFrom('subject_token_uses').selectAll().execute();
    expect(JSON.stringify(stored)).not.toContain(token.split('.')[2]!);
  });

  it('the same token exchanged 10 times at once: exactly one session', async () => {
    const token = await ciToken();
    const before = await rows();
    const answers = await Promise.all(Array.from({ length: 10 }, () => exchange(token)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    for (const refused of answers.filter((a) => a.status !== 200)) refusedAsReused(refused);
    expect(await rows()).toEqual({
      sessions: before.sessions + 1,
      requests: before.requests + 1,
      uses: before.uses + 1,
    });
  });

  it('a token without jti is single-use too (by a digest of the whole token)', async () => {
    const token = await ciToken({ jti: undefined });
    expect((await exchange(token)).status).toBe(200);
    const after = await rows();
    refusedAsReused(await exchange(token));
    expect(await rows()).toEqual(after);
  });

  it('a token re-signed with the same issuer and jti is the same token', async () => {
    const jti = randomUUID();
    const claims = { jti, run_id: 'CHG-4242' };
    expect((await exchange(await ciToken(claims))).status).toBe(200);
    const after = await rows();
    b.clock.advance(1000);
    refusedAsReused(await exchange(await ciToken(claims)));
    expect(await rows()).toEqual(after);
  });

  it('a token that only left a request pending is not spent, and a spent one is forgotten after it expires', async () => {
    // Longer than the policy auto-approves: the request waits for a review.
    const token = await ciToken();
    const pending = await exchange(token, 3000);
    expect(pending).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(pending.body.error_description).toMatch(/needs approval/);
    const again = await exchange(token, 3000);
    expect(again.body.error_description).toMatch(/needs approval/);
    expect((await rows()).uses).toBe(0);

    const spent = await ciToken();
    expect((await exchange(spent)).status).toBe(200);
    expect((await rows()).uses).toBe(1);
    // exp (300 s) + the clock tolerance: the sweeper forgets it; the token is refused as expired anyway.
    b.clock.advance((300 + b.ctx.config.clockToleranceSeconds + 1) * 1000);
    const { pruneSubjectTokenUses } = await import(
      '../../packages/broker/src/store/repositories/subject-tokens.js'
    );
    expect(await pruneSubjectTokenUses(b.ctx.store, b.clock.now())).toBe(1);
    const late = await exchange(spent);
    expect(late).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'the subject token has expired' },
    });
  });
});

/** The digest is what names a token; sanity-check it never equals a hash of the raw token when a jti exists. */
it('subject token keys: (issuer, jti) when there is a jti, else the whole token', async () => {
  const { subjectTokenKey } = await import('../../packages/broker/src/sessions/subject-token-use.js');
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest('base64url');
  expect(subjectTokenKey({ iss: 'https://i', jti: 'j-1' }, 'a.b.c')).toBe(
    digest('jti\u0000https://i\u0000j-1'),
  );
  expect(subjectTokenKey({ iss: 'https://i', jti: 'j-1' }, 'x.y.z')).toBe(
    subjectTokenKey({ iss: 'https://i', jti: 'j-1' }, 'a.b.c'),
  );
  expect(subjectTokenKey({ iss: 'https://i' }, 'a.b.c')).toBe(digest('token\u0000a.b.c'));
  expect(subjectTokenKey({ iss: 'https://i', jti: '' }, 'a.b.c')).toBe(digest('token\u0000a.b.c'));
});
