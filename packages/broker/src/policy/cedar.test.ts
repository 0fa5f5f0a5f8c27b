import { readFileSync } from 'node:fs';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { describe, expect, it } from 'vitest';
import {
  type DecisionInput,
  type PolicyAction,
  PolicyEngine,
  type PolicyTexts,
  type PrincipalFacts,
  resourceEntity,
  validatePolicySet,
} from './cedar.js';
import { CEDAR_SCHEMA } from './schema.js';

// Monday 3 June 2024, 07:30 UTC = 09:30 in Paris (CEST, UTC+2) = 16:30 in Tokyo (UTC+9).
const MONDAY_0730_UTC = Date.UTC(2024, 5, 3, 7, 30);
// Sunday 2 June 2024, 23:30 UTC = Monday 08:30 in Tokyo.
const SUNDAY_2330_UTC = Date.UTC(2024, 5, 2, 23, 30);

const alice: PrincipalFacts = {
  id: 'prn_alice',
  name: 'alice',
  kind: 'human',
  enabled: true,
  groups: ['grp_netops'],
  attributes: { team: 'netops' },
};
const bob: PrincipalFacts = {
  id: 'prn_bob',
  name: 'bob',
  kind: 'human',
  enabled: true,
  groups: ['grp_approvers'],
  attributes: { team: 'netops' },
};
const carol: PrincipalFacts = {
  id: 'prn_carol',
  name: 'carol',
  kind: 'human',
  enabled: true,
  groups: ['grp_approvers'],
  attributes: { team: 'finance' },
};
const deployBot: PrincipalFacts = {
  id: 'prn_ci',
  name: 'ci',
  kind: 'pipeline',
  enabled: true,
  groups: [],
  attributes: {},
};

/** A request by alice for `deploy` in prod, at 09:30 Paris time on a Monday, unless overridden. */
function input(overrides: Partial<DecisionInput> = {}): DecisionInput {
  const principal = overrides.principal ?? alice;
  return {
    action: 'request',
    principal,
    requester: principal,
    privilege: { id: 'prv_deploy', name: 'deploy', attributes: { env: 'prod' } },
    durationSeconds: 1800,
    reason: 'routine change',
    at: MONDAY_0730_UTC,
    timeZone: 'Europe/Paris',
    ...overrides,
  };
}

function action(name: PolicyAction): string {
  return `Tether::Action::"${name}"`;
}

const DEMO_AUTO_DEPLOY = `@id("pipeline-auto-deploy")
permit(principal, action == Tether::Action::"auto_approve", resource)
when { principal.kind == "pipeline" && resource.name == "deploy" && context.has_ticket && context.ticket like "CHG-*" && context.duration_seconds <= 3600 };`;

const NETOPS_MAY_REQUEST = `permit(principal in Tether::Group::"grp_netops", action == ${action('request')}, resource);`;
const BUSINESS_HOURS = `permit(principal, action == ${action('request')}, resource)
when { context.weekday >= 1 && context.weekday <= 5 && context.hour >= 9 && context.hour < 17 };`;
const NO_SELF_APPROVAL = `permit(principal in Tether::Group::"grp_approvers", action == ${action('approve')}, resource)
when { principal != context.requester };`;

interface DecisionCase {
  name: string;
  policies: PolicyTexts;
  input: DecisionInput;
  allowed: boolean;
  /** The ids the decision must name. */
  determining: string[];
  /** Set for the one case whose policies are deliberately not schema-valid. */
  invalid?: true;
}

