import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeJwt, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { endExpiredSessions } from '../../packages/broker/src/core/end-session.js';
import {
  type BrokerClient,
  createDpopProof,
  generateSessionKey,
  type SessionKey,
} from '../../packages/client/src/index.js';
import {
  type AccessTokenVerifier,
  createAccessTokenVerifier,
  localKeySource,
  ReplayCache,
} from '../../packages/pep/src/index.js';
import { pepRefusal } from '../support/attacks.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { describeEachStore } from '../support/stores.js';
import { TOKEN_EXCHANGE_GRANT } from '../support/token-exchange.js';

/**
 * A cluster's service-account issuer as a trust record (README, "Kubernetes workloads"):
 * projected service-account tokens, shaped as Kubernetes issues them, exchanged for sessions
 * that Cedar limits to the token's own namespace and that end when the token expires.
 */

const CLUSTER_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** Acme's own audience: what the pod's projected token is requested for (`audience:` in the pod spec). */
const AUDIENCE = `${PUBLIC_URL}/tenants/acme`;
/** A second trust record of the same cluster, without `ends_with_subject_token`. */
const PLAIN_AUDIENCE = `${AUDIENCE}/plain`;
const GATEWAY = 'https://k8s-gateway.example';
const KID = 'cluster-sa-key-1';
const TOKEN_LIFETIME_S = 600;

/** The privilege: one per cluster, every namespace's resources listed. */
const PRIVILEGE = {
  name: 'k8s-deploy',
  actions: ['k8s:deploy', 'k8s:rollout.restart'],
  resources: ['k8s/team-a/*', 'k8s/team-b/*'],
  audiences: [GATEWAY],
  max_duration: 3600,
  token_ttl: 900,
  ticket: { required: false },
};

/** The policies the README ships: workloads may ask and are approved; continue keeps their namespace only. */
const POLICIES: Record<string, string> = {
  'k8s-request': `permit(principal, action == Tether::Action::"request", resource) when { principal.kind == "workload" && resource.name == "k8s-deploy" && principal.hasTag("claim:kubernetes.io/namespace") };`,
  'k8s-auto-approve': `permit(principal, action == Tether::Action::"auto_approve", resource) when { principal.kind == "workload" && resource.name == "k8s-deploy" && principal.hasTag("claim:kubernetes.io/namespace") && context.duration_seconds <= 3600 };`,
  'k8s-own-namespace': `forbid(principal, action == Tether::Action::"continue", resource) when { resource.name == "k8s-deploy" && context has entitlement_resource && !(principal.hasTag("claim:kubernetes.io/namespace") && context.entitlement_resource.hasTag("2") && context.entitlement_resource.getTag("2") == principal.getTag("claim:kubernetes.io/namespace")) };`,
};

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
type Claims = Record<string, unknown>;

interface Exchanged {
  status: number;
  body: Record<string, unknown>;
  key: SessionKey;
}

interface SessionView {
  id: string;
  state: string;
  end_reason: string | null;
  ticket: string | null;
  hard_expires_at: string;
  ended_at: string | null;
  authorization_details: { privilege: string; actions: string[]; resources: string[] }[];
}

