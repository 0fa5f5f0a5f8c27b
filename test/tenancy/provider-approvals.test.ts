import type {
  AuditRecordList,
  CustomerView,
  RelationshipView,
  RequestView,
  SeatView,
  SessionView,
} from '@tether-broker/protocol/api';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BoundSession, type BrokerClient, type IdentityFile } from '../../packages/client/src/index.js';
import { type Actor, newKeyPair, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { eventually } from '../support/eventually.js';
import { refusal } from '../support/refusal.js';
import { describeEachStore } from '../support/stores.js';

const AUDIENCE = 'https://fw.example';
const DAY = 24 * 3600_000;
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Issue 14, "who approves: customer approvers, provider approvers, or both — N of M per side":
 * a relationship asks approvals of both sides. The customer's approvals never count for the
 * provider's side and the other way round; only members of the provider's approver groups
 * approve on its side, each through their own seat, never the requester; a denial from either
 * side is final. A session made under the relationship stands on it in continuous evaluation:
 * the customer's `continue` policies see `context.relationship`, and an operator who leaves the
 * groups the relationship names loses the session at the next evaluation.
 */
describeEachStore('provider-side approvals under a relationship (N of M per side)', (fixture) => {
  let b: TestBroker;
  let acmeAdmin: BrokerClient;
  let acmeId: string;
  let anna: BrokerClient;
  let operator: Actor;
  let lead: Actor;
  let otherLead: Actor;
  let outsider: Actor;
  let relationshipId: string;
  let seat: BrokerClient;

  const clientOf = (tenant: string, principal: string, key: unknown): BrokerClient =>
    b.client({ broker: PUBLIC_URL, tenant, principal, key } as IdentityFile);

  /** The actor's seat in acme, taken over the API, signing with the actor's own key. */
  async function seatOf(actor: Actor): Promise<BrokerClient> {
    const taken = await actor.client.call<SeatView>('POST', '/v1/seats', { customer: 'acme-corp' });
    return clientOf(acmeId, taken.principal.id, actor.identity.key);
  }

  const ask = (client: BrokerClient, justification: string) =>
    client.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'ACME-9',
      justification,
      duration: 1800,
    });

  afterAll(async () => {
    await b?.app.close();
    await fixture.cleanup();
  });

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open(), { tenantName: 'msp', tenantKind: 'provider' });
    const provider = b.client(b.adminIdentity);
    operator = await b.principal('pat');
    lead = await b.principal('lee');
    otherLead = await b.principal('lou');
    outsider = await b.principal('eve');
    await provider.call('POST', '/v1/groups', { name: 'operators' });
    await provider.call('POST', '/v1/groups', { name: 'leads' });
    await provider.call('PUT', '/v1/groups/operators/members/pat');
    await provider.call('PUT', '/v1/groups/leads/members/lee');
    await provider.call('PUT', '/v1/groups/leads/members/lou');

    const { privateJwk, publicJwk } = await newKeyPair();
    const made = await provider.call<CustomerView>('POST', '/v1/customers', {
      name: 'acme-corp',
      admin: { name: 'cathy', key: publicJwk },
    });
    acmeId = made.tenant.id;
    acmeAdmin = clientOf(acmeId, made.admin.id, privateJwk);
    const approverKeys = await newKeyPair();
    const approver = await acmeAdmin.call<{ id: string }>('POST', '/v1/principals', {
      name: 'anna',
      kind: 'human',
      keys: [approverKeys.publicJwk],
    });
    anna = clientOf(acmeId, approver.id, approverKeys.privateJwk);
    await acmeAdmin.call('POST', '/v1/groups', { name: 'approvers' });
    await acmeAdmin.call('PUT', '/v1/groups/approvers/members/anna');
    await acmeAdmin.call('POST', '/v1/privileges', {
      name: 'firewall-admin',
      actions: ['firewall:rules.write'],
      resources: ['firewall/edge-*'],
      audiences: [AUDIENCE],
      max_duration: 4 * 3600,
      approval: { approvals: 1, approvers: { groups: ['approvers'] } },
      ticket: { required: false },
    });
    await acmeAdmin.call('PUT', '/v1/policies', {
      policies: {
        'approvers-approve': `permit(principal in Tether::Group::"approvers", action == Tether::Action::"approve", resource) when { principal != context.requester };`,
      },
    });

    // Provider approvals need the approver groups; groups without a count approve nothing.
    const proposal = {
      customer: 'acme-corp',
      name: 'managed-firewall',
      groups: ['operators'],
      privileges: ['firewall-admin'],
      ends_at: iso(b.clock.now() + 30 * DAY),
    };
    for (const approvals of [
      { provider: 1 },
      { provider: 0, provider_approvers: ['leads'] },
      { customer: 0 },
    ])
      expect(
        (await refusal(provider.call('POST', '/v1/relationships', { ...proposal, approvals }))).code,
      ).toBe('invalid_relationship');
    expect(
      (
        await refusal(
          provider.call('POST', '/v1/relationships', {
            ...proposal,
            approvals: { provider: 1, provider_approvers: ['no-such-group'] },
          }),
        )
      ).code,
    ).toBe('not_found');
    const proposed = await provider.call<RelationshipView>('POST', '/v1/relationships', {
      ...proposal,
      approvals: { customer: 1, provider: 1, provider_approvers: ['leads'] },
    });
    relationshipId = proposed.id;
    // The customer sees, before accepting, who will approve on the provider's side.
    const seen = await acmeAdmin.call<RelationshipView>('GET', `/v1/relationships/${relationshipId}`);
    expect(seen.approvals).toEqual({ customer: 1, provider: 1, provider_approvers: ['leads'] });
    await acmeAdmin.call('POST', `/v1/relationships/${relationshipId}/accept`, {});
    seat = await seatOf(operator);
  }, 60_000);

  it("approves only when both sides have: the customer's approval alone leaves it pending", async () => {
    const asked = await ask(seat, 'open 443 for the release');
    const afterAnna = await anna.call<RequestView>('POST', `/v1/requests/${asked.id}/approve`, {});
    expect(afterAnna.state).toBe('pending');
    // The requester's own seat never approves, on either side.
    expect((await refusal(seat.call('POST', `/v1/requests/${asked.id}/approve`, {}))).code).toBe(
      'self_approval_forbidden',
    );
    // Someone of the provider outside the approver and operator groups has no seat at all.
    expect((await refusal(outsider.client.call('POST', '/v1/seats', { customer: 'acme-corp' }))).code).toBe(
      'not_covered_by_relationship',
    );
    const leadSeat = await seatOf(lead);
    // An approver's seat cannot ask: approving is all the relationship lets it do.
    expect((await refusal(ask(leadSeat, 'me too'))).code).toBe('not_covered_by_relationship');
    const approved = await leadSeat.call<RequestView>('POST', `/v1/requests/${asked.id}/approve`, {});
    expect(approved.state).toBe('approved');
    // The customer's chain records the provider's approval as such.
    const records = (await acmeAdmin.call<AuditRecordList>('GET', '/v1/audit?limit=1000')).records;
    const reviews = records.filter(
      (r) => r.action === 'request.review.approve' && r.outcome === 'success' && r.request === asked.id,
    );
    expect(reviews.map((r) => (r.details as { side?: string }).side ?? 'customer')).toEqual([
      'customer',
      'provider',
    ]);
  });

  it("never counts one side for the other: two provider approvals fill no customer's place", async () => {
    const provider = b.client(b.adminIdentity);
    await provider.call('PATCH', `/v1/relationships/${relationshipId}`, { approvals: { provider: 2 } });
    const asked = await ask(seat, 'second change');
    expect(
      (await (await seatOf(lead)).call<RequestView>('POST', `/v1/requests/${asked.id}/approve`, {})).state,
    ).toBe('pending');
    expect(
      (await (await seatOf(otherLead)).call<RequestView>('POST', `/v1/requests/${asked.id}/approve`, {}))
        .state,
    ).toBe('pending');
    expect((await anna.call<RequestView>('POST', `/v1/requests/${asked.id}/approve`, {})).state).toBe(
      'approved',
    );
    // Narrowing never lowers a side's count.
    expect(
      (
        await refusal(
          provider.call('PATCH', `/v1/relationships/${relationshipId}`, { approvals: { provider: 1 } }),
        )
      ).code,
    ).toBe('invalid_relationship');
  });

  it("a provider approver's denial is final; one who left the approver groups is refused", async () => {
    const denied = await ask(seat, 'third change');
    const leadSeat = await seatOf(lead);
    expect((await leadSeat.call<RequestView>('POST', `/v1/requests/${denied.id}/deny`, {})).state).toBe(
      'denied',
    );

    const asked = await ask(seat, 'fourth change');
    const louSeat = await seatOf(otherLead);
    await louSeat.call('GET', '/v1/me'); // holds a token from before
    const provider = b.client(b.adminIdentity);
    await provider.call('DELETE', '/v1/groups/leads/members/lou');
    // Out of every group the relationship names: the seat has no standing left at all.
    expect((await refusal(louSeat.call('POST', `/v1/requests/${asked.id}/approve`, {}))).code).toBe(
      'not_covered_by_relationship',
    );
    const view = await acmeAdmin.call<RequestView>('GET', `/v1/requests/${asked.id}`);
    expect(view.state).toBe('pending');
    expect(view.reviews ?? []).toEqual([]);
  });

  it('judges a session on its relationship: continue sees context.relationship; the operator leaving its groups, or disabled at home, ends it', async () => {
    const provider = b.client(b.adminIdentity);
    const activate = async (why: string) => {
      const asked = await ask(seat, why);
      await anna.call('POST', `/v1/requests/${asked.id}/approve`, {});
      await (await seatOf(lead)).call('POST', `/v1/requests/${asked.id}/approve`, {});
      await provider.call('PUT', '/v1/groups/leads/members/lou');
      await (await seatOf(otherLead)).call('POST', `/v1/requests/${asked.id}/approve`, {});
      return BoundSession.activate(seat, asked.id);
    };
    const stateOf = async (s: BoundSession) =>
      (await acmeAdmin.call<SessionView>('GET', `/v1/sessions/${s.info.id}`)).state;

    // A customer's continue policy that reads the relationship: only this provider's sessions end.
    const first = await activate('policy on the relationship');
    expect(await stateOf(first)).toBe('active');
    await acmeAdmin.call('PUT', '/v1/policies', {
      policies: {
        'approvers-approve': `permit(principal in Tether::Group::"approvers", action == Tether::Action::"approve", resource) when { principal != context.requester };`,
        'no-msp-sessions': `forbid(principal, action == Tether::Action::"continue", resource) when { context has relationship && context.relationship.provider == "msp" && context.relationship.provider_groups.contains("operators") };`,
      },
    });
    await b.ctx.reevaluation.idle();
    await eventually(async () => (await stateOf(first)) === 'ended', 5_000, 'the session ended by policy');
    const ended = await acmeAdmin.call<SessionView>('GET', `/v1/sessions/${first.info.id}`);
    expect(ended.end_reason).toBe('policy_changed');

    // The operator leaves the provider group the relationship names: the next evaluation ends it.
    await acmeAdmin.call('PUT', '/v1/policies', {
      policies: {
        'approvers-approve': `permit(principal in Tether::Group::"approvers", action == Tether::Action::"approve", resource) when { principal != context.requester };`,
      },
    });
    await b.ctx.reevaluation.idle();
    const second = await activate('standing on the relationship');
    expect(await stateOf(second)).toBe('active');
    // Nothing changes in the customer tenant: the change at home re-evaluates the seat's sessions.
    await provider.call('DELETE', '/v1/groups/operators/members/pat');
    await b.ctx.reevaluation.idle();
    await eventually(
      async () => (await stateOf(second)) === 'ended',
      5_000,
      'the session ended on its standing',
    );
    const lost = await acmeAdmin.call<SessionView>('GET', `/v1/sessions/${second.info.id}`);
    expect(lost.end_reason).toBe('relationship_ended');

    // Disabled at home: the seat's session ends in the customer's tenant.
    await provider.call('PUT', '/v1/groups/operators/members/pat');
    const third = await activate('the operator leaves the company');
    expect(await stateOf(third)).toBe('active');
    await provider.call('PATCH', `/v1/principals/${operator.caller.principal.id}`, { enabled: false });
    await b.ctx.reevaluation.idle();
    await eventually(
      async () => (await stateOf(third)) === 'ended',
      5_000,
      'the session ended with the operator',
    );
    expect((await acmeAdmin.call<SessionView>('GET', `/v1/sessions/${third.info.id}`)).end_reason).toBe(
      'principal_disabled',
    );
  });
});
