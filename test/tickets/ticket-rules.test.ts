import type { RequestView } from '@tether-broker/protocol/api';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { readRevocationLog } from '../../packages/broker/src/revocation/log.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { type Actor, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { SCENARIO_POLICIES, type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';
import {
  addWebhook,
  type Delivery,
  deliver,
  githubIssue,
  jiraIssue,
  OLIVIA_JIRA,
  type RegisteredWebhook,
} from './deliveries.js';

const MINUTE = 60_000;
const REF = 'acme/infra#12';

describeEachStore('ticket rules and task end', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  let gh: RegisteredWebhook;
  let jira: RegisteredWebhook;
  let pep: Actor;
  let t0: number;
  afterAll(() => fixture.cleanup());
  afterEach(() => b.close());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
    pep = await b.principal('edge-pep', 'service', ['pep']);
    gh = await addWebhook(s.admin, 'github', 'gh-infra');
    jira = await addWebhook(s.admin, 'jira', 'jira-net');
    await s.admin.call('PATCH', '/v1/principals/olivia', {
      attributes: { github: 'Olivia-GH', jira: OLIVIA_JIRA },
    });
    const privilege = (name: string, ticket: Record<string, unknown>) =>
      s.admin.call('POST', '/v1/privileges', {
        name,
        actions: ['firewall:rules.write'],
        resources: ['firewall/edge-*'],
        audiences: ['https://fw.example'],
        max_duration: 7200,
        approval: { approvals: 1, approvers: { groups: ['approvers'] } },
        ticket,
      });
    await privilege('edge-fw', { required: true, source: 'gh-infra', open: true, assigned: true });
    await privilege('net-change', { required: true, source: 'jira-net', assigned: true });
    await s.admin.call('PUT', '/v1/policies', {
      policies: {
        ...SCENARIO_POLICIES,
        'operators-request-tickets': `permit(principal in Tether::Group::"operators", action == Tether::Action::"request", resource) when { resource.name == "edge-fw" || resource.name == "net-change" };`,
      },
    });
    t0 = b.clock.now() - 10 * MINUTE;
  });

  async function send(webhook: RegisteredWebhook, d: Delivery) {
    const response = await deliver(b, webhook, d);
    expect(response.statusCode, response.body).toBe(200);
    return response.json() as { outcome: string; ended_sessions?: string[]; cancelled_requests?: string[] };
  }

  const ask = (privilege: string, ticket: string, actor: Actor = s.operator) =>
    actor.client.call<RequestView>('POST', '/v1/requests', {
      privilege,
      ticket,
      justification: 'payments rollout',
      duration: 3600,
    });

  async function liveSession(privilege: string, ticket: string): Promise<BoundSession> {
    const request = await ask(privilege, ticket);
    await s.approvers[0]!.client.call('POST', `/v1/requests/${request.id}/approve`);
    return BoundSession.activate(s.operator.client, request.id);
  }

  async function introspect(token: string) {
    const response = await b.app.inject({
      method: 'POST',
      url: '/oauth/introspect',
      headers: {
        authorization: `Bearer ${await pep.client.bearerToken()}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: new URLSearchParams({ token }).toString(),
    });
    return response.json() as Record<string, unknown>;
  }

  const requestCount = async () =>
    Number(
      (
        await b.ctx.store.db
          .selectFrom('access_requests')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('refuses a request against an unknown, foreign, closed or unassigned ticket, each with its code', async () => {
    const refused = async (privilege: string, ticket: string) => {
      const before = await requestCount();
      const err = await refusal(ask(privilege, ticket));
      expect(await requestCount()).toBe(before);
      return { code: err.code, status: err.status };
    };
    expect(await refused('edge-fw', 'acme/infra#99')).toEqual({ code: 'ticket_not_found', status: 422 });
    // Known to the register, but from Jira, not from the source the rule names.
    await send(jira, jiraIssue(jira.secret, { event: 'jira:issue_created', at: t0, category: 'new' }));
    expect(await refused('edge-fw', 'NET-7')).toEqual({ code: 'ticket_not_found', status: 422 });
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0, assignees: ['bob'] }));
    expect(await refused('edge-fw', REF)).toEqual({ code: 'ticket_not_assigned', status: 403 });
    // Olivia is matched through her `github` attribute, whatever the case GitHub uses.
    await send(
      gh,
      githubIssue(gh.secret, { action: 'assigned', at: t0 + MINUTE, assignees: ['bob', 'olivia-gh'] }),
    );
    expect((await ask('edge-fw', REF)).state).toBe('pending');
    await send(
      gh,
      githubIssue(gh.secret, { action: 'closed', at: t0 + 2 * MINUTE, assignees: ['olivia-gh'] }),
    );
    expect(await refused('edge-fw', REF)).toEqual({ code: 'ticket_closed', status: 409 });
    // A closed ticket is refused under any privilege, even one that verifies nothing.
    await send(
      jira,
      jiraIssue(jira.secret, { event: 'jira:issue_updated', at: t0 + MINUTE, category: 'done' }),
    );
    expect(await refused('firewall-admin', 'NET-7')).toEqual({ code: 'ticket_closed', status: 409 });
    // Jira: matched by account id.
    await send(
      jira,
      jiraIssue(jira.secret, {
        event: 'jira:issue_created',
        at: t0,
        category: 'new',
        key: 'NET-8',
        assignee: '5b10ac8d82e05b22cc7d4ef5',
      }),
    );
    expect(await refused('net-change', 'NET-8')).toEqual({ code: 'ticket_not_assigned', status: 403 });
    await send(
      jira,
      jiraIssue(jira.secret, {
        event: 'jira:issue_updated',
        at: t0 + MINUTE,
        category: 'indeterminate',
        key: 'NET-8',
      }),
    );
    expect((await ask('net-change', 'NET-8')).state).toBe('pending');

    const audit = await s.admin.call<{
      records: { action: string; outcome: string; details: { code?: string } }[];
    }>('GET', '/v1/audit?limit=1000');
    const refusals = audit.records.filter((r) => r.action === 'request.create' && r.outcome === 'refused');
    expect(refusals.map((r) => r.details.code)).toEqual([
      'ticket_not_found',
      'ticket_not_found',
      'ticket_not_assigned',
      'ticket_closed',
      'ticket_closed',
      'ticket_not_assigned',
    ]);
  });

  it('gives Cedar the ticket as context.ticket_info', async () => {
    const guarded = `permit(principal, action == Tether::Action::"auto_approve", resource) when { resource.name == "edge-fw" && context has ticket_info && context.ticket_info.state == "open" && context.ticket_info.source == "gh-infra" && context.ticket_info.assigned_to_requester && context.ticket_info.assignees.contains("olivia-gh") };`;
    const unguarded = `permit(principal, action == Tether::Action::"auto_approve", resource) when { context.ticket_info.state == "open" };`;
    expect((await refusal(s.admin.call('PUT', '/v1/policies', { policies: { x: unguarded } }))).code).toBe(
      'policy_invalid',
    );
    const current = await s.admin.call<{ policies: Record<string, string> }>('GET', '/v1/policies');
    await s.admin.call('PUT', '/v1/policies', {
      policies: { ...current.policies, 'auto-assigned-tickets': guarded },
    });
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    expect((await ask('edge-fw', REF)).state).toBe('approved');
    // Bob cannot ask (not assigned); with Olivia unassigned but the rule relaxed, policy no longer auto-approves.
    await s.admin.call('PATCH', '/v1/privileges/edge-fw', { ticket: { required: true, source: 'gh-infra' } });
    await send(gh, githubIssue(gh.secret, { action: 'unassigned', at: t0 + MINUTE, assignees: [] }));
    expect((await ask('edge-fw', REF)).state).toBe('pending');
  });

  it('a GitHub close ends the bound session through the revocation log and cancels the requests that name the ticket', async () => {
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    const session = await liveSession('edge-fw', REF);
    expect((await introspect(session.tokens.accessToken)).active).toBe(true);
    const pending = await ask('edge-fw', REF);
    const approved = await ask('edge-fw', REF);
    await s.approvers[1]!.client.call('POST', `/v1/requests/${approved.id}/approve`);
    const elsewhere = await liveSession('firewall-admin', 'NET-3');
    const headBefore = (await readRevocationLog(b.ctx.store, b.tenant.id, 0, 1000)).length;

    const closed = await send(gh, githubIssue(gh.secret, { action: 'closed', at: t0 + MINUTE }));
    expect(closed).toMatchObject({
      outcome: 'applied',
      ended_sessions: [session.info.id],
      cancelled_requests: [pending.id],
    });

    expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
      state: 'ended',
      end_reason: 'ticket_closed',
      ended_by: gh.id,
    });
    const events = (await readRevocationLog(b.ctx.store, b.tenant.id, 0, 1000)).slice(headBefore);
    expect(events.map((e) => e.event)).toEqual([
      {
        type: 'session_ended',
        data: {
          sid: session.info.id,
          reason: 'ticket_closed',
          session_exp: Math.floor(session.info.hardExpiresAt / 1000),
        },
      },
    ]);
    expect(await introspect(session.tokens.accessToken)).toEqual({ active: false });
    expect(await introspect(session.tokens.refreshToken)).toEqual({ active: false });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
    // The other ticket's session is untouched.
    expect((await introspect(elsewhere.tokens.accessToken)).active).toBe(true);

    expect(await s.admin.call('GET', `/v1/requests/${pending.id}`)).toMatchObject({ state: 'cancelled' });
    // Approved but not yet started: it can no longer be.
    expect((await refusal(BoundSession.activate(s.operator.client, approved.id))).code).toBe('ticket_closed');
    expect((await refusal(ask('edge-fw', REF))).code).toBe('ticket_closed');

    const audit = await s.admin.call<{
      records: { action: string; actor: string; target: string; details: Record<string, unknown> }[];
    }>('GET', `/v1/audit?ticket=${encodeURIComponent(REF)}&limit=1000`);
    const trigger = { source: 'gh-infra', kind: 'github', webhook: gh.id, event: 'issues.closed' };
    const byAction = (action: string) => audit.records.filter((r) => r.action === action);
    expect(byAction('ticket.closed')).toEqual([
      expect.objectContaining({ actor: gh.id, details: expect.objectContaining(trigger) }),
    ]);
    expect(byAction('session.ended')).toEqual([
      expect.objectContaining({
        target: session.info.id,
        actor: gh.id,
        details: expect.objectContaining({ reason: 'ticket_closed', ...trigger }),
      }),
    ]);
    expect(byAction('request.cancelled')).toEqual([
      expect.objectContaining({
        target: pending.id,
        details: expect.objectContaining({ reason: 'ticket_closed', ...trigger }),
      }),
    ]);
    const deliveryId = byAction('ticket.closed')[0]?.details.delivery_id;
    expect(byAction('session.ended')[0]?.details.delivery_id).toBe(deliveryId);
    expect(await s.admin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
  });

  it('a Jira issue moved to done ends the bound session', async () => {
    await send(jira, jiraIssue(jira.secret, { event: 'jira:issue_created', at: t0, category: 'new' }));
    const session = await liveSession('net-change', 'NET-7');
    // To Do -> In Progress: still open, the session goes on.
    const moved = await send(
      jira,
      jiraIssue(jira.secret, { event: 'jira:issue_updated', at: t0 + MINUTE, category: 'indeterminate' }),
    );
    expect(moved.outcome).toBe('unchanged');
    expect((await introspect(session.tokens.accessToken)).active).toBe(true);
    const done = await send(
      jira,
      jiraIssue(jira.secret, { event: 'jira:issue_updated', at: t0 + 2 * MINUTE, category: 'done' }),
    );
    expect(done.ended_sessions).toEqual([session.info.id]);
    expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
      end_reason: 'ticket_closed',
    });
    expect(await introspect(session.tokens.accessToken)).toEqual({ active: false });
  });

  it('a bad signature or a replayed delivery ends nothing', async () => {
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0, deliveryId: 'delivery-1' }));
    const session = await liveSession('edge-fw', REF);
    const forged = githubIssue('guessed-secret', { action: 'closed', at: t0 + MINUTE });
    expect((await deliver(b, gh, forged)).statusCode).toBe(401);
    const replayed = githubIssue(gh.secret, { action: 'closed', at: t0 + MINUTE, deliveryId: 'delivery-1' });
    expect((await send(gh, replayed)).outcome).toBe('duplicate');
    expect((await introspect(session.tokens.accessToken)).active).toBe(true);
    await session.refresh();
    expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({ state: 'active' });
  });

  it('closes a ticket by hand for systems without webhooks (POST /v1/tickets/:ref/close)', async () => {
    const session = await liveSession('firewall-admin', 'NET-9');
    const pending = await ask('firewall-admin', 'NET-9');
    expect((await refusal(s.operator.client.call('POST', '/v1/tickets/NET-9/close', {}))).code).toBe(
      'forbidden',
    );
    const closed = await s.admin.call<{
      ticket: Record<string, unknown>;
      ended_sessions: string[];
      cancelled_requests: string[];
    }>('POST', '/v1/tickets/NET-9/close', { note: 'change window over' });
    expect(closed).toMatchObject({
      ticket: { ref: 'NET-9', source: 'manual', kind: 'manual', state: 'closed' },
      ended_sessions: [session.info.id],
      cancelled_requests: [pending.id],
    });
    expect(await s.admin.call('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
      end_reason: 'ticket_closed',
      ended_by: b.admin.principal.id,
    });
    expect((await refusal(session.refresh())).code).toBe('invalid_grant');
    const again = await refusal(s.admin.call('POST', '/v1/tickets/NET-9/close'));
    expect([again.status, again.code]).toEqual([409, 'ticket_closed']);
    expect((await refusal(ask('firewall-admin', 'NET-9'))).code).toBe('ticket_closed');
    // A webhook ticket closed by hand: a later reopening in the ticket system still wins.
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    await s.admin.call('POST', `/v1/tickets/${encodeURIComponent(REF)}/close`);
    expect((await send(gh, githubIssue(gh.secret, { action: 'assigned', at: t0 + MINUTE }))).outcome).toBe(
      'stale',
    );
    await send(gh, githubIssue(gh.secret, { action: 'reopened', at: b.clock.now() + 1000 }));
    expect((await ask('edge-fw', REF)).state).toBe('pending');
  });
});
