import type { BrokerClient } from '../../packages/client/src/index.js';
import type { Actor, TestBroker } from './broker.js';

/** The policies most lifecycle tests run under. */
export const SCENARIO_POLICIES: Record<string, string> = {
  'operators-request': `permit(principal in Tether::Group::"operators", action == Tether::Action::"request", resource);`,
  'approvers-approve': `permit(principal in Tether::Group::"approvers", action == Tether::Action::"approve", resource) when { principal != context.requester };`,
  'pipeline-request-deploy': `permit(principal, action == Tether::Action::"request", resource) when { principal.kind == "pipeline" && resource.name == "deploy" };`,
  'pipeline-auto-deploy': `permit(principal, action == Tether::Action::"auto_approve", resource) when { principal.kind == "pipeline" && resource.name == "deploy" && context.has_ticket && context.ticket like "CHG-*" && context.duration_seconds <= 1800 };`,
};

export interface Scenario {
  admin: BrokerClient;
  operator: Actor;
  approvers: Actor[];
  outsider: Actor;
  pipeline: Actor;
}

/** Operators, approvers, a pipeline and two privileges, created through the API as an admin would. */
export async function setUpScenario(
  b: TestBroker,
  options: { approvals?: number; approverCount?: number } = {},
): Promise<Scenario> {
  const admin = b.client(b.adminIdentity);
  const operator = await b.principal('olivia');
  const outsider = await b.principal('oscar');
  const pipeline = await b.principal('deploy-bot', 'pipeline');
  const approvers: Actor[] = [];
  for (let i = 0; i < (options.approverCount ?? 3); i++) approvers.push(await b.principal(`approver-${i}`));
  await admin.call('POST', '/v1/groups', { name: 'operators' });
  await admin.call('POST', '/v1/groups', { name: 'approvers' });
  await admin.call('PUT', '/v1/groups/operators/members/olivia');
  for (const a of approvers)
    await admin.call('PUT', `/v1/groups/approvers/members/${a.caller.principal.name}`);
  // The requester is an approver too, to prove the self-review rule holds even then.
  await admin.call('PUT', '/v1/groups/approvers/members/olivia');
  await admin.call('POST', '/v1/privileges', {
    name: 'firewall-admin',
    actions: ['firewall:rules.write'],
    resources: ['firewall/edge-*'],
    audiences: ['https://fw.example'],
    max_duration: 7200,
    approval: { approvals: options.approvals ?? 1, approvers: { groups: ['approvers', 'operators'] } },
    ticket: { required: true, pattern: '(NET|CHG)-[0-9]+' },
  });
  await admin.call('POST', '/v1/privileges', {
    name: 'deploy',
    actions: ['deploy:release'],
    resources: ['app/web'],
    audiences: ['https://deploy.example'],
    max_duration: 3600,
    ticket: { required: false },
  });
  await admin.call('PUT', '/v1/policies', { policies: SCENARIO_POLICIES });
  return { admin, operator, approvers, outsider, pipeline };
}
