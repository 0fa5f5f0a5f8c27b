import type { PrivilegeList } from '@tether-broker/protocol/api';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { SCENARIO_POLICIES, type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * `GET /v1/privileges?eligible=true`: what the console's ask form offers. The list follows the
 * tenant's Cedar `request` policies, for the caller only, and changes as the policies change;
 * it never decides a request (the request's own decision still does).
 */
describeEachStore('privileges the caller may request', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());
  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b);
  });

  const eligibleNames = async (client: Scenario['admin']) =>
    (await client.call<PrivilegeList>('GET', '/v1/privileges?eligible=true')).privileges
      .map((p) => p.name)
      .sort();

  it('lists what each caller’s policies permit, and only that', async () => {
    // Operators may request anything; the pipeline only `deploy`; an outsider nothing.
    expect(await eligibleNames(s.operator.client)).toEqual(['deploy', 'firewall-admin']);
    expect(await eligibleNames(s.pipeline.client)).toEqual(['deploy']);
    expect(await eligibleNames(s.outsider.client)).toEqual([]);
    // Without the filter, the whole catalogue, as before.
    const all = await s.outsider.client.call<PrivilegeList>('GET', '/v1/privileges');
    expect(all.privileges.map((p) => p.name).sort()).toEqual(['deploy', 'firewall-admin']);
  });

  it('follows the policies as they change, and agrees with the request’s own decision', async () => {
    await s.admin.call('PUT', '/v1/policies', {
      policies: {
        ...SCENARIO_POLICIES,
        'no-firewall-for-olivia': `forbid(principal == Tether::Principal::"${s.operator.caller.principal.id}", action == Tether::Action::"request", resource) when { resource.name == "firewall-admin" };`,
      },
    });
    expect(await eligibleNames(s.operator.client)).toEqual(['deploy']);
    const refused = await refusal(
      s.operator.client.call('POST', '/v1/requests', {
        privilege: 'firewall-admin',
        ticket: 'NET-1',
        justification: 'x',
      }),
    );
    expect(refused.code).toBe('not_eligible');
    await s.admin.call('PUT', '/v1/policies', { policies: SCENARIO_POLICIES });
    expect(await eligibleNames(s.operator.client)).toEqual(['deploy', 'firewall-admin']);
  });

  it('refuses a malformed filter with a typed error', async () => {
    for (const query of ['eligible=maybe', 'eligible=true&other=1']) {
      const refused = await refusal(s.operator.client.call('GET', `/v1/privileges?${query}`));
      expect(refused.status).toBe(400);
    }
  });
});
