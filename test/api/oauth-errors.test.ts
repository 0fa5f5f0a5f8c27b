import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BoundSession, createClientAssertion } from '../../packages/client/src/index.js';
import { StatusList } from '../../packages/protocol/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Issue #10 item 6, as an independent client sees the OAuth endpoints: every 401 carries a
 * challenge (RFC 6749 §5.2, RFC 6750 §3, RFC 9110 §15.5.2); a caller of introspection without
 * the privilege to introspect gets RFC 7662 §2.3's 401; the status list a token names is
 * fetchable by a relying party without credentials, and re-signed only when it changes.
 */
describeEachStore('OAuth error shapes and the public status list', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  afterAll(async () => {
    await b?.close();
    await fixture.cleanup();
  });
  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
  });

  const form = (path: string, body: Record<string, string>, authorization?: string) =>
    b.app.inject({
      method: 'POST',
      url: path,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(authorization ? { authorization } : {}),
      },
      payload: new URLSearchParams(body).toString(),
    });

  it('introspection by a caller whose token lacks the role: 401 insufficient_scope with a Bearer challenge (RFC 7662 §2.3)', async () => {
    const res = await form(
      '/oauth/introspect',
      { token: 'x' },
      `Bearer ${await s.operator.client.bearerToken()}`,
    );
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: 'insufficient_scope' });
    expect(res.headers['www-authenticate']).toBe('Bearer error="insufficient_scope"');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it("revocation of a token the caller does not hold: RFC 7009 §2.2's empty success, revealing nothing", async () => {
    const res = await form(
      '/oauth/revoke',
      { token: 'x' },
      `Bearer ${await s.operator.client.bearerToken()}`,
    );
    expect(res.statusCode).toBe(200);
  });

  it.each(['/oauth/introspect', '/oauth/revoke'])(
    '%s: no token, or a forged one, gets 401 invalid_token with a challenge',
    async (path) => {
      const none = await form(path, { token: 'x' });
      expect(none.statusCode).toBe(401);
      expect(none.json()).toMatchObject({ error: 'invalid_token' });
      expect(none.headers['www-authenticate']).toMatch(/^Bearer realm="tether", DPoP algs="/);

      const forged = await form(path, { token: 'x' }, 'Bearer eyJhbGciOiJub25lIn0.e30.');
      expect(forged.statusCode).toBe(401);
      expect(forged.json()).toMatchObject({ error: 'invalid_token' });
      expect(forged.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    },
  );

  it('/oauth/token: a bad client assertion gets 401 invalid_client with a challenge', async () => {
    const url = `${PUBLIC_URL}/oauth/token`;
    const assertion = await createClientAssertion(s.outsider.identity, {
      audience: 'https://elsewhere',
      now: b.clock.now(),
    });
    const res = await form(url.slice(PUBLIC_URL.length), {
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: 'invalid_client' });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="tether"/);
  });

  it('introspection by a PEP still works', async () => {
    const res = await form(
      '/oauth/introspect',
      { token: 'not-a-token' },
      `Bearer ${await pep.client.bearerToken()}`,
    );
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ active: false });
  });

  it('serves the status list a token names to anyone, signed once until it changes', async () => {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'status list',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    const session = await BoundSession.activate(s.operator.client, req.id);
    const { status_list } = decodeJwt(session.tokens.accessToken).status as {
      status_list: { idx: number; uri: string };
    };
    const path = status_list.uri.slice(PUBLIC_URL.length);
    // A relying party that is no Tether principal: no Authorization header at all.
    const first = await b.app.inject({ method: 'GET', url: path });
    expect(first.statusCode).toBe(200);
    expect(first.headers['content-type']).toMatch(/^application\/statuslist\+jwt/);
    expect(first.headers['cache-control']).toMatch(/public, max-age=\d+/);
    expect(decodeProtectedHeader(first.body)).toMatchObject({ typ: 'statuslist+jwt' });
    const read = (jwt: string) =>
      StatusList.decode((decodeJwt(jwt) as { status_list: { lst: string; bits: number } }).status_list).get(
        status_list.idx,
      );
    expect(read(first.body)).toBe(0);

    // Unchanged: the very same signed list, not a new signature.
    b.clock.advance(1000);
    const again = await b.app.inject({ method: 'GET', url: path });
    expect(again.body).toBe(first.body);

    // Changed: the session ends, the list is re-signed and says INVALID at once.
    await s.operator.client.call('POST', `/v1/sessions/${session.info.id}/end`, {});
    const changed = await b.app.inject({ method: 'GET', url: path });
    expect(changed.body).not.toBe(first.body);
    expect(read(changed.body)).toBe(1);

    // A list that does not exist: a plain 404 problem, nothing about other tenants.
    const missing = await b.app.inject({ method: 'GET', url: '/v1/status-lists/1' });
    if (!path.endsWith('/1')) expect(missing.json()).toMatchObject({ code: 'not_found' });
  });
});
