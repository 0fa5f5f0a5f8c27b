import { calculateJwkThumbprint, decodeJwt, type JWK } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { createDpopProof, generateSessionKey } from '../../packages/client/src/index.js';
import { type Actor, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { pepLink, reportOver, setPepAudiences } from '../support/pep-link.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const DEPLOY = 'https://deploy.example';

/**
 * Attack (issue 9, item 10): the PEP's channel to the broker used a Bearer token, so a copy of
 * it (a log line, a proxy, a heap dump of another process) let anyone follow the revocation
 * log, ack for the PEP (making receipts lie) and record decisions as it. Now the PEP library
 * gets its broker-API token DPoP-bound to the PEP's own key and proves that key on every call:
 * the token alone is refused everywhere, with any scheme.
 */
describeEachStore('stolen PEP channel token', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    await setPepAudiences(s.admin, pep, [DEPLOY]);
  });
  afterEach(() => b.close());

  async function state() {
    const db = b.ctx.store.db;
    const audit = await db
      .selectFrom('audit_records')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', b.tenant.id)
      .executeTakeFirstOrThrow();
    return {
      audit: Number(audit.n),
      peps: await db.selectFrom('peps').selectAll().execute(),
      instances: await db.selectFrom('pep_instances').selectAll().execute(),
    };
  }

  const decisionBody = {
    audience: DEPLOY,
    decisions: [{ at: 0, allow: false, code: 'invalid_token', action: 'a', resource: 'r', session: null }],
    dropped: 0,
  };
  const calls = (pepId: string) =>
    [
      { method: 'GET', url: '/v1/events', headers: { accept: 'text/event-stream' } },
      { method: 'POST', url: `/v1/peps/${pepId}/ack`, payload: { applied: 0 } },
      { method: 'POST', url: '/v1/decisions', payload: decisionBody },
    ] as const;

  it('binds the PEP channel token to the PEP key, and refuses it as Bearer or with another key', async () => {
    const link = pepLink(b, pep);
    const token = await link.token();
    // The token is bound to the PEP's registered key (its kid is the key's RFC 7638 thumbprint).
    const { cnf } = decodeJwt(token) as { cnf?: { jkt?: string } };
    const { d: _d, ...publicJwk } = pep.identity.key as JWK;
    expect(cnf?.jkt).toBe(await calculateJwkThumbprint(publicJwk));

    const before = await state();
    const thief = await generateSessionKey();
    for (const call of calls(pep.caller.principal.id)) {
      // 1. The stolen token as Bearer.
      const bearer = await b.app.inject({
        method: call.method,
        url: call.url,
        headers: { ...('headers' in call ? call.headers : {}), authorization: `Bearer ${token}` },
        ...('payload' in call ? { payload: call.payload } : {}),
      });
      expect([bearer.statusCode, bearer.json().code], `${call.method} ${call.url} as Bearer`).toEqual([
        401,
        'invalid_token',
      ]);
      // 2. With the DPoP scheme and a proof by the thief's own key.
      const proof = await createDpopProof(thief, {
        method: call.method,
        url: `${PUBLIC_URL}${call.url}`,
        accessToken: token,
        now: b.clock.now(),
      });
      const forged = await b.app.inject({
        method: call.method,
        url: call.url,
        headers: { ...('headers' in call ? call.headers : {}), authorization: `DPoP ${token}`, dpop: proof },
        ...('payload' in call ? { payload: call.payload } : {}),
      });
      // RFC 9449 §7.1: a proof by another key than the token's is "Invalid DPoP key binding".
      expect([forged.statusCode, forged.json().code], `${call.method} ${call.url} with another key`).toEqual([
        401,
        'invalid_token',
      ]);
      expect(forged.json().detail).toContain('Invalid DPoP key binding');
      expect(forged.headers['www-authenticate']).toMatch(/^DPoP error="invalid_token"/);
    }
    // 3. A proof the PEP made, captured with the token, replayed.
    const captured = await link.authHeaders('POST', '/v1/decisions');
    expect(
      (await b.app.inject({ method: 'POST', url: '/v1/decisions', headers: captured, payload: decisionBody }))
        .statusCode,
    ).toBe(202);
    const afterGenuine = await state();
    const replayed = await b.app.inject({
      method: 'POST',
      url: '/v1/decisions',
      headers: captured,
      payload: decisionBody,
    });
    expect([replayed.statusCode, replayed.json().code]).toEqual([401, 'invalid_dpop_proof']);
    // ...and on another route (its htm/htu do not match).
    const elsewhere = await b.app.inject({
      method: 'POST',
      url: `/v1/peps/${pep.caller.principal.id}/ack`,
      headers: captured,
      payload: { applied: 0 },
    });
    expect([elsewhere.statusCode, elsewhere.json().code]).toEqual([401, 'invalid_dpop_proof']);

    // Nothing the thief sent changed anything: no ack, no instance, no audit record.
    expect(before).toEqual({ audit: before.audit, peps: [], instances: [] });
    expect(afterGenuine.audit).toBe(before.audit + 1);
    expect(await state()).toEqual(afterGenuine);
  });

  it('the PEP itself acks and reports over the bound channel, naming its instance', async () => {
    const link = pepLink(b, pep);
    expect(
      await link.postJson(`/v1/peps/${pep.caller.principal.id}/ack`, { applied: 0, instance: link.instance }),
    ).toEqual({
      applied: 0,
      head: 0,
    });
    expect(await reportOver(link, DEPLOY, decisionBody.decisions)).toEqual({ recorded: 1, dropped: 0 });
    const { instances } = await state();
    expect(instances.map((i) => i.instance_id)).toEqual([link.instance]);
  });

  it('answers a DPoP nonce challenge when the broker requires nonces', async () => {
    const strict = await startTestBroker(await fixture.open(), { config: { dpopNonce: 'required' } });
    try {
      const pep2 = await strict.principal('edge-pep', 'service', ['pep']);
      const link = pepLink(strict, pep2);
      expect(
        await link.postJson(`/v1/peps/${pep2.caller.principal.id}/ack`, {
          applied: 0,
          instance: link.instance,
        }),
      ).toEqual({
        applied: 0,
        head: 0,
      });
    } finally {
      await strict.close();
    }
  });
});
