import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { endExpiredSessions } from '../../packages/broker/src/core/end-session.js';
import {
  BoundSession,
  BrokerClient,
  createDpopProof,
  generateSessionKey,
} from '../../packages/client/src/index.js';
import { StatusList } from '../../packages/protocol/src/index.js';
import { injectFetch, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

describeEachStore('session-bound tokens', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    pep = undefined;
  });

  async function approvedRequest(duration = 1800): Promise<string> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return req.id;
  }

  let pep: Awaited<ReturnType<TestBroker['principal']>>['client'] | undefined;
  const introspect = async (token: string) => {
    pep ??= (await b.principal('edge-pep', 'service', ['pep'])).client;
    return fetchForm(pep, '/oauth/introspect', { token });
  };
  async function fetchForm(
    client: { bearerToken(): Promise<string> },
    path: string,
    form: Record<string, string>,
  ) {
    const response = await b.app.inject({
      method: 'POST',
      url: path,
      headers: {
        authorization: `Bearer ${await client.bearerToken()}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: new URLSearchParams(form).toString(),
    });
    return { status: response.statusCode, body: response.json() as Record<string, unknown> };
  }

  it('activates an approved request into a DPoP-bound session with an RFC 9068 token', async () => {
    const id = await approvedRequest(1800);
    const session = await BoundSession.activate(s.operator.client, id);
    const token = session.tokens.accessToken;
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: PUBLIC_URL,
      sub: s.operator.caller.principal.id,
      client_id: s.operator.caller.principal.id,
      aud: 'https://fw.example',
      tenant: b.tenant.id,
      sid: session.info.id,
      cnf: { jkt: session.key.jkt },
      ticket: 'NET-7',
      authorization_details: [
        {
          type: 'tether_privilege',
          privilege: 'firewall-admin',
          actions: ['firewall:rules.write'],
          resources: ['firewall/edge-*'],
        },
      ],
    });
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(claims.session_exp).toBe(Math.floor((b.clock.now() + 1800_000) / 1000));
    const status = claims.status as { status_list: { idx: number; uri: string } };
    expect(status.status_list.uri).toMatch(new RegExp(`^${PUBLIC_URL}/v1/status-lists/\\d+$`));
    expect(session.info.hardExpiresAt).toBe(b.clock.now() + 1800_000);
    expect((await introspect(token)).body).toMatchObject({
      active: true,
      sid: session.info.id,
      token_type: 'DPoP',
      cnf: { jkt: session.key.jkt },
    });
  });

  it('refuses activation without a proof, by someone else, twice, or after the window', async () => {
    const id = await approvedRequest();
    // An unbound (Bearer) API token and no DPoP header: nothing to bind the session to.
    const bearerOnly = new BrokerClient({
      identity: s.operator.identity,
      fetch: injectFetch(b.app),
      now: () => b.clock.now(),
      dpop: false,
    });
    const noProof = await refusal(bearerOnly.call('POST', `/v1/requests/${id}/activate`, {}));
    expect(noProof.code).toBe('invalid_dpop_proof');
    const other = await refusal(BoundSession.activate(s.approvers[1]!.client, id));
    expect(other.code).toBe('not_requester');
    await BoundSession.activate(s.operator.client, id);
    expect((await refusal(BoundSession.activate(s.operator.client, id))).code).toBe('already_activated');
    const late = await approvedRequest();
    b.clock.advance(3600_000);
    expect((await refusal(BoundSession.activate(s.operator.client, late))).code).toBe(
      'activation_window_closed',
    );
  });

  it('rotates refresh tokens, refuses another key, and ends the session when a spent token is replayed', async () => {
    const session = await BoundSession.activate(s.operator.client, await approvedRequest());
    const first = session.tokens.refreshToken;
    await session.refresh();
    expect(session.tokens.refreshToken).not.toBe(first);
    // A thief with the current refresh token but not the key.
    const thiefKey = await generateSessionKey();
    const thiefProof = await createDpopProof(thiefKey, {
      method: 'POST',
      url: `${PUBLIC_URL}/oauth/token`,
      now: b.clock.now(),
    });
    const stolen = await refusal(
      s.operator.client.postForm(
        '/oauth/token',
        { grant_type: 'refresh_token', refresh_token: session.tokens.refreshToken },
        { dpop: thiefProof },
      ),
    );
    expect(stolen.code).toBe('invalid_grant');
    // Replay of the spent token, even by the rightful key, ends the session.
    const replayProof = await createDpopProof(session.key, {
      method: 'POST',
      url: `${PUBLIC_URL}/oauth/token`,
      now: b.clock.now(),
    });
    const reuse = await refusal(
      s.operator.client.postForm(
        '/oauth/token',
        { grant_type: 'refresh_token', refresh_token: first },
        { dpop: replayProof },
      ),
    );
    expect(reuse.code).toBe('invalid_grant');
    expect(reuse.detail).toMatch(/reuse/);
    const after = await s.admin.call<{ state: string; end_reason: string }>(
      'GET',
      `/v1/sessions/${session.info.id}`,
    );
    expect(after).toMatchObject({ state: 'ended', end_reason: 'refresh_reuse' });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
  });

  it('ends the session when a spent refresh token is presented, even by a key that is not the session key', async () => {
    const session = await BoundSession.activate(s.operator.client, await approvedRequest());
    const spent = session.tokens.refreshToken;
    await session.refresh();
    const thiefKey = await generateSessionKey();
    const proof = await createDpopProof(thiefKey, {
      method: 'POST',
      url: `${PUBLIC_URL}/oauth/token`,
      now: b.clock.now(),
    });
    const reuse = await refusal(
      s.operator.client.postForm(
        '/oauth/token',
        { grant_type: 'refresh_token', refresh_token: spent },
        { dpop: proof },
      ),
    );
    expect(reuse.code).toBe('invalid_grant');
    expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
      state: 'ended',
      end_reason: 'refresh_reuse',
    });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
  });

  it('after session end: introspection inactive, status list entry 1, refresh refused', async () => {
    const session = await BoundSession.activate(s.operator.client, await approvedRequest());
    const claims = decodeJwt(session.tokens.accessToken) as {
      status: { status_list: { idx: number; uri: string } };
    };
    const listPath = new URL(claims.status.status_list.uri).pathname;
    const readStatus = async () => {
      const response = await b.app.inject({
        method: 'GET',
        url: listPath,
        headers: { authorization: `Bearer ${await s.admin.bearerToken()}` },
      });
      expect(response.headers['content-type']).toMatch(/^application\/statuslist\+jwt/);
      expect(decodeProtectedHeader(response.body).typ).toBe('statuslist+jwt');
      const payload = decodeJwt(response.body) as {
        sub: string;
        ttl: number;
        status_list: { bits: number; lst: string };
      };
      expect(payload.sub).toBe(claims.status.status_list.uri);
      return StatusList.decode(payload.status_list).get(claims.status.status_list.idx);
    };
    expect(await readStatus()).toBe(0);
    await session.end();
    expect(await readStatus()).toBe(1);
    expect((await introspect(session.tokens.accessToken)).body).toEqual({ active: false });
    expect((await introspect(session.tokens.refreshToken)).body).toEqual({ active: false });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
    const audit = await s.admin.call<{ records: { action: string; details: { reason?: string } }[] }>(
      'GET',
      '/v1/audit?limit=1000',
    );
    expect(audit.records.filter((r) => r.action === 'session.ended').map((r) => r.details.reason)).toEqual([
      'completed',
    ]);
  });

  it('never issues a token past the hard expiry, and the sweeper ends the session at that instant', async () => {
    const session = await BoundSession.activate(s.operator.client, await approvedRequest(600));
    const hard = session.info.hardExpiresAt;
    for (let i = 0; i < 5; i++) {
      b.clock.advance(130_000);
      if (b.clock.now() >= hard) break;
      await session.refresh();
      expect(decodeJwt(session.tokens.accessToken).exp! * 1000).toBeLessThanOrEqual(hard);
    }
    b.clock.set(hard - 1);
    expect(await endExpiredSessions(b.ctx)).toBe(0);
    b.clock.set(hard);
    expect(await endExpiredSessions(b.ctx)).toBe(1);
    const ended = await s.admin.call<{ state: string; end_reason: string; ended_at: string }>(
      'GET',
      `/v1/sessions/${session.info.id}`,
    );
    expect(ended).toMatchObject({
      state: 'ended',
      end_reason: 'expired',
      ended_at: new Date(hard).toISOString(),
    });
  });

  describe('re-evaluation at refresh', () => {
    it('ends the session when the principal is disabled', async () => {
      const session = await BoundSession.activate(s.operator.client, await approvedRequest());
      await s.admin.call('PATCH', '/v1/principals/olivia', { enabled: false });
      // Ended with the change itself, not only at the next refresh.
      expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
        state: 'ended',
        end_reason: 'principal_disabled',
      });
      expect((await refusal(session.refresh())).code).toBe('invalid_grant');
      expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
        state: 'ended',
        end_reason: 'principal_disabled',
      });
    });

    it('ends the session when the privilege is deleted', async () => {
      const session = await BoundSession.activate(s.operator.client, await approvedRequest());
      await s.admin.call('DELETE', '/v1/privileges/firewall-admin');
      expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
        state: 'ended',
        end_reason: 'privilege_deleted',
      });
      expect((await refusal(session.refresh())).code).toBe('invalid_grant');
      expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
        state: 'ended',
        end_reason: 'privilege_deleted',
      });
    });

    it('ends the session when a policy change forbids it', async () => {
      const session = await BoundSession.activate(s.operator.client, await approvedRequest());
      const current = await s.admin.call<{ policies: Record<string, string> }>('GET', '/v1/policies');
      await s.admin.call('PUT', '/v1/policies', {
        policies: {
          ...current.policies,
          'freeze-firewall':
            'forbid(principal, action == Tether::Action::"request", resource) when { resource.name == "firewall-admin" };',
        },
      });
      expect((await refusal(session.refresh())).code).toBe('invalid_grant');
      expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
        state: 'ended',
        end_reason: 'policy_changed',
      });
    });
  });

  it('ends sessions through RFC 7009 revocation and admin revoke by principal', async () => {
    const a = await BoundSession.activate(s.operator.client, await approvedRequest());
    const revoke = await fetchForm(s.operator.client, '/oauth/revoke', { token: a.tokens.accessToken });
    expect(revoke.status).toBe(200);
    expect(await s.admin.call('GET', `/v1/sessions/${a.info.id}`)).toMatchObject({
      state: 'ended',
      end_reason: 'revoked',
    });
    const b2 = await BoundSession.activate(s.operator.client, await approvedRequest());
    const revoked = await s.admin.call<{ revoked: string[] }>('POST', '/v1/sessions/revoke', {
      principal: 'olivia',
    });
    expect(revoked.revoked).toEqual([b2.info.id]);
    // Unknown tokens are answered with the same empty success (RFC 7009 §2.2).
    expect((await fetchForm(s.operator.client, '/oauth/revoke', { token: 'nonsense' })).status).toBe(200);
  });
});
