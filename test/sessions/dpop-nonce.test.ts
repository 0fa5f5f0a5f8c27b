import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  BoundSession,
  createClientAssertion,
  createDpopProof,
  generateSessionKey,
} from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** A broker that requires server-issued DPoP nonces (RFC 9449 §8): `dpopNonce: required`. */
describeEachStore('server-issued DPoP nonces', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());
  beforeAll(async () => {
    b = await startTestBroker(await fixture.open(), { config: { dpopNonce: 'required' } });
    s = await setUpScenario(b);
  });

  const url = `${PUBLIC_URL}/oauth/token`;
  async function tokenRequest(nonce?: string) {
    const key = await generateSessionKey();
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: await createDpopProof(key, {
          method: 'POST',
          url,
          ...(nonce ? { nonce } : {}),
          now: b.clock.now(),
        }),
      },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await createClientAssertion(s.operator.identity, {
          audience: url,
          now: b.clock.now(),
        }),
      }).toString(),
    });
    return {
      status: response.statusCode,
      body: response.json() as Record<string, unknown>,
      nonce: response.headers['dpop-nonce'] as string,
    };
  }

  it('answers a proof without a nonce with use_dpop_nonce and a DPoP-Nonce to use; the retry succeeds', async () => {
    const first = await tokenRequest();
    expect(first).toMatchObject({ status: 400, body: { error: 'use_dpop_nonce' } });
    expect(first.nonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const second = await tokenRequest(first.nonce);
    expect(second).toMatchObject({ status: 200, body: { token_type: 'DPoP' } });
  });

  it('refuses a forged nonce and a nonce two windows old, accepts last window’s', async () => {
    expect((await tokenRequest('forged-nonce-forged-nonce-forged-')).body.error).toBe('use_dpop_nonce');
    const issued = (await tokenRequest()).nonce;
    b.clock.advance(60_000);
    expect((await tokenRequest(issued)).status).toBe(200);
    b.clock.advance(60_000);
    expect((await tokenRequest(issued)).body.error).toBe('use_dpop_nonce');
  });

  it('the SDK answers the challenges by itself: API calls, activation, refresh', async () => {
    const me = await s.operator.client.call<{ principal: { name: string } }>('GET', '/v1/me');
    expect(me.principal.name).toBe('olivia');
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-3',
      justification: 'nonce',
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    b.clock.advance(130_000); // the nonce the client holds is now stale: the SDK must retry
    const session = await BoundSession.activate(s.operator.client, req.id);
    b.clock.advance(130_000);
    await session.refresh();
    expect((await s.admin.call<{ state: string }>('GET', `/v1/sessions/${session.info.id}`)).state).toBe(
      'active',
    );
  });
});
