import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type BrokerClient,
  BrokerError,
  createDpopProof,
  generateSessionKey,
  type SessionKey,
} from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { SCENARIO_POLICIES, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ISSUER = 'https://token.actions.example';
/** Acme's own audience: trust-record audiences are namespaced by tenant. */
const AUDIENCE = `${PUBLIC_URL}/tenants/acme`;
const GLOBEX_AUDIENCE = `${PUBLIC_URL}/tenants/globex`;
/** The loopback JWKS servers are on the operator's allow-list, over http. */
const OUTBOUND = { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true };
const KID = 'ci-key-1';

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/** A CI provider's OIDC issuer: a key pair and its JWKS, served on loopback by a real HTTP server. */
interface Issuer {
  jwksUri: string;
  fetches: () => number;
  close: () => Promise<void>;
}

async function serveJwks(keys: JWK[]): Promise<Issuer> {
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks') {
      res.writeHead(404).end();
      return;
    }
    fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  return {
    jwksUri: `http://127.0.0.1:${port}/.well-known/jwks`,
    fetches: () => fetches,
    close: async () => {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on: opened, then closed. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface OAuthAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** Policies: a pipeline may ask for `deploy` from acme's repositories; `main` is approved by policy. */
const POLICIES: Record<string, string> = {
  'operators-request': SCENARIO_POLICIES['operators-request']!,
  'approvers-approve': SCENARIO_POLICIES['approvers-approve']!,
  'workload-request-deploy': `permit(principal, action == Tether::Action::"request", resource) when { principal.kind == "pipeline" && resource.name == "deploy" && principal.hasTag("claim:repository") && principal.getTag("claim:repository") like "acme/*" };`,
  'workload-auto-main': `permit(principal, action == Tether::Action::"auto_approve", resource) when { principal.kind == "pipeline" && resource.name == "deploy" && principal.hasTag("claim:ref") && principal.getTag("claim:ref") == "refs/heads/main" && context.duration_seconds <= 1800 };`,
};

describeEachStore('federated workloads (RFC 8693 token exchange)', (fixture) => {
  let b: TestBroker;
  let admin: BrokerClient;
  let issuer: Issuer;
  let ciKey: SigningKey;
  let ciPublicJwk: JWK;
  let otherKey: SigningKey;
  let approver: BrokerClient;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    ciKey = pair.privateKey;
    ciPublicJwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
    otherKey = (await generateKeyPair('RS256')).privateKey;
  });
  afterAll(() => fixture.cleanup());
  afterEach(() => issuer?.close());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open(), { config: OUTBOUND });
    const s = await setUpScenario(b);
    admin = s.admin;
    await admin.call('PUT', '/v1/policies', { policies: POLICIES });
    await admin.call('POST', '/v1/principals', { name: 'web-deployer', kind: 'pipeline' });
    await admin.call('POST', '/v1/principals', { name: 'api-deployer', kind: 'pipeline' });
    issuer = await serveJwks([ciPublicJwk]);
    await trust();
    approver = s.approvers[0]!.client;
  });

  /** The trust record for the CI issuer, created through the API as an admin would. */
  function trust(changes: Record<string, unknown> = {}) {
    return admin.call<Record<string, unknown>>('POST', '/v1/federations', {
      name: 'actions',
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks_uri: issuer.jwksUri,
      principal_mapping: [
        { match: { repository: 'acme/web', ref: 'refs/heads/*' }, principal: 'web-deployer' },
        { match: { repository: 'acme/api' }, principal: 'api-deployer' },
        { match: { repository_owner: 'partner' }, principal: 'api-deployer' },
      ],
      context_claims: ['repository', 'ref', 'workflow'],
      ...changes,
    });
  }

  /** An OIDC token shaped like a CI provider's, issued "now" on the broker's clock. */
  async function ciToken(
    claims: Record<string, unknown> = {},
    options: { key?: SigningKey | Uint8Array; kid?: string; alg?: string } = {},
  ): Promise<string> {
    const now = Math.floor(b.clock.now() / 1000);
    return new SignJWT({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'repo:acme/web:ref:refs/heads/main',
      repository: 'acme/web',
      repository_owner: 'acme',
      ref: 'refs/heads/main',
      workflow: 'deploy',
      run_id: '123456',
      run_attempt: '1',
      jti: randomUUID(),
      iat: now,
      nbf: now,
      exp: now + 300,
      ...claims,
    })
      .setProtectedHeader({ alg: options.alg ?? 'RS256', kid: options.kid ?? KID, typ: 'JWT' })
      .sign(options.key ?? ciKey);
  }

  async function exchange(
    subjectToken: string,
    options: { key?: SessionKey; dpop?: boolean; form?: Record<string, string> } = {},
  ): Promise<OAuthAnswer & { key: SessionKey }> {
    const key = options.key ?? (await generateSessionKey());
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (options.dpop !== false) {
      headers.dpop = await createDpopProof(key, {
        method: 'POST',
        url: `${PUBLIC_URL}/oauth/token`,
        now: b.clock.now(),
      });
    }
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers,
      payload: new URLSearchParams({
        grant_type: GRANT,
        subject_token: subjectToken,
        subject_token_type: JWT_TYPE,
        privilege: 'deploy',
        duration: '900',
        ...options.form,
      }).toString(),
    });
    expect(response.statusCode, response.body).toBeLessThan(500);
    return { status: response.statusCode, body: response.json() as Record<string, unknown>, key };
  }

  async function sessions(): Promise<
    {
      id: string;
      ticket: string | null;
      principal: string;
      state: string;
      end_reason: string | null;
      cnf: { jkt: string };
    }[]
  > {
    return (await admin.call<{ sessions: never[] }>('GET', '/v1/sessions')).sessions;
  }

  async function audit(): Promise<
    {
      action: string;
      actor: string;
      outcome: string;
      request: string | null;
      principal: string | null;
      details: Record<string, unknown>;
    }[]
  > {
    return (await admin.call<{ records: never[] }>('GET', '/v1/audit?limit=1000')).records;
  }

  async function principalId(name: string): Promise<string> {
    return (await admin.call<{ id: string }>('GET', `/v1/principals/${name}`)).id;
  }

  /** A refusal: the status, the OAuth error, a description that says why, and no session. */
  async function expectRefused(
    answer: OAuthAnswer,
    error: string,
    description: RegExp | string,
  ): Promise<void> {
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe(error);
    expect(answer.body.error_description).toMatch(description);
    expect(answer.body).not.toHaveProperty('access_token');
    expect(await sessions()).toEqual([]);
  }

  it('exchanges a CI token for a DPoP-bound session whose ticket is the run, and audits it', async () => {
    const token = await ciToken();
    const answer = await exchange(token);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'DPoP',
      expires_in: 300,
    });
    expect(answer.body.refresh_token).toEqual(expect.any(String));
    const webDeployer = await principalId('web-deployer');
    const claims = decodeJwt(answer.body.access_token as string);
    expect(claims).toMatchObject({
      sub: webDeployer,
      sid: answer.body.session_id,
      cnf: { jkt: answer.key.jkt },
      ticket: '123456',
      aud: 'https://deploy.example',
      authorization_details: [{ type: 'tether_privilege', privilege: 'deploy', actions: ['deploy:release'] }],
    });
    expect(claims.session_exp).toBe(Math.floor(b.clock.now() / 1000) + 900);

    const [session, ...others] = await sessions();
    expect(others).toEqual([]);
    expect(session).toMatchObject({
      id: answer.body.session_id,
      ticket: '123456',
      state: 'active',
      cnf: { jkt: answer.key.jkt },
    });

    const records = await audit();
    const created = records.find((r) => r.action === 'request.created');
    expect(created).toMatchObject({
      actor: webDeployer,
      principal: webDeployer,
      details: {
        privilege: 'deploy',
        federation: 'actions',
        issuer: ISSUER,
        subject: 'repo:acme/web:ref:refs/heads/main',
        run: '123456',
      },
    });
    expect(records.find((r) => r.action === 'request.approved')).toMatchObject({
      actor: 'policy',
      request: created!.request,
      details: { auto_approved: true },
    });
    expect(records.find((r) => r.action === 'session.activated')).toMatchObject({
      actor: webDeployer,
      request: created!.request,
      details: { jkt: answer.key.jkt, federation: 'actions' },
    });
    const request = await admin.call<{ state: string; ticket: string; policies: string[] }>(
      'GET',
      `/v1/requests/${created!.request}`,
    );
    expect(request).toMatchObject({ state: 'approved', ticket: '123456' });
    // The claims reached Cedar: the auto-approval rests on claim:ref.
    expect(request.policies).toContain('workload-auto-main');
    // The workload's token is a credential: it is in no record and no log line.
    expect(JSON.stringify(records)).not.toContain(token.split('.')[2]);
    expect(b.logs.join('\n')).not.toContain(token.split('.')[2]);
    expect((await admin.call<{ ok: boolean }>('GET', '/v1/audit/verify')).ok).toBe(true);
  });

  it('refreshes the exchanged session with the same DPoP key, re-evaluated with the token claims', async () => {
    const first = await exchange(await ciToken());
    expect(first.status).toBe(200);
    b.clock.advance(120_000);
    const proof = await createDpopProof(first.key, {
      method: 'POST',
      url: `${PUBLIC_URL}/oauth/token`,
      now: b.clock.now(),
    });
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
      payload: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: first.body.refresh_token as string,
      }).toString(),
    });
    // The request policy needs claim:repository: the refresh saw the claims the request was decided on.
    expect(response.statusCode, response.body).toBe(200);
    const refreshed = response.json() as { access_token: string; refresh_token: string };
    expect(decodeJwt(refreshed.access_token)).toMatchObject({
      sid: first.body.session_id,
      cnf: { jkt: first.key.jkt },
    });
    expect(refreshed.refresh_token).not.toBe(first.body.refresh_token);
  });

  describe('refuses, with the exact error, and starts no session', () => {
    it('an untrusted issuer', async () => {
      await expectRefused(
        await exchange(await ciToken({ iss: 'https://evil.example' })),
        'invalid_grant',
        /^untrusted issuer or audience$/,
      );
    });

    it('a token for another audience', async () => {
      await expectRefused(
        await exchange(await ciToken({ aud: GLOBEX_AUDIENCE })),
        'invalid_grant',
        /^untrusted issuer or audience$/,
      );
    });

    it('an expired subject token', async () => {
      const token = await ciToken({ exp: Math.floor(b.clock.now() / 1000) + 60 });
      b.clock.advance(120_000);
      await expectRefused(await exchange(token), 'invalid_grant', /^the subject token has expired$/);
      const refusal = (await audit()).find((r) => r.action === 'auth.token_exchange');
      expect(refusal).toMatchObject({
        outcome: 'refused',
        details: { federation: 'actions', reason: 'the subject token has expired' },
      });
    });

    it('a token not yet valid', async () => {
      const now = Math.floor(b.clock.now() / 1000);
      await expectRefused(
        await exchange(await ciToken({ nbf: now + 300 })),
        'invalid_grant',
        /not yet valid \(nbf\)/,
      );
    });

    it('a token issued longer ago than the trust allows, though not expired', async () => {
      const now = Math.floor(b.clock.now() / 1000);
      await expectRefused(
        await exchange(await ciToken({ iat: now - 700, nbf: now - 700, exp: now + 3600 })),
        'invalid_grant',
        /issued too long ago or in the future \(iat\)/,
      );
    });

    it('a token without exp', async () => {
      await expectRefused(await exchange(await ciToken({ exp: undefined })), 'invalid_grant', /no exp claim/);
    });

    it('a token signed by another key under the issuer kid', async () => {
      await expectRefused(
        await exchange(await ciToken({}, { key: otherKey })),
        'invalid_grant',
        /signature is invalid/,
      );
    });

    it('a token with an algorithm the trust does not allow (HS256, keyed with the public modulus)', async () => {
      const secret = new TextEncoder().encode(String(ciPublicJwk.n));
      await expectRefused(
        await exchange(await ciToken({}, { key: secret, alg: 'HS256' })),
        'invalid_grant',
        /algorithm this trust does not allow/,
      );
    });

    it('a token that is not a JWT', async () => {
      await expectRefused(await exchange('not-a-jwt'), 'invalid_grant', /not a JWT/);
    });

    it('claims that map to no principal', async () => {
      const answer = await exchange(
        await ciToken({ repository: 'acme/other', sub: 'repo:acme/other:ref:refs/heads/main' }),
      );
      await expectRefused(answer, 'invalid_grant', /claims map to no principal/);
      const refusal = (await audit()).find((r) => r.action === 'auth.token_exchange');
      expect(refusal).toMatchObject({
        outcome: 'refused',
        details: { federation: 'actions', subject: 'repo:acme/other:ref:refs/heads/main', run: '123456' },
      });
    });

    it('a mapped principal that is disabled', async () => {
      await admin.call('PATCH', '/v1/principals/web-deployer', { enabled: false });
      await expectRefused(await exchange(await ciToken()), 'invalid_grant', /web-deployer is disabled/);
      const refusal = (await audit()).find((r) => r.action === 'auth.token_exchange');
      expect(refusal).toMatchObject({ actor: await principalId('web-deployer'), outcome: 'refused' });
    });

    it('a missing DPoP proof', async () => {
      await expectRefused(await exchange(await ciToken(), { dpop: false }), 'invalid_dpop_proof', /DPoP/);
    });

    it('a replayed DPoP proof', async () => {
      const key = await generateSessionKey();
      const proof = await createDpopProof(key, {
        method: 'POST',
        url: `${PUBLIC_URL}/oauth/token`,
        now: b.clock.now(),
      });
      const send = async () =>
        b.app.inject({
          method: 'POST',
          url: '/oauth/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
          payload: new URLSearchParams({
            grant_type: GRANT,
            subject_token: await ciToken(),
            subject_token_type: JWT_TYPE,
            privilege: 'deploy',
            duration: '900',
          }).toString(),
        });
      expect((await send()).statusCode).toBe(200);
      const replay = await send();
      expect(replay.statusCode).toBe(400);
      expect(replay.json()).toMatchObject({ error: 'invalid_dpop_proof' });
      expect(await sessions()).toHaveLength(1);
    });

    it('missing or wrong exchange parameters', async () => {
      const token = await ciToken();
      await expectRefused(
        await exchange(token, { form: { subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' } }),
        'invalid_request',
        /subject_token_type must be/,
      );
      await expectRefused(
        await exchange(token, { form: { privilege: '' } }),
        'invalid_request',
        /privilege is required/,
      );
      await expectRefused(
        await exchange(token, {
          form: { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' },
        }),
        'invalid_request',
        /requested_token_type/,
      );
      await expectRefused(
        await exchange(token, { form: { privilege: 'no-such-privilege' } }),
        'invalid_scope',
        /no privilege "no-such-privilege"/,
      );
      await expectRefused(
        await exchange(token, { form: { audience: 'https://fw.example' } }),
        'invalid_request',
        /not an audience of deploy/,
      );
      await expectRefused(
        await exchange(token, { form: { duration: '7200' } }),
        'invalid_request',
        /at most 3600 s/,
      );
    });

    it('a run whose task reference does not fit the privilege ticket rule', async () => {
      await expectRefused(
        await exchange(await ciToken(), { form: { privilege: 'firewall-admin' } }),
        'invalid_grant',
        /task reference \(run_id\) does not satisfy the privilege: ticket "123456" does not match/,
      );
      expect((await audit()).find((r) => r.action === 'auth.token_exchange')).toMatchObject({
        outcome: 'refused',
        principal: await principalId('web-deployer'),
        details: { privilege: 'firewall-admin', run: '123456' },
      });
    });

    it('a token whose audiences name two trust records of the issuer (ambiguous)', async () => {
      await trust({ name: 'actions-2', audience: `${AUDIENCE}/2` });
      await expectRefused(
        await exchange(await ciToken({ aud: [AUDIENCE, `${AUDIENCE}/2`] })),
        'invalid_grant',
        /^untrusted issuer or audience$/,
      );
      // Either audience alone is fine.
      expect((await exchange(await ciToken({ aud: [`${AUDIENCE}/2`, 'unrelated'] }))).status).toBe(200);
    });

    it('a principal that policy, reading the claims, does not let request the privilege', async () => {
      // Mapped (partner's repositories map to api-deployer), but the request policy wants claim:repository like "acme/*".
      const answer = await exchange(
        await ciToken({ repository: 'partner/tool', repository_owner: 'partner' }),
      );
      await expectRefused(
        answer,
        'invalid_scope',
        /^api-deployer may not request deploy: no policy permits it$/,
      );
      const refused = (await audit()).find((r) => r.action === 'request.create');
      expect(refused).toMatchObject({
        outcome: 'refused',
        principal: await principalId('api-deployer'),
        details: { federation: 'actions', run: '123456' },
      });
    });
  });

  it('leaves a request pending when policy does not auto-approve, and starts its session once approved', async () => {
    const feature = { ref: 'refs/heads/feature-x', sub: 'repo:acme/web:ref:refs/heads/feature-x' };
    const first = await exchange(await ciToken(feature));
    await expectRefused(
      first,
      'invalid_grant',
      /^request req_[0-9a-z]{26} needs approval before a session can start; exchange a token of the same run \(run_id 123456\) again once it is approved$/,
    );
    const requestId = /request (req_[0-9a-z]{26})/.exec(first.body.error_description as string)![1]!;
    expect(await admin.call('GET', `/v1/requests/${requestId}`)).toMatchObject({
      state: 'pending',
      ticket: '123456',
    });

    // Asked again before approval: the same request, not a second one.
    const again = await exchange(await ciToken(feature));
    expect(again.body.error_description).toContain(requestId);
    expect(
      (await admin.call<{ requests: unknown[] }>('GET', '/v1/requests?state=pending')).requests,
    ).toHaveLength(1);

    await approver.call('POST', `/v1/requests/${requestId}/approve`, { comment: 'ship it' });
    const resumed = await exchange(await ciToken(feature));
    expect(resumed.status).toBe(200);
    const [session] = await sessions();
    expect(session).toMatchObject({
      id: resumed.body.session_id,
      ticket: '123456',
      cnf: { jkt: resumed.key.jkt },
    });
    expect((await admin.call<{ request: string }>('GET', `/v1/sessions/${session!.id}`)).request).toBe(
      requestId,
    );

    // Another run is another task: it asks afresh.
    const otherRun = await exchange(await ciToken({ ...feature, run_id: '999' }));
    expect(otherRun.body.error_description).not.toContain(requestId);
  });

  it('keeps using the cached JWKS when the issuer goes down, and refuses an unknown kid cleanly', async () => {
    expect((await exchange(await ciToken())).status).toBe(200);
    expect(issuer.fetches()).toBe(1);
    await issuer.close();
    const cached = await exchange(await ciToken({ run_id: '123457' }));
    expect(cached.status).toBe(200);
    const before = await sessions();
    const unknownKid = await exchange(
      await ciToken({ run_id: '123458' }, { key: otherKey, kid: 'rotated-key-2' }),
    );
    expect(unknownKid.status).toBe(400);
    expect(unknownKid.body).toMatchObject({ error: 'invalid_grant' });
    expect(unknownKid.body.error_description).toMatch(/no key of the issuer's JWKS matches|unreachable/);
    expect(await sessions()).toEqual(before);
  });

  it('refuses cleanly when the JWKS cannot be fetched at all', async () => {
    await admin.call('DELETE', '/v1/federations/actions');
    await trust({ jwks_uri: `http://127.0.0.1:${await deadPort()}/.well-known/jwks` });
    await expectRefused(
      await exchange(await ciToken()),
      'invalid_grant',
      /^the issuer's keys are unreachable; try again later$/,
    );
  });

  it('verifies against an inline JWKS too', async () => {
    await trust({
      name: 'actions-inline',
      audience: `${AUDIENCE}/inline`,
      jwks_uri: undefined,
      jwks: { keys: [ciPublicJwk] },
    });
    await issuer.close();
    const answer = await exchange(await ciToken({ aud: [`${AUDIENCE}/inline`, 'other'] }));
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  });

  describe('trust records (/v1/federations)', () => {
    it('lists, reads by name and id, and answers snake_case views', async () => {
      const { federations } = await admin.call<{ federations: Record<string, unknown>[] }>(
        'GET',
        '/v1/federations',
      );
      expect(federations).toHaveLength(1);
      const [record] = federations;
      expect(record).toMatchObject({
        name: 'actions',
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks_uri: issuer.jwksUri,
        jwks: null,
        algorithms: ['RS256', 'ES256', 'EdDSA'],
        context_claims: ['repository', 'ref', 'workflow'],
        task_claim: 'run_id',
        max_token_age: 600,
        principal_mapping: [
          {
            match: { repository: 'acme/web', ref: 'refs/heads/*' },
            principal: await principalId('web-deployer'),
          },
          { match: { repository: 'acme/api' }, principal: await principalId('api-deployer') },
          { match: { repository_owner: 'partner' }, principal: await principalId('api-deployer') },
        ],
      });
      expect(record!.id).toMatch(/^fed_[0-9a-z]{26}$/);
      expect(await admin.call('GET', `/v1/federations/${record!.id}`)).toEqual(record);
      expect(await admin.call('GET', '/v1/federations/actions')).toEqual(record);
      expect(await refusal(admin.call('GET', '/v1/federations/nope'))).toMatchObject({
        status: 404,
        code: 'not_found',
      });
    });

    it('refuses an audience of another tenant, and a second (issuer, audience) or name in the tenant', async () => {
      const globex = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
      const globexAdmin = globex.client(globex.adminIdentity);
      await globexAdmin.call('POST', '/v1/principals', { name: 'globex-bot', kind: 'workload' });
      const body = {
        name: 'actions',
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks_uri: issuer.jwksUri,
        principal_mapping: [{ match: { repository_owner: 'globex' }, principal: 'globex-bot' }],
      };
      // Acme's audience is acme's: globex is told only what its own audience is.
      const err = await refusal(globexAdmin.call('POST', '/v1/federations', body));
      expect(err).toMatchObject({ status: 400, code: 'audience_not_in_tenant' });
      expect(err.detail).not.toContain('acme');
      // Its own audience is fine.
      await globexAdmin.call('POST', '/v1/federations', { ...body, audience: GLOBEX_AUDIENCE });
      // Same name in the same tenant is not.
      expect(await refusal(trust({ audience: `${AUDIENCE}/2` }))).toMatchObject({
        status: 409,
        code: 'already_exists',
      });
    });

    it('refuses private keys, humans, clear-text JWKS, bad algorithms and non-admins', async () => {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const privateJwk = await exportJWK(privateKey);
      const cases: [Record<string, unknown>, number, string, RegExp][] = [
        [
          { jwks_uri: undefined, jwks: { keys: [privateJwk] } },
          400,
          'invalid_key',
          /private or secret key material/,
        ],
        [
          { jwks_uri: undefined, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } },
          400,
          'invalid_key',
          /private or secret/,
        ],
        [{ jwks: { keys: [ciPublicJwk] } }, 400, 'invalid_request', /exactly one of jwks_uri and jwks/],
        [{ jwks_uri: 'http://issuer.example/jwks' }, 400, 'destination_refused', /https/],
        [{ jwks_uri: 'https://10.0.0.1/jwks' }, 400, 'destination_refused', /private/],
        [{ algorithms: ['RS256', 'HS256'] }, 400, 'invalid_request', /not accepted: HS256/],
        [
          { principal_mapping: [{ match: { repository: 'acme/web' }, principal: 'olivia' }] },
          400,
          'invalid_request',
          /olivia is a human/,
        ],
        [
          { principal_mapping: [{ match: { repository: 'acme/web' }, principal: 'ghost' }] },
          404,
          'not_found',
          /ghost/,
        ],
        [
          { principal_mapping: [{ match: {}, principal: 'web-deployer' }] },
          400,
          'invalid_request',
          /principal_mapping/,
        ],
        [{ issuer: PUBLIC_URL }, 400, 'invalid_request', /cannot trust itself/],
        [{ surprise: true }, 400, 'invalid_request', /additional|surprise/],
      ];
      for (const [changes, status, code, detail] of cases) {
        const err = await refusal(trust({ name: 'second', audience: `${AUDIENCE}/second`, ...changes }));
        expect({ status: err.status, code: err.code }, JSON.stringify(changes)).toEqual({ status, code });
        expect(err.detail).toMatch(detail);
        expect(err.detail).not.toContain(String(privateJwk.d));
      }
      const mallory = (await b.principal('mallory')).client;
      expect(
        await refusal(
          mallory.call('POST', '/v1/federations', {
            name: 'x',
            issuer: ISSUER,
            audience: `${AUDIENCE}/x`,
            jwks_uri: issuer.jwksUri,
            principal_mapping: [{ match: { a: 'b' }, principal: 'web-deployer' }],
          }),
        ),
      ).toMatchObject({ status: 403, code: 'forbidden' });
      expect(await refusal(mallory.call('DELETE', '/v1/federations/actions'))).toMatchObject({
        status: 403,
        code: 'forbidden',
      });
      expect(
        (await admin.call<{ federations: unknown[] }>('GET', '/v1/federations')).federations,
      ).toHaveLength(1);
    });

    it('deleting a trust record ends the sessions it started and refuses further exchanges', async () => {
      const answer = await exchange(await ciToken());
      expect(answer.status).toBe(200);
      expect(await admin.call('DELETE', '/v1/federations/actions')).toEqual({ deleted: true });
      expect(await admin.call('GET', `/v1/sessions/${answer.body.session_id}`)).toMatchObject({
        state: 'ended',
        end_reason: 'trust_changed',
      });
      const after = await exchange(await ciToken({ run_id: '2' }));
      expect(after.status).toBe(400);
      expect(after.body).toEqual({
        error: 'invalid_grant',
        error_description: 'untrusted issuer or audience',
      });
      const deleted = (await audit()).find((r) => r.action === 'federation.deleted');
      expect(deleted).toMatchObject({
        outcome: 'success',
        details: { name: 'actions', ended_sessions: [answer.body.session_id] },
      });
    });
  });
});

async function refusal(p: Promise<unknown>): Promise<BrokerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BrokerError) return err;
    throw err;
  }
  throw new Error('expected the broker to refuse');
}
