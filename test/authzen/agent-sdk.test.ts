import type { AuthzenDecision } from '@tether-broker/protocol/api';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { Store } from '../../packages/broker/src/store/database.js';
import {
  AccessNotGranted,
  type BoundSession,
  type DeniedQuestion,
  withRequestedAccess,
} from '../../packages/client/src/index.js';
import { type Actor, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The SDK's helper as an agent framework would use it: a protected call (a firewall service that
 * asks Tether, as an AuthZEN PDP, for each call) is denied with access_request; the helper asks
 * for the access, waits for a human's decision (held status reads, no polling loop), activates
 * the session once approved and makes the call again.
 */
describeEachStore('agent SDK: withRequestedAccess', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;
  let pep: Actor;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    store = await fixture.open();
    b = await startTestBroker(store);
    s = await setUpScenario(b);
    pep = await b.principal('edge-gateway', 'service', ['pep']);
    await s.admin.call('PUT', '/v1/peps/edge-gateway/audiences', { audiences: ['https://fw.example'] });
  });
  afterEach(async () => {
    await b.close();
    await store.close();
  });

  /** The firewall service: asks the PDP about the caller (its session once it has one). */
  async function writeRule(session: BoundSession | undefined) {
    const question: DeniedQuestion = {
      subject: session ? { type: 'session', id: session.info.id } : { type: 'principal', id: 'olivia' },
      resource: { type: 'firewall', id: 'firewall/edge-1' },
      action: { name: 'firewall:rules.write' },
    };
    const response = await b.app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      headers: {
        authorization: `Bearer ${await pep.client.bearerToken()}`,
        'content-type': 'application/json',
      },
      payload: JSON.stringify(question),
    });
    const decision = response.json() as AuthzenDecision;
    return decision.decision ? { value: 'rule written' } : { denied: decision, question };
  }

  /** Olivia's pending request, once the helper has submitted it. */
  async function submitted(): Promise<string> {
    for (;;) {
      const pending = await s.approvers[0]!.client.call<{ requests: { id: string }[] }>(
        'GET',
        '/v1/requests?state=pending',
      );
      if (pending.requests[0]) return pending.requests[0].id;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('asks after a requestable denial, waits for the approval, and the call goes through with the session', async () => {
    const outcome = withRequestedAccess(s.operator.client, writeRule, {
      ticket: 'NET-11',
      justification: 'the agent adds the rule the release needs',
    });
    const id = await submitted();
    const approvedAt = performance.now();
    await s.approvers[0]!.client.call('POST', `/v1/requests/${id}/approve`);
    const { value, session } = await outcome;
    // The held status read answered as the decision was made, not at the end of its wait.
    expect(performance.now() - approvedAt).toBeLessThan(5_000);
    expect(value).toBe('rule written');
    expect(session?.info.id).toMatch(/^ses_/);
    await session!.end();
    expect('denied' in (await writeRule(session))).toBe(true);
  });

  it('gives up with AccessNotGranted when the human denies it', async () => {
    const outcome = withRequestedAccess(s.operator.client, writeRule, {
      ticket: 'NET-12',
      justification: 'try',
    });
    const id = await submitted();
    await s.approvers[0]!.client.call('POST', `/v1/requests/${id}/deny`, {
      comment: 'not during the freeze',
    });
    await expect(outcome).rejects.toBeInstanceOf(AccessNotGranted);
    await expect(outcome).rejects.toMatchObject({ status: 'denied', taskId: id });
  });
});
