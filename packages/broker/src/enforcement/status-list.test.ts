import { decodeJwt } from 'jose';
import { afterAll, beforeEach, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../../test/support/broker.js';
import { type Scenario, setUpScenario } from '../../../../test/support/scenario.js';
import { describeEachStore } from '../../../../test/support/stores.js';
import { BoundSession } from '../../../client/src/index.js';
import { StatusList } from '../../../protocol/src/index.js';

/**
 * The status-list endpoint serves the signed form it keeps, and re-signs only when a bit changed,
 * the key rotated or the `ttl` passed: proved on the broker's manual clock, since a re-signed
 * list carries the clock's `iat` and would differ byte for byte.
 */
describeEachStore('status list served from cache', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });

  async function session(): Promise<BoundSession> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 1800,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return BoundSession.activate(s.operator.client, req.id);
  }

  const where = (token: string) =>
    (decodeJwt(token) as { status: { status_list: { idx: number; uri: string } } }).status.status_list;

  async function fetchList(uri: string): Promise<string> {
    const response = await b.app.inject({ method: 'GET', url: new URL(uri).pathname });
    expect(response.statusCode).toBe(200);
    return response.body;
  }

  it('serves the same signed bytes until a bit changes, then re-signs once', async () => {
    const first = await session();
    const at = where(first.tokens.accessToken);
    const signed = await fetchList(at.uri);
    b.clock.advance(5_000);
    // Another session in the same list: a slot taken, no bit changed.
    const second = await session();
    expect(where(second.tokens.accessToken).uri).toBe(at.uri);
    expect(await fetchList(at.uri)).toBe(signed);
    // Concurrent fetches of an unchanged list: all the same bytes.
    expect(new Set(await Promise.all([1, 2, 3].map(() => fetchList(at.uri))))).toEqual(new Set([signed]));

    await first.end();
    const changed = await fetchList(at.uri);
    expect(changed).not.toBe(signed);
    const payload = decodeJwt(changed) as { iat: number; status_list: { bits: 1; lst: string } };
    expect(payload.iat).toBe(Math.floor(b.clock.now() / 1000));
    expect(StatusList.decode(payload.status_list).get(at.idx)).toBe(1);
    b.clock.advance(1_000);
    expect(await fetchList(at.uri)).toBe(changed);
  });

  it('re-signs an unchanged list once its ttl has passed', async () => {
    const at = where((await session()).tokens.accessToken);
    const signed = await fetchList(at.uri);
    const ttlMs = b.ctx.config.statusListTtlSeconds * 1000;
    b.clock.advance(ttlMs - 1);
    expect(await fetchList(at.uri)).toBe(signed);
    b.clock.advance(1);
    const resigned = await fetchList(at.uri);
    expect(resigned).not.toBe(signed);
    expect((decodeJwt(resigned) as { iat: number }).iat).toBe(Math.floor(b.clock.now() / 1000));
  });
});