describeEachStore('Kubernetes workloads (projected service-account tokens)', (fixture) => {
  let b: TestBroker;
  let admin: BrokerClient;
  let deployer: Actor;
  let clusterKey: SigningKey;
  let clusterJwk: JWK;
  let pep: AccessTokenVerifier;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    clusterKey = pair.privateKey;
    clusterJwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  });
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    admin = b.client(b.adminIdentity);
    // With a key of its own too, so it can call the API as itself (as an extension would).
    deployer = await b.principal('k8s-deployer', 'workload');
    await admin.call('POST', '/v1/privileges', PRIVILEGE);
    await admin.call('PUT', '/v1/policies', { policies: POLICIES });
    await trust();
    const jwks = (await b.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as {
      keys: JWK[];
    };
    pep = createAccessTokenVerifier({
      issuer: PUBLIC_URL,
      audience: GATEWAY,
      tenant: b.tenant.id,
      publicBaseUrl: GATEWAY,
      keys: await localKeySource(jwks),
      now: () => b.clock.now(),
      leewaySeconds: 0,
      replayCache: new ReplayCache({ maxEntries: 1000, now: () => b.clock.now() }),
    });
  });

  /** The trust record of the README, created through the API as an admin would. */
  function trust(changes: Record<string, unknown> = {}) {
    return admin.call<Record<string, unknown>>('POST', '/v1/federations', {
      name: 'cluster-1',
      issuer: CLUSTER_ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [clusterJwk] },
      algorithms: ['RS256'],
      principal_mapping: [
        {
          match: { 'kubernetes.io/serviceaccount/name': 'deployer', sub: 'system:serviceaccount:*:deployer' },
          principal: 'k8s-deployer',
        },
      ],
      context_claims: ['kubernetes.io/namespace', 'kubernetes.io/pod/name'],
      task_claim: 'kubernetes.io/pod/uid',
      ends_with_subject_token: true,
      ...changes,
    });
  }

  /** Claims exactly as the kubelet's projected service-account token carries them. */
  function podClaims(namespace: unknown, lifetime = TOKEN_LIFETIME_S): Claims {
    const now = Math.floor(b.clock.now() / 1000);
    return {
      aud: [AUDIENCE],
      exp: now + lifetime,
      iat: now,
      nbf: now,
      iss: CLUSTER_ISSUER,
      jti: randomUUID(),
      sub: `system:serviceaccount:${String(namespace)}:deployer`,
      'kubernetes.io': {
        namespace,
        node: { name: 'n1', uid: randomUUID() },
        pod: { name: 'deployer-7c9f', uid: 'f3a1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b' },
        serviceaccount: { name: 'deployer', uid: randomUUID() },
        warnafter: now + lifetime - 60,
      },
    };
  }

  function sign(claims: Claims): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: KID }).sign(clusterKey);
  }

  async function exchange(token: string): Promise<Exchanged> {
    const key = await generateSessionKey();
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: await createDpopProof(key, {
          method: 'POST',
          url: `${PUBLIC_URL}/oauth/token`,
          now: b.clock.now(),
        }),
      },
      payload: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        privilege: 'k8s-deploy',
        duration: '1800',
      }).toString(),
    });
    expect(response.statusCode, response.body).toBeLessThan(500);
    return { status: response.statusCode, body: response.json() as Record<string, unknown>, key };
  }

  async function sessions(): Promise<SessionView[]> {
    return (await admin.call<{ sessions: SessionView[] }>('GET', '/v1/sessions')).sessions;
  }

  const sessionView = (id: unknown) => admin.call<SessionView>('GET', `/v1/sessions/${String(id)}`);

  /** The resources the exchange's session holds, as the broker records them and as its access token says. */
  async function heldResources(answer: Exchanged): Promise<string[]> {
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const view = await sessionView(answer.body.session_id);
    const claims = decodeJwt(answer.body.access_token as string) as {
      authorization_details: { resources: string[]; actions: string[] }[];
    };
    expect(claims.authorization_details.map((d) => d.resources)).toEqual(
      view.authorization_details.map((d) => d.resources),
    );
    // Never more than the privilege: every action, no resource outside its list.
    expect(view.authorization_details[0]?.actions).toEqual(PRIVILEGE.actions);
    return view.authorization_details.flatMap((d) => d.resources);
  }

  /** What a gateway PEP answers a request bearing the session's access token. */
  async function presentToGateway(answer: Exchanged, token = answer.body.access_token as string) {
    const path = '/apis/apps/v1/namespaces/team-a/deployments';
    return pep.verify({
      method: 'POST',
      path,
      authorization: `DPoP ${token}`,
      dpop: await createDpopProof(answer.key, {
        method: 'POST',
        url: `${GATEWAY}${path}`,
        accessToken: token,
        now: b.clock.now(),
      }),
    });
  }

  async function expectRefused(answer: Exchanged, error: string, description: RegExp): Promise<void> {
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe(error);
    expect(answer.body.error_description).toMatch(description);
    expect(answer.body).not.toHaveProperty('access_token');
    expect(await sessions()).toEqual([]);
  }

  it('runs the policies the README documents', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('#### Kubernetes workloads'));
    const block = /```cedar\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const words = (text: string) =>
      text
        .replace(/\s+/g, ' ')
        .replace(/([({]) | ([)}])/g, '$1$2')
        .trim();
    expect(words(block)).toBe(words(Object.values(POLICIES).join('\n')));
  });

  it('shows the trust record bound to its subject tokens, with its claim paths', async () => {
    expect(await admin.call('GET', '/v1/federations/cluster-1')).toMatchObject({
      context_claims: ['kubernetes.io/namespace', 'kubernetes.io/pod/name'],
      task_claim: 'kubernetes.io/pod/uid',
      principal_mapping: [{ match: { 'kubernetes.io/serviceaccount/name': 'deployer' } }],
      ends_with_subject_token: true,
    });
    await trust({ name: 'cluster-plain', audience: PLAIN_AUDIENCE, ends_with_subject_token: undefined });
    expect(await admin.call('GET', '/v1/federations/cluster-plain')).toMatchObject({
      ends_with_subject_token: false,
    });
  });

  it("gives a team-a pod a session holding team-a's resources only, its ticket the pod uid", async () => {
    const answer = await exchange(await sign(podClaims('team-a')));
    expect(await heldResources(answer)).toEqual(['k8s/team-a/*']);
    expect(await sessionView(answer.body.session_id)).toMatchObject({
      state: 'active',
      ticket: 'f3a1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b',
    });
    const { claims } = await presentToGateway(answer);
    expect(claims.authorization_details[0]?.resources).toEqual(['k8s/team-a/*']);
  });

  it("gives a team-b pod team-b's resources only", async () => {
    expect(await heldResources(await exchange(await sign(podClaims('team-b'))))).toEqual(['k8s/team-b/*']);
  });

  it('narrows by the namespace policy alone: without it the same token would hold every namespace', async () => {
    const { 'k8s-own-namespace': _narrowing, ...others } = POLICIES;
    await admin.call('PUT', '/v1/policies', { policies: others });
    expect(await heldResources(await exchange(await sign(podClaims('team-a'))))).toEqual(PRIVILEGE.resources);
  });

  it('narrows live sessions when the namespace policy arrives later (continuous evaluation)', async () => {
    const { 'k8s-own-namespace': _narrowing, ...others } = POLICIES;
    await admin.call('PUT', '/v1/policies', { policies: others });
    const teamA = await exchange(await sign(podClaims('team-a')));
    const teamB = await exchange(await sign(podClaims('team-b')));
    expect(await heldResources(teamA)).toEqual(PRIVILEGE.resources);
    await admin.call('PUT', '/v1/policies', { policies: POLICIES });
    await b.ctx.reevaluation.idle();
    const resourcesOf = async (answer: Exchanged) => {
      const view = await sessionView(answer.body.session_id);
      expect(view.state).toBe('active');
      return view.authorization_details[0]?.resources;
    };
    expect(await resourcesOf(teamA)).toEqual(['k8s/team-a/*']);
    expect(await resourcesOf(teamB)).toEqual(['k8s/team-b/*']);
    const records = (
      await admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
        'GET',
        `/v1/audit?session=${String(teamA.body.session_id)}`,
      )
    ).records;
    expect(records.find((r) => r.action === 'session.narrowed')?.details).toMatchObject({
      reason: 'policy_changed',
    });
  });

  it('keeps the namespace at refresh: continuous evaluation sees the same claims', async () => {
    const answer = await exchange(await sign(podClaims('team-a')));
    b.clock.advance(60_000);
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: await createDpopProof(answer.key, {
          method: 'POST',
          url: `${PUBLIC_URL}/oauth/token`,
          now: b.clock.now(),
        }),
      },
      payload: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: answer.body.refresh_token as string,
      }).toString(),
    });
    expect(response.statusCode, response.body).toBe(200);
    const refreshed = decodeJwt((response.json() as { access_token: string }).access_token) as {
      authorization_details: { resources: string[] }[];
    };
    expect(refreshed.authorization_details[0]?.resources).toEqual(['k8s/team-a/*']);
  });

  describe('claims that try to escape their namespace get no more than it', () => {
    it('a top-level namespace claim beside the nested one is not read', async () => {
      const claims = { ...podClaims('team-a'), namespace: 'team-b' };
      expect(await heldResources(await exchange(await sign(claims)))).toEqual(['k8s/team-a/*']);
    });

    it('a flat "kubernetes.io/namespace" member is not the nested claim', async () => {
      const claims = { ...podClaims('team-a'), 'kubernetes.io/namespace': 'team-b' };
      expect(await heldResources(await exchange(await sign(claims)))).toEqual(['k8s/team-a/*']);
    });

    it.each([
      ['a wildcard namespace', '*'],
      ['a relative namespace', '../team-a'],
      ['a namespace with a slash', 'team-a/../team-b'],
      ['an empty namespace', ''],
    ])('%s is refused: it owns no resource', async (_name, namespace) => {
      await expectRefused(
        await exchange(await sign(podClaims(namespace))),
        'invalid_scope',
        /the session cannot start: policy forbids every resource the session holds/,
      );
    });

    it.each([
      ['an object', { name: 'team-a' }],
      ['a list', ['team-a', 'team-b']],
    ])(
      'a namespace that is %s is no claim at all: policy does not let the request through',
      async (_n, ns) => {
        await expectRefused(
          await exchange(await sign(podClaims(ns))),
          'invalid_scope',
          /no policy permits it/,
        );
      },
    );

    it.each([
      ['a string', (c: Claims) => ({ ...c, 'kubernetes.io': 'team-a' })],
      ['a list', (c: Claims) => ({ ...c, 'kubernetes.io': [c['kubernetes.io']] })],
      ['an empty object', (c: Claims) => ({ ...c, 'kubernetes.io': {} })],
    ])('the kubernetes.io object replaced by %s maps to no principal', async (_n, edit) => {
      await expectRefused(
        await exchange(await sign(edit(podClaims('team-a')))),
        'invalid_grant',
        /claims map to no principal/,
      );
    });
  });

  it('ends the session when the pod-bound token expires: hard expiry, sweeper, PEP', async () => {
    const claims = podClaims('team-a');
    const exp = (claims.exp as number) * 1000;
    const answer = await exchange(await sign(claims));
    expect(answer.status).toBe(200);
    // 600 s of token life, though the request asked for 1800 s and the privilege allows 3600 s.
    const view = await sessionView(answer.body.session_id);
    expect(view.hard_expires_at).toBe(new Date(exp).toISOString());
    const token = decodeJwt(answer.body.access_token as string);
    expect(token.session_exp).toBe(claims.exp);
    expect(token.exp).toBe(claims.exp);

    b.clock.set(exp - 1000);
    expect((await presentToGateway(answer)).claims.sid).toBe(answer.body.session_id);
    expect(await endExpiredSessions(b.ctx)).toBe(0);

    b.clock.set(exp);
    expect(await endExpiredSessions(b.ctx)).toBe(1);
    expect(await sessionView(answer.body.session_id)).toMatchObject({
      state: 'ended',
      end_reason: 'expired',
      ended_at: new Date(exp).toISOString(),
    });
    const refused = await pepRefusal(presentToGateway(answer));
    expect(refused.code).toBe('invalid_token');
    expect(refused.description).toMatch(/expired/);
  });

  it('cannot be extended past the token it was exchanged for', async () => {
    const answer = await exchange(await sign(podClaims('team-a')));
    expect(answer.status).toBe(200);
    const before = await sessionView(answer.body.session_id);
    const refused = await deployer.client
      .call('POST', `/v1/sessions/${answer.body.session_id}/extend`, { by: 600, justification: 'longer' })
      .then(
        () => undefined,
        (err: unknown) => err as { code: string; message: string },
      );
    expect(refused?.code).toBe('invalid_request');
    expect(refused?.message).toMatch(/no longer than the workload token/);
    expect((await sessionView(answer.body.session_id)).hard_expires_at).toBe(before.hard_expires_at);
  });

  it('keeps the privilege-bound duration without ends_with_subject_token', async () => {
    await trust({ name: 'cluster-plain', audience: PLAIN_AUDIENCE, ends_with_subject_token: false });
    const claims = { ...podClaims('team-a'), aud: [PLAIN_AUDIENCE] };
    const started = b.clock.now();
    const answer = await exchange(await sign(claims));
    expect(await heldResources(answer)).toEqual(['k8s/team-a/*']);
    const view = await sessionView(answer.body.session_id);
    expect(view.hard_expires_at).toBe(new Date(started + 1800 * 1000).toISOString());
    b.clock.set((claims.exp as number) * 1000 + 60_000);
    expect(await endExpiredSessions(b.ctx)).toBe(0);
    expect((await sessionView(answer.body.session_id)).state).toBe('active');
  });

  it('refuses a subject token that expires before the session could start (within clock tolerance)', async () => {
    const claims = podClaims('team-a', 60);
    const token = await sign(claims);
    // Past exp, but inside the broker's clock tolerance: jose accepts it, the session would end before it starts.
    b.clock.set((claims.exp as number) * 1000 + 1000);
    await expectRefused(await exchange(token), 'invalid_grant', /^the subject token has expired$/);
  });

  describe('trust records refuse claim paths that could reach past the claims', () => {
    it.each([
      [
        'a prototype key',
        { context_claims: ['kubernetes.io/__proto__/namespace'] },
        'context_claims: "kubernetes.io/__proto__/namespace" is not a claim name: "__proto__" may not be a segment',
      ],
      [
        'constructor in a rule',
        {
          principal_mapping: [{ match: { 'kubernetes.io/constructor': 'x' }, principal: 'k8s-deployer' }],
        },
        'principal_mapping[0].match: "kubernetes.io/constructor" is not a claim name: "constructor" may not be a segment',
      ],
      [
        'more than four segments',
        { task_claim: 'kubernetes.io/pod/uid/a/b' },
        'task_claim: "kubernetes.io/pod/uid/a/b" is not a claim name: a claim path has at most 4 segments',
      ],
      [
        'an over-long path',
        { context_claims: [`${'a'.repeat(64)}/${'b'.repeat(64)}`] },
        'is not a claim name: a claim path has at most 128 characters',
      ],
      [
        'an array index',
        { context_claims: ['kubernetes.io/0'] },
        'context_claims: "kubernetes.io/0" is not a claim name: "0" is not an identifier',
      ],
    ])('%s', async (_name, changes, detail) => {
      const err = await refusal(trust({ name: 'cluster-2', audience: `${AUDIENCE}/two`, ...changes }));
      expect({ status: err.status, code: err.code }).toEqual({ status: 400, code: 'invalid_request' });
      expect(err.detail).toContain(detail);
      expect(
        (await admin.call<{ federations: unknown[] }>('GET', '/v1/federations')).federations,
      ).toHaveLength(1);
    });
  });
});
