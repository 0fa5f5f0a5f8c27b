import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoundSession, createDpopProof } from '../../packages/client/src/index.js';
import { injectFetch, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Interoperability: an independent implementation (panva's oauth4webapi, as a resource
 * server would use it) accepts our access tokens and DPoP proofs under RFC 6750, 9068 and 9449.
 */
describeEachStore('access tokens under oauth4webapi', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let as: oauth.AuthorizationServer;
  let session: BoundSession;
  afterAll(() => fixture.cleanup());

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    as = (
      await b.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })
    ).json() as oauth.AuthorizationServer;
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-9',
      justification: 'interop',
      duration: 900,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    session = await BoundSession.activate(s.operator.client, req.id);
  });

  const options = () => ({
    requireDPoP: true,
    signingAlgorithms: ['EdDSA'],
    // The broker under test runs on a manual clock; tell the validator how far it is from real time.
    [oauth.clockSkew]: Math.round((b.clock.now() - Date.now()) / 1000),
    [oauth.customFetch]: injectFetch(b.app),
    [oauth.allowInsecureRequests]: true,
  });

  async function resourceRequest(token: string, proofFor: string = token): Promise<Request> {
    const url = 'https://fw.example/rules';
    const proof = await createDpopProof(session.key, {
      method: 'POST',
      url,
      accessToken: proofFor,
      now: b.clock.now(),
    });
    return new Request(url, { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: proof } });
  }

  it('validateJwtAccessToken accepts the token with DPoP required', async () => {
    const claims = await oauth.validateJwtAccessToken(
      as,
      await resourceRequest(session.tokens.accessToken),
      'https://fw.example',
      options(),
    );
    expect(claims).toMatchObject({
      iss: 'http://broker.test',
      sub: s.operator.caller.principal.id,
      client_id: s.operator.caller.principal.id,
      aud: 'https://fw.example',
      sid: session.info.id,
      cnf: { jkt: session.key.jkt },
    });
  });

  describe('and refuses what it should', () => {
    it('a token for another audience', async () => {
      await expect(
        oauth.validateJwtAccessToken(
          as,
          await resourceRequest(session.tokens.accessToken),
          'https://other.example',
          options(),
        ),
      ).rejects.toThrow();
    });
    it('a proof made for another token (ath mismatch)', async () => {
      await expect(
        oauth.validateJwtAccessToken(
          as,
          await resourceRequest(session.tokens.accessToken, 'another-token'),
          'https://fw.example',
          options(),
        ),
      ).rejects.toThrow();
    });
  });
});
