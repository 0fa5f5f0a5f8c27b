import type { PolicySetView, PolicyVersionsView } from '@tether-broker/protocol/api';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { validatePolicySet } from '../../packages/broker/src/policy/cedar.js';
import { type BrokerClient, BrokerError } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { describeEachStore } from '../support/stores.js';

interface ProblemBody {
  code: string;
  status: number;
  detail: string;
  errors: string[];
}

async function refusal(p: Promise<unknown>): Promise<BrokerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BrokerError) return err;
    throw err;
  }
  throw new Error('expected the broker to refuse');
}

/**
 * Cedar's "did you mean" hint is not stable between calls when two names are equally close
 * (`delete` → `approve` or `request`), so messages are compared without it.
 */
const withoutHint = (message: string) => message.replace(/ \(did you mean [^)]*\?\)/g, '');

const REQUEST_BY_DBA_GROUP = `permit(principal in Tether::Group::"dba", action == Tether::Action::"request", resource);`;
const REQUEST_BY_DBA_TEAM = `permit(principal, action == Tether::Action::"request", resource) when { principal.hasTag("team") && principal.getTag("team") == "dba" };`;
const APPROVE_BY_OTHERS = `permit(principal, action == Tether::Action::"approve", resource) when { principal != context.requester };`;

const INVALID_SETS: [string, Record<string, string>, RegExp][] = [
  [
    'a syntax error',
    { 'dba-request': REQUEST_BY_DBA_GROUP, broken: 'permit(principal, action, resource' },
    /broken/,
  ],
  [
    'an unknown attribute (principal.department)',
    {
      'dept-request': `permit(principal, action == Tether::Action::"request", resource) when { principal.department == "dba" };`,
    },
    /department/,
  ],
  [
    'an unknown action',
    { 'delete-all': `permit(principal, action == Tether::Action::"delete", resource);` },
    /delete/,
  ],
  [
    'an unknown entity type',
    {
      'team-request': `permit(principal in Tether::Team::"dba", action == Tether::Action::"request", resource);`,
    },
    /Team/,
  ],
  [
    'two policies in one entry',
    { double: `${REQUEST_BY_DBA_GROUP}\n${APPROVE_BY_OTHERS}` },
    /exactly one policy/,
  ],
];