const decisionCases: DecisionCase[] = [
  { name: 'default deny with an empty set', policies: {}, input: input(), allowed: false, determining: [] },
  {
    name: 'permit by group membership',
    policies: { 'netops-request': NETOPS_MAY_REQUEST },
    input: input(),
    allowed: true,
    determining: ['netops-request'],
  },
  {
    name: 'no permit outside the group',
    policies: { 'netops-request': NETOPS_MAY_REQUEST },
    input: input({ principal: carol }),
    allowed: false,
    determining: [],
  },
  {
    name: 'a permit for one action does not grant another',
    policies: { 'netops-request': NETOPS_MAY_REQUEST },
    input: input({ action: 'continue' }),
    allowed: false,
    determining: [],
  },
  {
    name: 'forbid overrides permit and is named',
    policies: {
      'netops-request': NETOPS_MAY_REQUEST,
      'no-prod': `forbid(principal, action, resource) when { resource.hasTag("env") && resource.getTag("env") == "prod" };`,
    },
    input: input(),
    allowed: false,
    determining: ['no-prod'],
  },
  {
    name: 'principal and privilege tags in conditions: match',
    policies: {
      'netops-prod': `permit(principal, action == ${action('request')}, resource)
        when { principal.hasTag("team") && principal.getTag("team") == "netops" && resource.hasTag("env") && resource.getTag("env") == "prod" };`,
    },
    input: input(),
    allowed: true,
    determining: ['netops-prod'],
  },
  {
    name: 'principal and privilege tags in conditions: principal tag differs',
    policies: {
      'netops-prod': `permit(principal, action == ${action('request')}, resource)
        when { principal.hasTag("team") && principal.getTag("team") == "netops" && resource.hasTag("env") && resource.getTag("env") == "prod" };`,
    },
    input: input({ principal: carol }),
    allowed: false,
    determining: [],
  },
  {
    name: 'principal and privilege tags in conditions: privilege tag missing',
    policies: {
      'netops-prod': `permit(principal, action == ${action('request')}, resource)
        when { principal.hasTag("team") && principal.getTag("team") == "netops" && resource.hasTag("env") && resource.getTag("env") == "prod" };`,
    },
    input: input({ privilege: { id: 'prv_deploy', name: 'deploy', attributes: {} } }),
    allowed: false,
    determining: [],
  },
  {
    name: 'disabled principals are refused by attribute',
    policies: { enabled: `permit(principal, action, resource) when { principal.enabled };` },
    input: input({ principal: { ...alice, enabled: false } }),
    allowed: false,
    determining: [],
  },
  {
    name: 'has_ticket is false without a ticket',
    policies: { 'needs-ticket': `permit(principal, action, resource) when { context.has_ticket };` },
    input: input(),
    allowed: false,
    determining: [],
  },
  {
    name: 'has_ticket is false for an empty ticket',
    policies: { 'needs-ticket': `permit(principal, action, resource) when { context.has_ticket };` },
    input: input({ ticket: '' }),
    allowed: false,
    determining: [],
  },
  {
    name: 'has_ticket is true with a ticket',
    policies: { 'needs-ticket': `permit(principal, action, resource) when { context.has_ticket };` },
    input: input({ ticket: 'INC-7' }),
    allowed: true,
    determining: ['needs-ticket'],
  },
  {
    name: 'ticket pattern matches',
    policies: {
      'change-ticket': `permit(principal, action, resource) when { context.ticket like "CHG-*" };`,
    },
    input: input({ ticket: 'CHG-1234' }),
    allowed: true,
    determining: ['change-ticket'],
  },
  {
    name: 'ticket pattern does not match',
    policies: {
      'change-ticket': `permit(principal, action, resource) when { context.ticket like "CHG-*" };`,
    },
    input: input({ ticket: 'INC-1234' }),
    allowed: false,
    determining: [],
  },
  {
    name: 'duration at the limit',
    policies: {
      'one-hour': `permit(principal, action, resource) when { context.duration_seconds <= 3600 };`,
    },
    input: input({ durationSeconds: 3600 }),
    allowed: true,
    determining: ['one-hour'],
  },
  {
    name: 'duration over the limit',
    policies: {
      'one-hour': `permit(principal, action, resource) when { context.duration_seconds <= 3600 };`,
    },
    input: input({ durationSeconds: 3601 }),
    allowed: false,
    determining: [],
  },
  {
    name: 'business hours: 09:30 Monday in Paris is inside',
    policies: { 'business-hours': BUSINESS_HOURS },
    input: input({ at: MONDAY_0730_UTC, timeZone: 'Europe/Paris' }),
    allowed: true,
    determining: ['business-hours'],
  },
  {
    name: 'business hours: the same instant is 07:30 in UTC, outside',
    policies: { 'business-hours': BUSINESS_HOURS },
    input: input({ at: MONDAY_0730_UTC, timeZone: 'UTC' }),
    allowed: false,
    determining: [],
  },
  {
    name: 'hour and weekday are exactly those of the zone',
    policies: {
      'clock-probe': `permit(principal, action, resource) when { context.hour == 9 && context.weekday == 1 };`,
    },
    input: input({ at: MONDAY_0730_UTC, timeZone: 'Europe/Paris' }),
    allowed: true,
    determining: ['clock-probe'],
  },
  {
    name: 'weekday is computed in the zone: Sunday night UTC is Monday morning in Tokyo',
    policies: {
      'clock-probe': `permit(principal, action, resource) when { context.hour == 8 && context.weekday == 1 };`,
    },
    input: input({ at: SUNDAY_2330_UTC, timeZone: 'Asia/Tokyo' }),
    allowed: true,
    determining: ['clock-probe'],
  },
  {
    name: 'weekday is computed in the zone: still Sunday in UTC',
    policies: {
      'clock-probe': `permit(principal, action, resource) when { context.hour == 23 && context.weekday == 0 };`,
    },
    input: input({ at: SUNDAY_2330_UTC, timeZone: 'UTC' }),
    allowed: true,
    determining: ['clock-probe'],
  },
  {
    name: 'approve by another approver',
    policies: { 'four-eyes': NO_SELF_APPROVAL },
    input: input({ action: 'approve', principal: bob, requester: alice }),
    allowed: true,
    determining: ['four-eyes'],
  },
  {
    name: 'self-approval is refused',
    policies: { 'four-eyes': NO_SELF_APPROVAL },
    input: input({ action: 'approve', principal: bob, requester: bob }),
    allowed: false,
    determining: [],
  },
  {
    name: 'approver and requester tags: same team',
    policies: {
      'same-team': `permit(principal, action == ${action('approve')}, resource)
        when { principal.hasTag("team") && context.requester.hasTag("team") && principal.getTag("team") == context.requester.getTag("team") };`,
    },
    input: input({ action: 'approve', principal: bob, requester: alice }),
    allowed: true,
    determining: ['same-team'],
  },
  {
    name: 'approver and requester tags: different teams',
    policies: {
      'same-team': `permit(principal, action == ${action('approve')}, resource)
        when { principal.hasTag("team") && context.requester.hasTag("team") && principal.getTag("team") == context.requester.getTag("team") };`,
    },
    input: input({ action: 'approve', principal: carol, requester: alice }),
    allowed: false,
    determining: [],
  },
  {
    name: 'demo auto-approve: pipeline with a change ticket',
    policies: { 'pipeline-auto-deploy': DEMO_AUTO_DEPLOY },
    input: input({ action: 'auto_approve', principal: deployBot, ticket: 'CHG-42', durationSeconds: 3600 }),
    allowed: true,
    determining: ['pipeline-auto-deploy'],
  },
  {
    name: 'demo auto-approve: no ticket',
    policies: { 'pipeline-auto-deploy': DEMO_AUTO_DEPLOY },
    input: input({ action: 'auto_approve', principal: deployBot, durationSeconds: 3600 }),
    allowed: false,
    determining: [],
  },
  {
    name: 'demo auto-approve: ticket of another kind',
    policies: { 'pipeline-auto-deploy': DEMO_AUTO_DEPLOY },
    input: input({ action: 'auto_approve', principal: deployBot, ticket: 'INC-42', durationSeconds: 3600 }),
    allowed: false,
    determining: [],
  },
  {
    name: 'demo auto-approve: too long',
    policies: { 'pipeline-auto-deploy': DEMO_AUTO_DEPLOY },
    input: input({ action: 'auto_approve', principal: deployBot, ticket: 'CHG-42', durationSeconds: 3601 }),
    allowed: false,
    determining: [],
  },
  {
    name: 'demo auto-approve: a human is not a pipeline',
    policies: { 'pipeline-auto-deploy': DEMO_AUTO_DEPLOY },
    input: input({ action: 'auto_approve', ticket: 'CHG-42' }),
    allowed: false,
    determining: [],
  },
  {
    name: 'demo auto-approve: only for auto_approve',
    policies: { 'pipeline-auto-deploy': DEMO_AUTO_DEPLOY },
    input: input({ action: 'request', principal: deployBot, ticket: 'CHG-42' }),
    allowed: false,
    determining: [],
  },
  {
    name: 'principal_kind reflects the acting principal',
    policies: {
      'pipelines-continue': `permit(principal, action == ${action('continue')}, resource) when { context.principal_kind == "pipeline" };`,
    },
    input: input({ action: 'continue', principal: deployBot }),
    allowed: true,
    determining: ['pipelines-continue'],
  },
  {
    name: 'continue about a resource: its segments are tags by position, compared with a principal tag',
    policies: {
      'own-namespace': `permit(principal, action == ${action('continue')}, resource) when { context has entitlement_resource && context.entitlement_resource.name like "k8s/*" && context.entitlement_resource.hasTag("2") && principal.hasTag("claim:ns") && context.entitlement_resource.getTag("2") == principal.getTag("claim:ns") };`,
    },
    input: input({
      action: 'continue',
      principal: { ...deployBot, attributes: { 'claim:ns': 'team-a' } },
      entitlementAction: 'k8s:deploy',
      entitlementResource: 'k8s/team-a/*',
    }),
    allowed: true,
    determining: ['own-namespace'],
  },
  {
    name: "continue about another namespace's resource, or about none",
    policies: {
      'own-namespace': `permit(principal, action == ${action('continue')}, resource) when { context has entitlement_resource && context.entitlement_resource.hasTag("2") && principal.hasTag("claim:ns") && context.entitlement_resource.getTag("2") == principal.getTag("claim:ns") };`,
      'no-third-segment': `forbid(principal, action == ${action('continue')}, resource) when { context has entitlement_resource && !context.entitlement_resource.hasTag("3") };`,
    },
    input: input({
      action: 'continue',
      principal: { ...deployBot, attributes: { 'claim:ns': 'team-a' } },
      entitlementAction: 'k8s:deploy',
      entitlementResource: 'k8s/team-b',
    }),
    allowed: false,
    determining: ['no-third-segment'],
  },
  {
    // Cedar alone would skip the erroring forbid and allow; the engine fails closed.
    name: 'an evaluation error denies and names the erroring policy',
    policies: {
      'allow-all': 'permit(principal, action, resource);',
      'unguarded-tag': `forbid(principal, action, resource) when { principal.getTag("clearance") == "none" };`,
    },
    input: input(),
    allowed: false,
    determining: ['unguarded-tag'],
    invalid: true,
  },
];

