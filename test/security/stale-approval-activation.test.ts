import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import { BoundSession } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { SCENARIO_POLICIES, type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Issue 9 item 10 (last part), from the requester's side: a request approved under yesterday's
 * rule is activated after the rule changed under it — its approver disabled, taken out of the
 * approver group, no longer permitted by policy, or the privilege now needing more approvals.
 * Activation judges the approvals as the rule stands and refuses with
 * `approval_no_longer_valid`, starting nothing.
 */
describeEachStore('activating a request whose approval no longer holds', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;

  beforeEach(async () => {
    store = await fixture.open();
    b = await startTestBroker(store);
    s = await setUpScenario(b);
  });
  afterEach(() => b.close());
  afterAll(() => fixture.cleanup());

  async function approvedRequest(approvers = [0]): Promise<string> {
    const req = await s.operator.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'rotate rules',
      duration: 1800,
    });
    for (const i of approvers) await s.approvers[i]!.client.call('POST', `/v1/requests/${req.id}/approve`);
    const { state } = await s.operator.client.call<{ state: string }>('GET', `/v1/requests/${req.id}`);
    expect(state).toBe('approved');
    return req.id;
  }

  /** Everything an activation writes: sessions, refresh tokens, status slots, requests, audit heads. */
  const footprint = async () => {
    const db = store.db;
    return JSON.stringify({
      sessions: await db.selectFrom('sessions').selectAll().orderBy('id').execute(),
      refresh: await db.selectFrom('refresh_tokens').select('token_hash').orderBy('token_hash').execute(),
      slots: await db.selectFrom('status_list_slots').selectAll().orderBy('list_id').orderBy('idx').execute(),
      requests: await db.selectFrom('access_requests').selectAll().orderBy('id').execute(),
      heads: await db.selectFrom('audit_heads').selectAll().orderBy('tenant_id').execute(),
    });
  };

  /** Activation is refused with the code and a detail matching `detail`, and changes nothing. */
  async function expectRefused(id: string, detail: RegExp): Promise<void> {
    await s.operator.client.bearerToken(); // sign-in (audited) before the snapshot
    const before = await footprint();
    const err = await refusal(BoundSession.activate(s.operator.client, id));
    expect([err.status, err.code]).toEqual([409, 'approval_no_longer_valid']);
    expect(err.detail).toMatch(detail);
    expect(await footprint()).toBe(before);
  }

  it('activates when the approval still holds (the control)', async () => {
    const id = await approvedRequest();
    // A change that does not touch the approver: another approver disabled.
    await s.admin.call('PATCH', `/v1/principals/${s.approvers[2]!.caller.principal.name}`, {
      enabled: false,
    });
    const session = await BoundSession.activate(s.operator.client, id);
    expect(session.info.id).toMatch(/^ses_/);
  });

  it('refuses when the approver has been disabled since', async () => {
    const id = await approvedRequest();
    await s.admin.call('PATCH', `/v1/principals/approver-0`, { enabled: false });
    await expectRefused(
      id,
      /^0 of the request's approvals still count .* needs 1 \(approver-0 is disabled\)$/,
    );
  });

  it('refuses when the approver has been removed from the approver group', async () => {
    const id = await approvedRequest();
    await s.admin.call('DELETE', '/v1/groups/approvers/members/approver-0');
    await expectRefused(id, /\(approver-0 is no longer an approver of firewall-admin\)$/);
  });

  it('refuses when policy no longer permits the approver to approve (lost its approver standing)', async () => {
    const id = await approvedRequest();
    // Only approver-1 may approve now: approver-0 is still in the group, but policy says no.
    const { 'approvers-approve': _dropped, ...rest } = SCENARIO_POLICIES;
    await s.admin.call('PUT', '/v1/policies', {
      policies: {
        ...rest,
        'approver-1-approves': `permit(principal == Tether::Principal::"${s.approvers[1]!.caller.principal.id}", action == Tether::Action::"approve", resource);`,
      },
    });
    await expectRefused(id, /\(policy no longer lets approver-0 approve it\)$/);
  });

  it('refuses when the rule now needs more approvals than were given, and activates once they are', async () => {
    const id = await approvedRequest([0]);
    await s.admin.call('PATCH', '/v1/privileges/firewall-admin', {
      approval: { approvals: 2, approvers: { groups: ['approvers', 'operators'] } },
    });
    await expectRefused(id, /^1 of the request's approvals still count and firewall-admin now needs 2$/);
    // A request approved twice under the tightened rule activates.
    const twice = await approvedRequest([0, 1]);
    expect((await BoundSession.activate(s.operator.client, twice)).info.id).toMatch(/^ses_/);
  });

  it('refuses an auto-approved request once policy no longer auto-approves it', async () => {
    const req = await s.pipeline.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'release',
      duration: 900,
    });
    expect(req.state).toBe('approved');
    const { 'pipeline-auto-deploy': _dropped, ...rest } = SCENARIO_POLICIES;
    await s.admin.call('PUT', '/v1/policies', { policies: rest });
    await s.pipeline.client.bearerToken();
    const before = await footprint();
    const err = await refusal(BoundSession.activate(s.pipeline.client, req.id));
    expect([err.status, err.code]).toEqual([409, 'approval_no_longer_valid']);
    expect(err.detail).toBe(
      'the request was approved by policy (auto_approve), and the policies no longer approve it',
    );
    expect(await footprint()).toBe(before);
  });
});
