import type { DecisionRecord } from '@tether-broker/protocol';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { endIdleSessions } from '../../packages/broker/src/sessions/end-idle-sessions.js';
import { BoundSession, BrokerClient } from '../../packages/client/src/index.js';
import { BrokerCallFailed } from '../../packages/pep/src/index.js';
import { type Actor, injectFetch, startTestBroker, type TestBroker } from '../support/broker.js';
import { pepLink, reportOver, setPepAudiences } from '../support/pep-link.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const MINUTE = 60_000;
const FW = 'https://fw.example';
const DEPLOY = 'https://deploy.example';

/** Awaits a PEP-channel call that the broker must refuse, and answers the failure. */
async function linkRefusal(p: Promise<unknown>): Promise<BrokerCallFailed> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BrokerCallFailed) return err;
    throw err;
  }
  throw new Error('expected the broker to refuse');
}

/**
 * Attack (issue 9, item 7): a PEP's broker-API token recorded an "allowed" decision for any
 * session of its tenant, and that kept the session from idling out. Now a PEP records
 * decisions only for an audience an admin set for it, about sessions granted for that
 * audience, and only a batch signed by the PEP's own key counts as session activity.
 */
describeEachStore('forged decision records', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let deployPep: Actor;
  let fwPep: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    deployPep = await b.principal('deploy-pep', 'service', ['pep']);
    fwPep = await b.principal('fw-pep', 'service', ['pep']);
    await setPepAudiences(s.admin, deployPep, [DEPLOY]);
    await setPepAudiences(s.admin, fwPep, [FW]);
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { idle_timeout: 600 });
  });
  afterEach(() => b.close());

  /** An approved firewall-admin session (audience https://fw.example), activated now. */
  async function firewallSession(): Promise<BoundSession> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 7200,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return BoundSession.activate(s.operator.client, req.id);
  }

  const allowed = (session: string, overrides: Partial<DecisionRecord> = {}): DecisionRecord => ({
    at: b.clock.now(),
    allow: true,
    code: 'ok',
    action: 'firewall:rules.write',
    resource: 'firewall/edge-1',
    session,
    ...overrides,
  });

  /** What a refused report must leave as it was: the audit trail, the PEP rows, the session. */
  async function state(sessionId: string) {
    const db = b.ctx.store.db;
    const audit = await db
      .selectFrom('audit_records')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('seq').as('head')])
      .where('tenant_id', '=', b.tenant.id)
      .executeTakeFirstOrThrow();
    const peps = await db.selectFrom('peps').selectAll().orderBy('principal_id').execute();
    const session = await db
      .selectFrom('sessions')
      .select(['last_activity_at', 'state'])
      .where('id', '=', sessionId)
      .executeTakeFirstOrThrow();
    return { audit: { n: Number(audit.n), head: Number(audit.head) }, peps, session };
  }

  it('refuses an allowed decision for a session at an audience the PEP does not enforce; nothing changes', async () => {
    const session = await firewallSession();
    const link = pepLink(b, deployPep);
    await link.token(); // issuing the token is audited: before the snapshot
    b.clock.advance(9 * MINUTE);
    const before = await state(session.info.id);

    // 1. Its own audience, but the session is not granted for it.
    const own = await linkRefusal(reportOver(link, DEPLOY, [allowed(session.info.id)]));
    expect([own.status, own.code]).toEqual([403, 'audience_not_enforced']);
    // 2. Claiming the session's audience, which an admin never gave it.
    const claimed = await linkRefusal(reportOver(link, FW, [allowed(session.info.id)]));
    expect([claimed.status, claimed.code]).toEqual([403, 'audience_not_enforced']);
    // 3. Hidden in a batch among genuine decisions: the batch is atomic, refused whole.
    const hidden = await linkRefusal(
      reportOver(
        link,
        DEPLOY,
        [
          allowed(session.info.id, { allow: false, code: 'invalid_token', session: null }),
          allowed(session.info.id),
        ],
        3,
      ),
    );
    expect(hidden.code).toBe('audience_not_enforced');
    expect(await state(session.info.id)).toEqual(before);
    // 4. A PEP no admin gave any audience records nothing at all.
    const bare = await b.principal('bare-pep', 'service', ['pep']);
    const bareLink = pepLink(b, bare);
    await bareLink.token();
    const before2 = await state(session.info.id);
    const none = await linkRefusal(reportOver(bareLink, FW, [allowed(session.info.id)]));
    expect(none.code).toBe('audience_not_enforced');
    expect(await state(session.info.id)).toEqual(before2);

    expect(before2.session).toEqual(before.session);

    // The session still idles out on time: none of it counted as activity.
    b.clock.advance(1 * MINUTE);
    expect(await endIdleSessions(b.ctx)).toBe(1);
    expect((await state(session.info.id)).session.state).toBe('ended');
  });

  it('an unsigned (Bearer) batch, or one proven by a key not the PEP’s, is recorded but keeps no session alive', async () => {
    const session = await firewallSession();
    const activatedAt = b.clock.now();
    const fetch = injectFetch(b.app);
    const bearer = new BrokerClient({
      identity: fwPep.identity,
      fetch,
      now: () => b.clock.now(),
      dpop: false,
    });
    // DPoP-bound, but to the SDK's own ephemeral key: proves holding the token, not being the PEP.
    const ephemeral = new BrokerClient({ identity: fwPep.identity, fetch, now: () => b.clock.now() });
    for (const client of [bearer, ephemeral]) {
      b.clock.advance(4 * MINUTE);
      const answer = await client.call('POST', '/v1/decisions', {
        audience: FW,
        decisions: [allowed(session.info.id)],
        dropped: 0,
      });
      expect(answer).toEqual({ recorded: 1, dropped: 0 });
      expect((await state(session.info.id)).session.last_activity_at).toBe(activatedAt);
    }
    // Recorded in the trail all the same (as the PEP's, linked to the session).
    const trail = await s.admin.call<{ records: { action: string; actor: string }[] }>(
      'GET',
      `/v1/audit?session=${session.info.id}&limit=100`,
    );
    expect(trail.records.filter((r) => r.action === 'decision.allow')).toHaveLength(2);

    b.clock.advance(2 * MINUTE - 1);
    expect(await endIdleSessions(b.ctx)).toBe(0);
    b.clock.advance(1);
    expect(await endIdleSessions(b.ctx)).toBe(1);
    expect((await state(session.info.id)).session.state).toBe('ended');
  });

  it('a batch signed by the PEP’s registered key (DPoP proof by it) is activity', async () => {
    const session = await firewallSession();
    const link = pepLink(b, fwPep);
    b.clock.advance(9 * MINUTE);
    expect(await reportOver(link, FW, [allowed(session.info.id)])).toEqual({ recorded: 1, dropped: 0 });
    expect((await state(session.info.id)).session.last_activity_at).toBe(b.clock.now());
    b.clock.advance(9 * MINUTE);
    expect(await endIdleSessions(b.ctx)).toBe(0);
    b.clock.advance(1 * MINUTE);
    expect(await endIdleSessions(b.ctx)).toBe(1);
  });

  it('only admins set a PEP’s audiences, only on a pep principal; the change is audited', async () => {
    const asPep = await refusal(
      fwPep.client.call('PUT', '/v1/peps/fw-pep/audiences', { audiences: [DEPLOY] }),
    );
    expect(asPep.code).toBe('forbidden');
    const notPep = await refusal(s.admin.call('PUT', '/v1/peps/olivia/audiences', { audiences: [FW] }));
    expect(notPep.code).toBe('invalid_request');
    expect(await fwPep.client.call('GET', '/v1/peps/fw-pep/audiences')).toEqual({
      pep: fwPep.caller.principal.id,
      name: 'fw-pep',
      audiences: [FW],
    });
    const trail = await s.admin.call<{ records: { action: string; details: unknown }[] }>(
      'GET',
      '/v1/audit?limit=1000',
    );
    expect(trail.records.filter((r) => r.action === 'pep.audiences_set').map((r) => r.details)).toEqual([
      { before: [], after: [DEPLOY] },
      { before: [], after: [FW] },
    ]);
  });
});