describe('PolicyEngine.decide', () => {
  const engine = new PolicyEngine();

  it.each(decisionCases)(
    '$name',
    ({ name, policies, input: decisionInput, allowed, determining, invalid }) => {
      const decision = engine.decide(`case:${name}`, policies, decisionInput);
      expect({ allowed: decision.allowed, policies: [...decision.policies].sort() }).toEqual({
        allowed,
        policies: [...determining].sort(),
      });
      if (invalid) {
        expect(decision.errors.length).toBeGreaterThan(0);
        expect(decision.errors.every((error) => determining.some((id) => error.includes(id)))).toBe(true);
      } else {
        expect(decision.errors).toEqual([]);
      }
    },
  );

  it.each(decisionCases.filter((c) => !c.invalid))('policies of "$name" pass validation', ({ policies }) => {
    expect(validatePolicySet(policies)).toEqual({ ok: true, errors: [] });
  });

  it.each<{ name: string; policies: PolicyTexts; input: DecisionInput; error: RegExp }>([
    {
      name: 'unparsable policies',
      policies: { broken: 'permit(principal, action' },
      input: input(),
      error: /broken/,
    },
    {
      name: 'an unknown time zone',
      policies: { 'allow-all': 'permit(principal, action, resource);' },
      input: input({ timeZone: 'Mars/Olympus_Mons' }),
      error: /time zone/,
    },
    {
      name: 'a fractional duration',
      policies: { 'allow-all': 'permit(principal, action, resource);' },
      input: input({ durationSeconds: 1.5 }),
      error: /durationSeconds/,
    },
    {
      name: 'a non-finite instant',
      policies: { 'allow-all': 'permit(principal, action, resource);' },
      input: input({ at: Number.NaN }),
      error: /epoch/,
    },
  ])('denies without throwing on $name', ({ name, policies, input: decisionInput, error }) => {
    const decision = engine.decide(`bad-input:${name}`, policies, decisionInput);
    expect(decision.allowed).toBe(false);
    expect(decision.errors.join('\n')).toMatch(error);
  });
});

