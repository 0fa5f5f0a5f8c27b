import type { AuditRecordList, RequestList, RequestView, SessionView } from '@tether-broker/protocol/api';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { endExpiredSessions } from '../../packages/broker/src/core/end-session.js';
import { expireOverdueRequests } from '../../packages/broker/src/core/expire-requests.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { SCENARIO_POLICIES, type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const MINUTE = 60_000;

describeEachStore('session extension', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });
  afterEach(() => b.close());

  /** An approved firewall-admin session of the operator (max_duration 2 h), activated now. */
  async function liveSession(duration = 1800): Promise<BoundSession> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration,
    });
    await s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    return BoundSession.activate(s.operator.client, req.id);
  }

  const extend = (session: BoundSession, by: number, client = s.operator.client) =>
    client.call<RequestView>('POST', `/v1/sessions/${session.info.id}/extend`, {
      by,
      justification: 'the change window moved',
    });
  const view = (id: string) => s.admin.call<SessionView>('GET', `/v1/sessions/${id}`);
  const iso = (ms: number) => new Date(ms).toISOString();
  const auditOf = async (query: string) =>
    (await s.admin.call<AuditRecordList>('GET', `/v1/audit?${query}&limit=1000`)).records;

  it('an approved extension moves the hard expiry; the session keeps its id, key and refresh chain', async () => {
    const session = await liveSession(1800);
    const activatedAt = b.clock.now();
    const oldExpiry = activatedAt + 1800_000;
    b.clock.advance(5 * MINUTE);

    const asked = await extend(session, 1800);
    expect(asked).toMatchObject({
      kind: 'extension',
      session: session.info.id,
      principal: s.operator.caller.principal.id,
      duration: 1800,
      state: 'pending',
      approvals_required: 1,
    });
    const listed = await s.admin.call<RequestList>('GET', '/v1/requests?state=pending');
    expect(listed.requests.map((r) => [r.id, r.kind, r.session])).toEqual([
      [asked.id, 'extension', session.info.id],
    ]);
    // Nothing moves before approval.
    expect((await view(session.info.id)).hard_expires_at).toBe(iso(oldExpiry));

    const approver = s.approvers[1]!;
    const approved = await approver.client.call<RequestView>('POST', `/v1/requests/${asked.id}/approve`);
    expect(approved).toMatchObject({ state: 'approved', activation_expires_at: null });
    const newExpiry = oldExpiry + 1800_000;
    expect(await view(session.info.id)).toMatchObject({
      id: session.info.id,
      state: 'active',
      hard_expires_at: iso(newExpiry),
      cnf: { jkt: session.key.jkt },
    });
    // Nothing to activate: an extension is applied, never turned into a second session.
    expect((await refusal(BoundSession.activate(s.operator.client, asked.id))).code).toBe('invalid_request');

    // The same key and refresh chain go on, now with the new session_exp.
    await session.refresh();
    const claims = decodeJwt(session.tokens.accessToken);
    expect(claims.session_exp).toBe(Math.floor(newExpiry / 1000));
    expect((claims.cnf as { jkt: string }).jkt).toBe(session.key.jkt);
    expect(claims.sid).toBe(session.info.id);
    // The SDK learns the new hard expiry from the refreshed token.
    expect(session.info.hardExpiresAt).toBe(newExpiry);
    // Past the old hard expiry: neither the sweeper nor a refresh ends it.
    b.clock.advance(13 * MINUTE);
    await session.refresh();
    b.clock.advance(13 * MINUTE);
    expect(await endExpiredSessions(b.ctx)).toBe(0);
    await session.refresh();
    expect(decodeJwt(session.tokens.accessToken).exp).toBeGreaterThan(Math.floor(oldExpiry / 1000));
    expect((await view(session.info.id)).state).toBe('active');
    // The status-list entry stays reserved until the new hard expiry (plus its margin).
    const slot = await b.ctx.store.db
      .selectFrom('status_list_slots')
      .select('reusable_at')
      .where('session_id', '=', session.info.id)
      .executeTakeFirstOrThrow();
    expect(Number(slot.reusable_at)).toBe(newExpiry + 5 * MINUTE);

    const extended = (await auditOf(`session=${session.info.id}`)).find(
      (r) => r.action === 'session.extended',
    );
    expect(extended).toMatchObject({
      actor: approver.caller.principal.id,
      outcome: 'success',
      target: session.info.id,
      request: asked.id,
      details: {
        extension_request: asked.id,
        extension_s: 1800,
        previous_hard_expires_at: iso(oldExpiry),
        hard_expires_at: iso(newExpiry),
        total_duration_s: 3600,
        approvers: [approver.caller.principal.id],
      },
    });
    const created = (await auditOf(`request=${asked.id}`)).find((r) => r.action === 'request.created');
    expect(created?.details).toMatchObject({
      kind: 'extension',
      session: session.info.id,
      extension_s: 1800,
    });
    b.clock.advance(35 * MINUTE);
    expect(await endExpiredSessions(b.ctx)).toBe(1);
    expect((await view(session.info.id)).end_reason).toBe('expired');
  });

  it('lifts the refresh token idle cap that the old hard expiry set', async () => {
    // A 10-minute session: its refresh token's idle expiry is capped at the hard expiry.
    const session = await liveSession(600);
    b.clock.advance(2 * MINUTE);
    const asked = await extend(session, 1800);
    await s.approvers[0]!.client.call('POST', `/v1/requests/${asked.id}/approve`);
    // Past the old hard expiry, and so past the refresh token's old idle expiry: still refreshes.
    b.clock.advance(10 * MINUTE);
    await session.refresh();
    expect((await view(session.info.id)).state).toBe('active');
  });

  it('refuses self-approval: the holder cannot approve their own extension, even as an approver', async () => {
    const session = await liveSession();
    const asked = await extend(session, 600);
    const self = await refusal(s.operator.client.call('POST', `/v1/requests/${asked.id}/approve`));
    expect(self.code).toBe('self_approval_forbidden');
    const refused = (await auditOf(`request=${asked.id}`)).find((r) => r.action === 'request.review.approve');
    expect(refused?.outcome).toBe('refused');
    expect((await view(session.info.id)).hard_expires_at).toBe(iso(b.clock.now() + 1800_000));
  });

  it("caps the session's whole length at the privilege's max_duration, across extensions", async () => {
    const session = await liveSession(1800);
    const beyond = await refusal(extend(session, 5460));
    expect(beyond.code).toBe('duration_exceeds_max');
    expect(beyond.body).toMatchObject({ max_duration: 7200, max_extension: 5400 });
    const first = await extend(session, 3600);
    await s.approvers[0]!.client.call('POST', `/v1/requests/${first.id}/approve`);
    const again = await refusal(extend(session, 1860));
    expect(again.code).toBe('duration_exceeds_max');
    expect(again.body).toMatchObject({ max_extension: 1800 });
    const last = await extend(session, 1800);
    await s.approvers[0]!.client.call('POST', `/v1/requests/${last.id}/approve`);
    expect((await view(session.info.id)).hard_expires_at).toBe(iso(b.clock.now() + 7200_000));
    expect((await refusal(extend(session, 60))).body).toMatchObject({ max_extension: 0 });
  });

  it('refuses an approval once max_duration was lowered below the extended length, and cancels it', async () => {
    const session = await liveSession(1800);
    const asked = await extend(session, 3600);
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { max_duration: 3600 });
    const late = await refusal(s.approvers[0]!.client.call('POST', `/v1/requests/${asked.id}/approve`));
    expect(late.code).toBe('duration_exceeds_max');
    expect((await s.admin.call<RequestView>('GET', `/v1/requests/${asked.id}`)).state).toBe('cancelled');
    expect((await view(session.info.id)).hard_expires_at).toBe(iso(b.clock.now() + 1800_000));
  });

  it('a denial leaves the hard expiry as it was', async () => {
    const session = await liveSession();
    const before = (await view(session.info.id)).hard_expires_at;
    const asked = await extend(session, 1800);
    const denied = await s.approvers[0]!.client.call<RequestView>('POST', `/v1/requests/${asked.id}/deny`, {
      comment: 'finish within the window',
    });
    expect(denied.state).toBe('denied');
    expect((await view(session.info.id)).hard_expires_at).toBe(before);
    expect((await auditOf(`session=${session.info.id}`)).map((r) => r.action)).not.toContain(
      'session.extended',
    );
    await session.refresh();
    expect(decodeJwt(session.tokens.accessToken).session_exp).toBe(Math.floor(Date.parse(before) / 1000));
  });

  it('refuses to approve an extension of a session that ended meanwhile, and cancels the request', async () => {
    const session = await liveSession();
    const asked = await extend(session, 1800);
    await session.end('completed');
    const late = await refusal(s.approvers[0]!.client.call('POST', `/v1/requests/${asked.id}/approve`));
    expect(late.code).toBe('session_not_live');
    const request = await s.admin.call<RequestView>('GET', `/v1/requests/${asked.id}`);
    expect(request).toMatchObject({ state: 'cancelled', resolved_by: 'system' });
    const cancelled = (await auditOf(`request=${asked.id}`)).find((r) => r.action === 'request.cancelled');
    expect(cancelled?.details).toMatchObject({
      reason: 'session_not_live',
      triggered_by: s.approvers[0]!.caller.principal.id,
    });
    expect(await view(session.info.id)).toMatchObject({ state: 'ended', end_reason: 'completed' });
    // A session that has ended cannot be extended at all.
    expect((await refusal(extend(session, 600))).code).toBe('session_not_live');
  });

  it('an extension request expires like any request; then a new one may be asked', async () => {
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', { max_duration: 14_400 });
    const session = await liveSession(10_800);
    const asked = await extend(session, 1800);
    b.clock.advance(b.ctx.config.requestTtlSeconds * 1000);
    const late = await refusal(s.approvers[0]!.client.call('POST', `/v1/requests/${asked.id}/approve`));
    expect(late.code).toBe('request_expired');
    expect((await s.admin.call<RequestView>('GET', `/v1/requests/${asked.id}`)).state).toBe('expired');
    expect((await view(session.info.id)).hard_expires_at).toBe(iso(session.info.hardExpiresAt));
    // An overdue one the sweeper has not reached yet does not block a new ask either.
    const second = await extend(session, 600);
    b.clock.advance(b.ctx.config.requestTtlSeconds * 1000);
    const third = await extend(session, 600);
    expect((await s.admin.call<RequestView>('GET', `/v1/requests/${second.id}`)).state).toBe('expired');
    expect(await expireOverdueRequests(b.ctx)).toBe(0);
    expect(third.state).toBe('pending');
  });

  it('allows one pending extension per session', async () => {
    const session = await liveSession();
    const first = await extend(session, 600);
    const second = await refusal(extend(session, 900));
    expect(second.status).toBe(409);
    expect(second.code).toBe('extension_pending');
    expect(second.body).toMatchObject({ request: first.id });
    await s.operator.client.call('POST', `/v1/requests/${first.id}/cancel`, { reason: 'wrong duration' });
    expect((await extend(session, 900)).state).toBe('pending');
  });

  it('only the holder may ask; who may not see the session sees no such session', async () => {
    const session = await liveSession();
    // An approver may not read another's session: acting on it must not reveal it exists.
    expect((await refusal(extend(session, 600, s.approvers[0]!.client))).code).toBe('not_found');
    expect((await refusal(extend(session, 600, s.admin))).code).toBe('forbidden');
    const globex = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const stranger = await globex.principal('mallory');
    expect((await refusal(extend(session, 600, stranger.client))).code).toBe('not_found');
    expect((await refusal(extend(session, 600, s.outsider.client))).code).toBe('not_found');
    const none = await refusal(
      s.operator.client.call('POST', '/v1/sessions/ses_00000000000000000000000000/extend', {
        by: 600,
        justification: 'x',
      }),
    );
    expect(none.code).toBe('not_found');
    const requests = await s.admin.call<RequestList>('GET', '/v1/requests?state=pending');
    expect(requests.requests).toEqual([]);
  });

  it('policy decides with is_extension: auto-approval applies at once, a forbid refuses and is audited', async () => {
    await s.admin.call('PUT', '/v1/policies', {
      policies: {
        ...SCENARIO_POLICIES,
        'pipeline-extend-briefly': `forbid(principal, action == Tether::Action::"request", resource) when { context.is_extension && context.extension_seconds > 900 };`,
      },
    });
    const req = await s.pipeline.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-9',
      justification: 'release',
      duration: 600,
    });
    expect(req.state).toBe('approved');
    const session = await BoundSession.activate(s.pipeline.client, req.id);
    // Total 1200 s: within pipeline-auto-deploy's 1800 s, so approved by policy and applied at once.
    const auto = await extend(session, 600, s.pipeline.client);
    expect(auto).toMatchObject({ kind: 'extension', state: 'approved', resolved_by: null });
    expect((await view(session.info.id)).hard_expires_at).toBe(iso(session.info.hardExpiresAt + 600_000));
    const applied = (await auditOf(`session=${session.info.id}`)).find(
      (r) => r.action === 'session.extended',
    );
    expect(applied).toMatchObject({ actor: 'policy', details: { approvers: [], auto_approved: true } });
    // Total 2100 s: past the auto-approval limit, so it waits for a reviewer.
    const reviewed = await extend(session, 900, s.pipeline.client);
    expect(reviewed.state).toBe('pending');
    await s.pipeline.client.call('POST', `/v1/requests/${reviewed.id}/cancel`);
    // More than 900 s at once: forbidden by policy, and the attempt is recorded.
    const forbidden = await refusal(extend(session, 960, s.pipeline.client));
    expect(forbidden.code).toBe('not_eligible');
    expect(forbidden.body).toMatchObject({ policies: ['pipeline-extend-briefly'] });
    const attempt = (await auditOf(`session=${session.info.id}`)).find((r) => r.action === 'session.extend');
    expect(attempt).toMatchObject({ outcome: 'refused', details: { extension_s: 960 } });
    expect((await s.admin.call<{ ok: boolean }>('GET', '/v1/audit/verify')).ok).toBe(true);
  });

  it('refuses malformed asks', async () => {
    const session = await liveSession();
    for (const body of [{ by: 59, justification: 'x' }, { by: 600 }, { by: 600, justification: '' }]) {
      const bad = await refusal(
        s.operator.client.call('POST', `/v1/sessions/${session.info.id}/extend`, body),
      );
      expect(bad.code, JSON.stringify(body)).toBe('invalid_request');
    }
  });
});
