import type { DecisionRecord } from '@tether-broker/protocol';
import type { AuditRecordList, SessionView } from '@tether-broker/protocol/api';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { endExpiredSessions } from '../../packages/broker/src/core/end-session.js';
import { readRevocationLog } from '../../packages/broker/src/revocation/log.js';
import { endIdleSessions } from '../../packages/broker/src/sessions/end-idle-sessions.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, startTestBroker, type TestBroker } from '../support/broker.js';
import { pepLink, reportOver } from '../support/pep-link.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const MINUTE = 60_000;

describeEachStore('idle timeout', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    await s.admin.call('PUT', '/v1/peps/edge-pep/audiences', { audiences: ['https://fw.example'] });
    // Access tokens outlive the idle timeout here, so that introspection has something to refuse.
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { token_ttl: 900, idle_timeout: 600 });
  });
  afterEach(() => b.close());

  /** An approved firewall-admin session of the operator, activated now. */
  async function liveSession(): Promise<BoundSession> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 7200,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return BoundSession.activate(s.operator.client, req.id);
  }

  const view = (id: string) => s.admin.call<SessionView>('GET', `/v1/sessions/${id}`);

  const introspect = async (token: string) => {
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/introspect',
      headers: {
        authorization: `Bearer ${await pep.client.bearerToken()}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: new URLSearchParams({ token }).toString(),
    });
    return response.json() as { active: boolean };
  };

  const decision = (session: string, overrides: Partial<DecisionRecord> = {}): DecisionRecord => ({
    at: b.clock.now(),
    allow: true,
    code: 'ok',
    action: 'firewall:rules.write',
    resource: 'firewall/edge-1',
    session,
    ...overrides,
  });
  // As a real PEP reports: signed by its own key (only such reports count as activity, see
  // test/security/forged-decision-records.test.ts).
  const report = (decisions: DecisionRecord[]) =>
    reportOver(pepLink(b, pep), 'https://fw.example', decisions);

  const auditOf = async (sessionId: string) =>
    (await s.admin.call<AuditRecordList>('GET', `/v1/audit?session=${sessionId}&limit=1000`)).records;

  it('ends a session idle for its timeout: refresh refused, introspection inactive, session_ended idle, audited', async () => {
    const session = await liveSession();
    const activatedAt = b.clock.now();
    const { refreshToken, accessToken } = session.tokens;
    expect(await view(session.info.id)).toMatchObject({
      state: 'active',
      idle_timeout: 600,
      last_activity_at: new Date(activatedAt).toISOString(),
    });

    b.clock.advance(10 * MINUTE - 1);
    expect(await endIdleSessions(b.ctx)).toBe(0);
    expect((await introspect(accessToken)).active).toBe(true);

    b.clock.advance(1);
    // Idle from this instant: introspection says so before the sweeper has written anything.
    expect((await introspect(accessToken)).active).toBe(false);
    expect((await introspect(refreshToken)).active).toBe(false);
    expect(await endIdleSessions(b.ctx)).toBe(1);
    expect(await endIdleSessions(b.ctx)).toBe(0);

    expect(await view(session.info.id)).toMatchObject({
      state: 'ended',
      end_reason: 'idle',
      ended_at: new Date(b.clock.now()).toISOString(),
    });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
    expect((await introspect(accessToken)).active).toBe(false);

    const log = await readRevocationLog(b.ctx.store, b.tenant.id, 0, 100);
    const ended = log.filter((e) => e.event.type === 'session_ended');
    expect(ended.map((e) => e.event.data)).toEqual([
      {
        sid: session.info.id,
        reason: 'idle',
        session_exp: Math.floor(session.info.hardExpiresAt / 1000),
      },
    ]);
    const endRecord = (await auditOf(session.info.id)).find((r) => r.action === 'session.ended');
    expect(endRecord).toMatchObject({
      actor: 'system',
      details: {
        reason: 'idle',
        idle_timeout: 600,
        last_activity_at: new Date(activatedAt).toISOString(),
        detected_by: 'sweep',
      },
    });
    expect((await s.admin.call<{ ok: boolean }>('GET', '/v1/audit/verify')).ok).toBe(true);
  });

  it('a refresh is activity: it postpones the timeout', async () => {
    const session = await liveSession();
    b.clock.advance(8 * MINUTE);
    await session.refresh();
    expect(await view(session.info.id)).toMatchObject({
      last_activity_at: new Date(b.clock.now()).toISOString(),
    });
    b.clock.advance(10 * MINUTE - 1);
    expect(await endIdleSessions(b.ctx)).toBe(0);
    expect((await view(session.info.id)).state).toBe('active');
    b.clock.advance(1);
    expect(await endIdleSessions(b.ctx)).toBe(1);
    expect(await view(session.info.id)).toMatchObject({ state: 'ended', end_reason: 'idle' });
  });

  it('a refresh that arrives after the timeout, before the sweeper, ends the session as idle', async () => {
    const session = await liveSession();
    b.clock.advance(11 * MINUTE);
    const refused = await refusal(session.refresh());
    expect(refused.code).toBe('invalid_grant');
    expect(refused.detail).toMatch(/idle/);
    expect(await view(session.info.id)).toMatchObject({ state: 'ended', end_reason: 'idle' });
    expect(await endIdleSessions(b.ctx)).toBe(0);
    const endRecord = (await auditOf(session.info.id)).find((r) => r.action === 'session.ended');
    expect(endRecord?.details).toMatchObject({ reason: 'idle', idle_timeout: 600, detected_by: 'refresh' });
  });

  it('an allowed decision reported by a PEP is activity; a denial, a future date and another tenant are not', async () => {
    const session = await liveSession();
    const activatedAt = b.clock.now();
    b.clock.advance(5 * MINUTE);
    // Denied decisions do not keep a session alive.
    await report([decision(session.info.id, { allow: false, code: 'insufficient_scope' })]);
    expect((await view(session.info.id)).last_activity_at).toBe(new Date(activatedAt).toISOString());
    // The latest allowed decision counts, as the PEP dated it.
    const decidedAt = b.clock.now() - 2000;
    await report([
      decision(session.info.id, { at: decidedAt - 60_000 }),
      decision(session.info.id, { at: decidedAt }),
    ]);
    expect((await view(session.info.id)).last_activity_at).toBe(new Date(decidedAt).toISOString());
    // A decision dated in the future counts as now, never later; an older report moves nothing back.
    await report([decision(session.info.id, { at: b.clock.now() + 3600_000 })]);
    expect((await view(session.info.id)).last_activity_at).toBe(new Date(b.clock.now()).toISOString());
    const lastActivity = b.clock.now();
    await report([decision(session.info.id, { at: decidedAt })]);
    expect((await view(session.info.id)).last_activity_at).toBe(new Date(lastActivity).toISOString());

    b.clock.advance(10 * MINUTE - 1);
    expect(await endIdleSessions(b.ctx)).toBe(0);
    b.clock.advance(1);
    expect(await endIdleSessions(b.ctx)).toBe(1);
    expect(await view(session.info.id)).toMatchObject({ state: 'ended', end_reason: 'idle' });
  });

  it('a PEP of another tenant cannot keep a session alive', async () => {
    const session = await liveSession();
    const other = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const foreignPep = await other.principal('globex-pep', 'service', ['pep']);
    b.clock.advance(9 * MINUTE);
    await other.client(other.adminIdentity).call('PUT', '/v1/peps/globex-pep/audiences', {
      audiences: ['https://fw.example'],
    });
    // Signed by its own key, for an audience it enforces: still not a session of its tenant.
    await reportOver(pepLink(b, foreignPep), 'https://fw.example', [decision(session.info.id)]);
    b.clock.advance(1 * MINUTE);
    expect(await endIdleSessions(b.ctx)).toBe(1);
    expect(await view(session.info.id)).toMatchObject({ state: 'ended', end_reason: 'idle' });
  });

  it('leaves sessions without an idle timeout alone, and sessions keep the timeout they started with', async () => {
    const timed = await liveSession();
    // A later change of the privilege is not applied to the running session...
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { idle_timeout: null });
    const untimed = await liveSession();
    expect((await view(untimed.info.id)).idle_timeout).toBeNull();
    expect((await view(timed.info.id)).idle_timeout).toBe(600);

    b.clock.advance(60 * MINUTE);
    expect(await endIdleSessions(b.ctx)).toBe(1);
    expect(await view(timed.info.id)).toMatchObject({ state: 'ended', end_reason: 'idle' });
    expect((await view(untimed.info.id)).state).toBe('active');
    // ...and a session past its hard expiry ends as expired, not idle.
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { idle_timeout: 600 });
    const late = await liveSession();
    b.clock.advance(7200_000);
    expect(await endIdleSessions(b.ctx)).toBe(0);
    expect(await endExpiredSessions(b.ctx)).toBe(2);
    expect(await view(late.info.id)).toMatchObject({ state: 'ended', end_reason: 'expired' });
  });

  it('validates idle_timeout: at least 60 s, at most max_duration, null clears it', async () => {
    const tooShort = await refusal(s.admin.call('PATCH', '/v1/privileges/deploy', { idle_timeout: 59 }));
    expect(tooShort.code).toBe('invalid_request');
    const tooLong = await refusal(s.admin.call('PATCH', '/v1/privileges/deploy', { idle_timeout: 3601 }));
    expect(tooLong.code).toBe('invalid_request');
    expect(tooLong.detail).toMatch(/idle_timeout/);
    const shorterMax = await refusal(
      s.admin.call('PATCH', '/v1/privileges/firewall-admin', { max_duration: 300 }),
    );
    expect(shorterMax.code).toBe('invalid_request');
    const created = await s.admin.call<{ idle_timeout: number | null }>('POST', '/v1/privileges', {
      name: 'db-read',
      actions: ['db:read'],
      resources: ['db/main'],
      audiences: ['https://db.example'],
      idle_timeout: 900,
    });
    expect(created.idle_timeout).toBe(900);
    const cleared = await s.admin.call<{ idle_timeout: number | null }>('PATCH', '/v1/privileges/db-read', {
      idle_timeout: null,
    });
    expect(cleared.idle_timeout).toBeNull();
    expect(
      (await s.admin.call<{ idle_timeout: number | null }>('GET', '/v1/privileges/deploy')).idle_timeout,
    ).toBeNull();
  });
});