describe('resourceEntity', () => {
  it('names the resource and tags its segments by position from 1', () => {
    expect(resourceEntity('k8s/team-a/*')).toEqual({
      uid: { type: 'Tether::Resource', id: 'k8s/team-a/*' },
      attrs: { name: 'k8s/team-a/*' },
      parents: [],
      tags: { '1': 'k8s', '2': 'team-a', '3': '*' },
    });
    expect(resourceEntity('app/web').tags).toEqual({ '1': 'app', '2': 'web' });
  });
});

describe('PolicyEngine preparse cache', () => {
  const allow = (id: string): PolicyTexts => ({ [id]: 'permit(principal, action, resource);' });

  /** One decide call and the policy ids it must report; `[]` means denied. */
  type Step = { key: string; policies: PolicyTexts; determining: string[] };

  it.each<{ name: string; capacity: number; steps: Step[] }>([
    {
      // Same key = same immutable set: later texts under a cached key are not read.
      name: 'a cached key keeps its set whatever texts are passed; a new key reads the texts',
      capacity: 64,
      steps: [
        { key: 'tenant-a:1', policies: allow('v1'), determining: ['v1'] },
        { key: 'tenant-a:1', policies: {}, determining: ['v1'] },
        { key: 'tenant-a:1', policies: allow('other'), determining: ['v1'] },
        { key: 'tenant-a:2', policies: {}, determining: [] },
      ],
    },
    {
      name: 'least recently used key is evicted and its slot reused without clobbering the others',
      capacity: 2,
      steps: [
        { key: 'A', policies: allow('a'), determining: ['a'] },
        { key: 'B', policies: allow('b'), determining: ['b'] },
        { key: 'A', policies: {}, determining: ['a'] }, // hit; A is now the most recent
        { key: 'C', policies: allow('c'), determining: ['c'] }, // evicts B
        { key: 'A', policies: {}, determining: ['a'] }, // A survived
        { key: 'C', policies: {}, determining: ['c'] }, // C got its own set, not A's
        { key: 'B', policies: {}, determining: [] }, // B was evicted: reparsed from these texts
      ],
    },
    {
      name: 'a set that fails to preparse is not cached',
      capacity: 2,
      steps: [
        { key: 'K', policies: { broken: 'permit(' }, determining: [] },
        { key: 'K', policies: allow('fixed'), determining: ['fixed'] },
      ],
    },
  ])('$name', ({ capacity, steps }) => {
    const engine = new PolicyEngine({ capacity });
    const seen = steps.map(({ key, policies }) => engine.decide(key, policies, input()).policies);
    expect(seen).toEqual(steps.map((step) => step.determining));
  });

  it('engines do not share cached sets even under the same key', () => {
    const first = new PolicyEngine();
    const second = new PolicyEngine();
    expect(first.decide('tenant:1', allow('first'), input()).policies).toEqual(['first']);
    expect(second.decide('tenant:1', {}, input()).allowed).toBe(false);
    expect(first.decide('tenant:1', {}, input()).policies).toEqual(['first']);
  });

  it('refuses a capacity below one', () => {
    expect(() => new PolicyEngine({ capacity: 0 })).toThrow(RangeError);
  });
});

