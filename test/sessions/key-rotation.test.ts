import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeEach, expect, it } from 'vitest';
import type { Kek } from '../../packages/broker/src/config/key-encryption.js';
import { retireExpiredKeys, rotateSigningKey } from '../../packages/broker/src/operations/signing-keys.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

describeEachStore('signing key rotation', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });

  const jwksKids = async () =>
    (
      (await b.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as {
        keys: { kid: string; d?: string }[];
      }
    ).keys.map((k) => {
      expect(k.d).toBeUndefined();
      return k.kid;
    });

  it('tokens signed by the old key verify during the overlap and fail after it; the retired key leaves the JWKS', async () => {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-1',
      justification: 'x',
      duration: 7200,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    const session = await BoundSession.activate(s.operator.client, req.id);
    const pep = await b.principal('edge-pep', 'service', ['pep']);
    const introspect = async (token: string) =>
      (
        await b.app.inject({
          method: 'POST',
          url: '/oauth/introspect',
          headers: {
            authorization: `Bearer ${await pep.client.bearerToken()}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          payload: new URLSearchParams({ token }).toString(),
        })
      ).json() as { active: boolean };

    const oldToken = session.tokens.accessToken;
    const oldKid = decodeProtectedHeader(oldToken).kid!;
    expect(await jwksKids()).toEqual([oldKid]);

    const kek = (b.ctx as typeof b.ctx & { kek: Kek }).kek;
    const rotation = await rotateSigningKey(b.ctx.store, kek, b.clock, 600);
    await b.ctx.keys.load();
    expect(rotation.retiring).toEqual([oldKid]);
    expect(new Set(await jwksKids())).toEqual(new Set([oldKid, rotation.kid]));

    // New tokens are signed by the new key; the old token still verifies during the overlap.
    await session.refresh();
    expect(decodeProtectedHeader(session.tokens.accessToken).kid).toBe(rotation.kid);
    b.clock.advance(290_000);
    expect((await introspect(oldToken)).active).toBe(true);

    // After the overlap: the old key verifies nothing and is gone from the JWKS.
    b.clock.advance(310_001);
    expect(await retireExpiredKeys(b.ctx.store, b.clock.now())).toEqual([oldKid]);
    await b.ctx.keys.load();
    expect(await jwksKids()).toEqual([rotation.kid]);
    expect((await introspect(oldToken)).active).toBe(false);
    // The session goes on with tokens from the new key.
    await session.refresh();
    expect((await introspect(session.tokens.accessToken)).active).toBe(true);
  });
});
