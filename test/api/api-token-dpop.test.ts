import { decodeJwt } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createClientAssertion,
  createDpopProof,
  generateSessionKey,
} from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/** Broker-API tokens bound to a DPoP key (RFC 9449 §5), from the attacker's side. */
describeEachStore('DPoP-bound broker-API tokens', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());
  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });

  async function boundToken() {
    const key = await generateSessionKey();
    const url = `${PUBLIC_URL}/oauth/token`;
    const assertion = await createClientAssertion(s.operator.identity, { audience: url, now: b.clock.now() });
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: await createDpopProof(key, { method: 'POST', url, now: b.clock.now() }),
      },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }).toString(),
    });
    expect(response.statusCode).toBe(200);
    const body = response.json() as { access_token: string; token_type: string };
    expect(body.token_type).toBe('DPoP');
    expect(decodeJwt(body.access_token).cnf).toEqual({ jkt: key.jkt });
    return { key, token: body.access_token };
  }

  /** `client_credentials` with `proof` and an assertion of the operator's (or `assertion`). */
  async function tokenWith(proof: string, assertion?: string) {
    const url = `${PUBLIC_URL}/oauth/token`;
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion:
          assertion ??
          (await createClientAssertion(s.operator.identity, { audience: url, now: b.clock.now() })),
      }).toString(),
    });
    return {
      status: response.statusCode,
      body: response.json() as { error?: string; error_description?: string },
    };
  }

  // The proof's jti is spent in the grant's own transaction: once granted, or once refused.
  it('spends a token-endpoint proof with its grant, and with a refused client too', async () => {
    const key = await generateSessionKey();
    const proofNow = () =>
      createDpopProof(key, { method: 'POST', url: `${PUBLIC_URL}/oauth/token`, now: b.clock.now() });
    const replayed = {
      error: 'invalid_dpop_proof',
      error_description: expect.stringContaining('already been used'),
    };
    const granted = await proofNow();
    expect((await tokenWith(granted)).status).toBe(200);
    expect(await tokenWith(granted)).toMatchObject({ status: 400, body: replayed });

    const refused = await proofNow();
    expect(await tokenWith(refused, 'not-a-jwt')).toMatchObject({
      status: 401,
      body: { error: 'invalid_client' },
    });
    expect(await tokenWith(refused)).toMatchObject({ status: 400, body: replayed });
    expect((await tokenWith(await proofNow())).status).toBe(200);
  });

  const me = async (headers: Record<string, string>) => {
    const response = await b.app.inject({ method: 'GET', url: '/v1/me', headers });
    return { status: response.statusCode, body: response.json() as { code?: string; detail?: string } };
  };

  it('accepts a bound token with a fresh proof by its key, once per proof', async () => {
    const { key, token } = await boundToken();
    const proof = await createDpopProof(key, {
      method: 'GET',
      url: `${PUBLIC_URL}/v1/me`,
      accessToken: token,
      now: b.clock.now(),
    });
    expect((await me({ authorization: `DPoP ${token}`, dpop: proof })).status).toBe(200);
    const replay = await me({ authorization: `DPoP ${token}`, dpop: proof });
    expect(replay).toMatchObject({
      status: 401,
      body: { code: 'invalid_dpop_proof', detail: expect.stringContaining('already been used') },
    });
  });

  it.each([
    { name: 'presented as Bearer', code: 'invalid_token', detail: 'DPoP scheme' },
    { name: 'with no proof', code: 'invalid_dpop_proof', detail: 'missing' },
    { name: 'with a proof by another key', code: 'invalid_token', detail: 'Invalid DPoP key binding' },
    { name: 'with a proof for another URL', code: 'invalid_dpop_proof', detail: 'htu' },
    { name: 'with a proof for another token', code: 'invalid_dpop_proof', detail: 'ath' },
  ])('refuses a bound token $name', async ({ name, code, detail }) => {
    const { key, token } = await boundToken();
    const other = await generateSessionKey();
    const url = `${PUBLIC_URL}/v1/me`;
    const now = b.clock.now();
    const headers: Record<string, string> =
      name === 'presented as Bearer'
        ? {
            authorization: `Bearer ${token}`,
            dpop: await createDpopProof(key, { method: 'GET', url, accessToken: token, now }),
          }
        : name === 'with no proof'
          ? { authorization: `DPoP ${token}` }
          : name === 'with a proof by another key'
            ? {
                authorization: `DPoP ${token}`,
                dpop: await createDpopProof(other, { method: 'GET', url, accessToken: token, now }),
              }
            : name === 'with a proof for another URL'
              ? {
                  authorization: `DPoP ${token}`,
                  dpop: await createDpopProof(key, {
                    method: 'GET',
                    url: `${PUBLIC_URL}/v1/principals`,
                    accessToken: token,
                    now,
                  }),
                }
              : {
                  authorization: `DPoP ${token}`,
                  dpop: await createDpopProof(key, { method: 'GET', url, accessToken: 'another', now }),
                };
    const answer = await me(headers);
    expect(answer).toMatchObject({ status: 401, body: { code, detail: expect.stringContaining(detail) } });
  });

  it('refuses an unbound token sent with the DPoP scheme', async () => {
    const answer = await me({ authorization: `DPoP ${await s.operator.client.bearerToken()}` });
    expect(answer).toMatchObject({
      status: 401,
      body: { code: 'invalid_token', detail: expect.stringContaining('not DPoP-bound') },
    });
  });

  it('the SDK client binds its API tokens by default, and an activation it makes without a separate proof binds the session to that key', async () => {
    const me1 = await s.operator.client.call<{ principal: { name: string } }>('GET', '/v1/me');
    expect(me1.principal.name).toBe('olivia');
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-5',
      justification: 'x',
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    const activated = await s.operator.client.call<{
      session: { cnf: { jkt: string } };
      access_token: string;
    }>('POST', `/v1/requests/${req.id}/activate`, {});
    const apiJkt = (decodeJwt(await s.operator.client.accessToken()).cnf as { jkt: string }).jkt;
    expect(activated.session.cnf.jkt).toBe(apiJkt);
    expect(decodeJwt(activated.access_token).cnf).toEqual({ jkt: apiJkt });
  });
});