describe('validatePolicySet', () => {
  it.each<{ name: string; policies: PolicyTexts; ok: boolean; errors?: RegExp[] }>([
    { name: 'an empty set', policies: {}, ok: true },
    {
      name: 'a valid set',
      policies: {
        'pipeline-auto-deploy': DEMO_AUTO_DEPLOY,
        'netops-request': NETOPS_MAY_REQUEST,
        'business-hours': BUSINESS_HOURS,
        'four-eyes': NO_SELF_APPROVAL,
      },
      ok: true,
    },
    {
      name: 'a syntax error',
      policies: { 'typo-1': 'permit(principal, action, resource) when { principal.name == };' },
      ok: false,
      errors: [/typo-1/],
    },
    {
      name: 'an unknown attribute',
      policies: { 'bad-attr': 'permit(principal, action, resource) when { principal.department == "x" };' },
      ok: false,
      errors: [/bad-attr.*attribute `department`/],
    },
    {
      name: 'a type error',
      policies: {
        'bad-type': 'permit(principal, action, resource) when { context.duration_seconds == "1h" };',
      },
      ok: false,
      errors: [/bad-type/],
    },
    {
      name: 'a tag read without hasTag',
      policies: {
        'unguarded-tag': 'permit(principal, action, resource) when { principal.getTag("team") == "x" };',
      },
      ok: false,
      errors: [/unguarded-tag.*tag/],
    },
    {
      name: 'an unknown action',
      policies: { 'bad-action': 'permit(principal, action == Tether::Action::"delete", resource);' },
      ok: false,
      errors: [/bad-action.*unrecognized action/],
    },
    {
      name: 'an unknown entity type',
      policies: { 'bad-type-name': 'permit(principal in Tether::Team::"x", action, resource);' },
      ok: false,
      errors: [/bad-type-name/],
    },
    {
      name: 'two policies in one entry',
      policies: { double: 'permit(principal, action, resource);\nforbid(principal, action, resource);' },
      ok: false,
      errors: [/double.*exactly one policy, found 2/],
    },
    {
      name: 'an entry with no policy',
      policies: { empty: '// nothing here' },
      ok: false,
      errors: [/empty.*exactly one policy, found 0/],
    },
    {
      name: 'a template',
      policies: { tmpl: 'permit(principal == ?principal, action, resource);' },
      ok: false,
      errors: [/tmpl.*template/],
    },
    {
      name: 'an invalid id',
      policies: { 'has space': 'permit(principal, action, resource);' },
      ok: false,
      errors: [/"has space".*invalid/],
    },
    {
      name: 'an id longer than 64 characters',
      policies: { [`p${'x'.repeat(64)}`]: 'permit(principal, action, resource);' },
      ok: false,
      errors: [/invalid/],
    },
    {
      name: 'a non-string text',
      policies: { 'not-text': 42 } as unknown as PolicyTexts,
      ok: false,
      errors: [/not-text.*string/],
    },
    {
      name: 'several bad entries, all reported in one pass',
      policies: {
        good: NETOPS_MAY_REQUEST,
        'syntax-bad': 'permit(',
        'schema-bad': 'permit(principal, action, resource) when { resource.owner == "x" };',
      },
      ok: false,
      errors: [/syntax-bad/, /schema-bad/],
    },
  ])('$name', ({ policies, ok, errors }) => {
    const result = validatePolicySet(policies);
    expect(result.ok).toBe(ok);
    if (errors === undefined) {
      expect(result.errors).toEqual([]);
    } else {
      expect(result.errors).toHaveLength(errors.length);
      for (const [i, pattern] of errors.entries()) expect(result.errors[i]).toMatch(pattern);
    }
  });
});

describe('CEDAR_SCHEMA', () => {
  it('is identical to the documentation copy schema.cedarschema', () => {
    expect(CEDAR_SCHEMA).toBe(readFileSync(new URL('./schema.cedarschema', import.meta.url), 'utf8'));
  });

  it('parses', () => {
    expect(cedar.checkParseSchema(CEDAR_SCHEMA)).toEqual({ type: 'success' });
  });
});
