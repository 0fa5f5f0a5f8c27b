import { randomUUID } from 'node:crypto';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import { insertFederation } from '../../packages/broker/src/store/repositories/federations.js';
import type { BrokerClient } from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { SCENARIO_POLICIES, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';
import { exchangeSubjectToken } from '../support/token-exchange.js';

/**
 * Issue 9 item 10, (issuer, audience) squatting, from the attacker's side: the admin of tenant
 * B (globex) knows which CI issuer and audience tenant A (acme) uses and registers them first, or
 * after, to take A's workload tokens for itself, to lock A out, or to learn from the answer
 * whether A trusts that issuer. Audiences are namespaced by tenant: B can only name its own.
 */

const ISSUER = 'https://token.actions.example';
const OTHER_ISSUER = 'https://gitlab.example';
const ACME_AUD = `${PUBLIC_URL}/tenants/acme`;
const GLOBEX_AUD = `${PUBLIC_URL}/tenants/globex`;

const POLICIES = {
  ...SCENARIO_POLICIES,
  'workload-request': `permit(principal, action == Tether::Action::"request", resource) when { principal.kind == "pipeline" && resource.name == "deploy" };`,
  'workload-auto': `permit(principal, action == Tether::Action::"auto_approve", resource) when { principal.kind == "pipeline" && resource.name == "deploy" };`,
};

describeEachStore('a tenant cannot squat the (issuer, audience) of another tenant', (fixture) => {
  let store: Store;
  let acme: TestBroker;
  let globex: TestBroker;
  let acmeAdmin: BrokerClient;
  let globexAdmin: BrokerClient;
  let ciKey: CryptoKey;
  let ciJwk: JWK;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    ciKey = pair.privateKey;
    ciJwk = { ...(await exportJWK(pair.publicKey)), kid: 'ci-1', alg: 'ES256' };
  });
  beforeEach(async () => {
    store = await fixture.open();
    acme = await startTestBroker(store);
    acmeAdmin = (await setUpScenario(acme)).admin;
    await acmeAdmin.call('PUT', '/v1/policies', { policies: POLICIES });
    globex = await startTestBroker(store, { tenantName: 'globex', reuse: acme });
    globexAdmin = globex.client(globex.adminIdentity);
    await globexAdmin.call('POST', '/v1/principals', { name: 'squatter-bot', kind: 'pipeline' });
  });
  afterEach(() => acme.close());
  afterAll(() => fixture.cleanup());

  const record = (name: string, issuer: string, audience: string, principal: string) => ({
    name,
    issuer,
    audience,
    jwks: { keys: [ciJwk] },
    principal_mapping: [{ match: { repository_owner: 'acme' }, principal }],
  });

  const footprint = async () =>
    JSON.stringify({
      federations: await store.db.selectFrom('federations').selectAll().orderBy('id').execute(),
      transmitters: await store.db.selectFrom('signal_transmitters').selectAll().orderBy('id').execute(),
      heads: await store.db.selectFrom('audit_heads').selectAll().orderBy('tenant_id').execute(),
    });

  /** The parts of a refusal a caller sees. */
  const seen = async (p: Promise<unknown>) => {
    const err = await refusal(p);
    return { status: err.status, code: err.code, detail: err.detail };
  };

  /** acme's CI run exchanges its token, unauthenticated but for the token. */
  async function exchange(aud: string) {
    const now = Math.floor(acme.clock.now() / 1000);
    const token = await new SignJWT({ repository_owner: 'acme', run_id: '77', jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'ci-1' })
      .setIssuer(ISSUER)
      .setAudience(aud)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(ciKey);
    const res = await exchangeSubjectToken(acme, token);
    return { status: res.statusCode, body: res.json() as Record<string, unknown> };
  }

  it("refuses globex acme's audience, before and after acme trusts it, with an answer that says nothing of acme", async () => {
    const start = await footprint();
    const before = await seen(
      globexAdmin.call('POST', '/v1/federations', record('actions', ISSUER, ACME_AUD, 'squatter-bot')),
    );
    expect(await footprint()).toBe(start);

    await acmeAdmin.call('POST', '/v1/federations', record('actions', ISSUER, ACME_AUD, 'deploy-bot'));
    const trusted = await footprint();
    const after = await seen(
      globexAdmin.call('POST', '/v1/federations', record('actions', ISSUER, ACME_AUD, 'squatter-bot')),
    );
    const untrustedIssuer = await seen(
      globexAdmin.call(
        'POST',
        '/v1/federations',
        record('gitlab', OTHER_ISSUER, `${ACME_AUD}/x`, 'squatter-bot'),
      ),
    );
    expect(before).toMatchObject({ status: 400, code: 'audience_not_in_tenant' });
    // The same answer whether acme trusts the issuer or not, and it names only globex's own audience.
    expect(after).toEqual(before);
    expect(untrustedIssuer).toEqual(before);
    expect(before.detail).toContain(GLOBEX_AUD);
    expect(before.detail).not.toContain('acme');
    expect(await footprint()).toBe(trusted);

    // acme's workloads still get acme's sessions.
    const answer = await exchange(ACME_AUD);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const { sessions } = await acmeAdmin.call<{ sessions: { id: string }[] }>('GET', '/v1/sessions');
    expect(sessions.map((s) => s.id)).toContain(answer.body.session_id);
    expect((await globexAdmin.call<{ sessions: unknown[] }>('GET', '/v1/sessions')).sessions).toEqual([]);

    // globex may trust the same issuer under its own audience; acme's tokens stay acme's.
    await globexAdmin.call('POST', '/v1/federations', record('actions', ISSUER, GLOBEX_AUD, 'squatter-bot'));
    expect((await exchange(ACME_AUD)).status).toBe(200);
    expect((await globexAdmin.call<{ sessions: unknown[] }>('GET', '/v1/sessions')).sessions).toEqual([]);
  });

  it('answers a conflict the same whoever holds the pair, naming nothing of the holder', async () => {
    await acmeAdmin.call('POST', '/v1/federations', record('actions', ISSUER, ACME_AUD, 'deploy-bot'));
    // A squat written before audiences were namespaced: globex holds an audience in acme's namespace.
    await insertFederation(store, {
      id: `fed_${'0'.repeat(26)}`,
      tenantId: globex.tenant.id,
      name: 'legacy-squat',
      issuer: ISSUER,
      audience: `${ACME_AUD}/legacy`,
      jwksUri: null,
      jwks: { keys: [ciJwk as Record<string, unknown>] },
      algorithms: ['ES256'],
      principalMapping: [],
      contextClaims: [],
      taskClaim: 'run_id',
      maxTokenAgeSeconds: 600,
      createdAt: acme.clock.now(),
    });
    const before = await footprint();
    const own = await seen(
      acmeAdmin.call('POST', '/v1/federations', record('again', ISSUER, ACME_AUD, 'deploy-bot')),
    );
    const theirs = await seen(
      acmeAdmin.call('POST', '/v1/federations', record('again', ISSUER, `${ACME_AUD}/legacy`, 'deploy-bot')),
    );
    expect(own).toEqual({
      status: 409,
      code: 'already_exists',
      detail: 'a trust record for this issuer and audience already exists',
    });
    expect(theirs).toEqual(own);
    expect(await footprint()).toBe(before);
  });

  it("refuses globex a signal transmitter on acme's audience; its default audience is its own", async () => {
    await acmeAdmin.call('POST', '/v1/signal-transmitters', {
      name: 'idp',
      issuer: ISSUER,
      jwks: { keys: [ciJwk] },
    });
    const before = await footprint();
    const squat = await seen(
      globexAdmin.call('POST', '/v1/signal-transmitters', {
        name: 'idp',
        issuer: ISSUER,
        audience: ACME_AUD,
        jwks: { keys: [ciJwk] },
      }),
    );
    const fresh = await seen(
      globexAdmin.call('POST', '/v1/signal-transmitters', {
        name: 'other',
        issuer: OTHER_ISSUER,
        audience: ACME_AUD,
        jwks: { keys: [ciJwk] },
      }),
    );
    expect(squat).toMatchObject({ status: 400, code: 'audience_not_in_tenant' });
    expect(fresh).toEqual(squat);
    expect(squat.detail).not.toContain('acme');
    expect(await footprint()).toBe(before);
    expect(
      await globexAdmin.call('POST', '/v1/signal-transmitters', {
        name: 'idp',
        issuer: ISSUER,
        jwks: { keys: [ciJwk] },
      }),
    ).toMatchObject({ audience: GLOBEX_AUD });
  });
});