describeEachStore('policy administration', (fixture) => {
  let b: TestBroker;
  let admin: BrokerClient;
  afterAll(() => fixture.cleanup());
  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    admin = b.client(b.adminIdentity);
  });

  const current = () => admin.call<PolicySetView>('GET', '/v1/policies');
  const put = (policies: Record<string, string>) =>
    admin.call<PolicySetView>('PUT', '/v1/policies', { policies });

  it('starts with an empty set at version 0', async () => {
    expect(await current()).toEqual({ version: 0, policies: {}, created_by: '', created_at: null });
    expect(await admin.call('GET', '/v1/policies/versions')).toEqual({ versions: [] });
  });

  describe('refuses an invalid set and keeps the stored one', () => {
    for (const [what, policies, mentions] of INVALID_SETS) {
      it(`with ${what}: 422 policy_invalid with the engine's messages`, async () => {
        const stored = await put({ 'dba-request': REQUEST_BY_DBA_GROUP });
        const engine = validatePolicySet(policies);
        expect(engine.ok).toBe(false);

        const err = await refusal(put(policies));
        expect(err.status).toBe(422);
        expect(err.code).toBe('policy_invalid');
        const body = err.body as ProblemBody;
        expect(body.errors.map(withoutHint)).toEqual(engine.errors.map(withoutHint));
        expect(withoutHint(body.detail)).toBe(withoutHint(engine.errors.join('\n')));
        expect(body.detail).toMatch(mentions);

        expect(await current()).toEqual(stored);
        expect(
          (await admin.call<PolicyVersionsView>('GET', '/v1/policies/versions')).versions.map(
            (v) => v.version,
          ),
        ).toEqual([1]);
      });
    }

    it('without writing an audit record of a replacement', async () => {
      await put({ 'dba-request': REQUEST_BY_DBA_GROUP });
      await refusal(put(INVALID_SETS[0]![1]));
      const records = await admin.call<{ records: { action: string }[] }>('GET', '/v1/audit?limit=1000');
      expect(records.records.filter((r) => r.action === 'policy.replaced')).toHaveLength(1);
    });
  });

  it('stores each valid set as a new version, lists the history and serves every version', async () => {
    const v1 = await put({ 'dba-request': REQUEST_BY_DBA_GROUP });
    b.clock.advance(60_000);
    const v2 = await put({ 'dba-request': REQUEST_BY_DBA_GROUP, 'approve-others': APPROVE_BY_OTHERS });
    b.clock.advance(60_000);
    const v3 = await put({});
    expect([v1.version, v2.version, v3.version]).toEqual([1, 2, 3]);
    expect(v2).toMatchObject({
      created_by: b.admin.principal.id,
      created_at: new Date(b.clock.now() - 60_000).toISOString(),
    });
    expect(await current()).toEqual(v3);

    const history = await admin.call<PolicyVersionsView>('GET', '/v1/policies/versions');
    expect(history.versions).toEqual([
      { version: 3, created_by: b.admin.principal.id, created_at: v3.created_at, policies: 0 },
      { version: 2, created_by: b.admin.principal.id, created_at: v2.created_at, policies: 2 },
      { version: 1, created_by: b.admin.principal.id, created_at: v1.created_at, policies: 1 },
    ]);
    for (const v of [v1, v2, v3]) {
      expect(await admin.call('GET', `/v1/policies/versions/${v.version}`)).toEqual(v);
    }
    expect((await refusal(admin.call('GET', '/v1/policies/versions/4'))).code).toBe('not_found');
    expect((await refusal(admin.call('GET', '/v1/policies/versions/0'))).code).toBe('invalid_request');
  });

  it('validates a set without storing it', async () => {
    const stored = await put({ 'dba-request': REQUEST_BY_DBA_GROUP });
    const ok = await admin.call('POST', '/v1/policies/validate', {
      policies: { 'dba-team': REQUEST_BY_DBA_TEAM, 'approve-others': APPROVE_BY_OTHERS },
    });
    expect(ok).toEqual({ valid: true, errors: [] });

    const [, invalid] = INVALID_SETS[1]!;
    const bad = await admin.call<{ valid: boolean; errors: string[] }>('POST', '/v1/policies/validate', {
      policies: invalid,
    });
    expect(bad.valid).toBe(false);
    expect(bad.errors.map(withoutHint)).toEqual(validatePolicySet(invalid).errors.map(withoutHint));
    expect(bad.errors.join('\n')).toMatch(/department/);

    expect(await current()).toEqual(stored);
  });

  it('does not let a non-admin replace the policies', async () => {
    const mallory = await b.principal('mallory');
    const err = await refusal(
      mallory.client.call('PUT', '/v1/policies', {
        policies: { 'me-too': 'permit(principal, action, resource);' },
      }),
    );
    expect(err.code).toBe('forbidden');
    expect((await current()).version).toBe(0);
  });

  it('applies a policy change to the very next request decision', async () => {
    const alice = await b.principal('alice', 'human', [], { team: 'dba' });
    await admin.call('POST', '/v1/privileges', {
      name: 'db-read',
      actions: ['db:read'],
      resources: ['db/main'],
      audiences: ['https://db.example'],
    });
    const ask = () =>
      alice.client.call<{ state: string }>('POST', '/v1/requests', {
        privilege: 'db-read',
        justification: 'monthly report',
        duration: 600,
      });

    await put({ 'dba-request': REQUEST_BY_DBA_GROUP }); // alice is not in the group
    expect((await refusal(ask())).code).toBe('not_eligible');

    await put({ 'dba-request': REQUEST_BY_DBA_GROUP, 'dba-team': REQUEST_BY_DBA_TEAM });
    expect((await ask()).state).toBe('pending');

    await put({ 'dba-request': REQUEST_BY_DBA_GROUP });
    expect((await refusal(ask())).code).toBe('not_eligible');

    // A refused replacement leaves the decision where it was.
    await refusal(put({ 'dba-team': REQUEST_BY_DBA_TEAM, broken: 'permit(' }));
    expect((await refusal(ask())).code).toBe('not_eligible');
  });
});
