import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { actionCovers, resourceCovers } from '../../../pep/src/entitlement.js';
import {
  actionWithin,
  actOf,
  countCalls,
  type DelegationAsk,
  delegatedBudget,
  delegatedExpiry,
  delegatedGrant,
  resourceWithin,
} from './delegation.js';
import type { SessionGrant } from './session.js';

const parent: SessionGrant = {
  privilege: 'deploy',
  actions: ['deploy:release', 'deploy:status.*'],
  resources: ['app/web', 'app/web/**', 'svc/api-*'],
  audiences: ['https://deploy.example'],
  tokenTtlSeconds: 300,
};
const ask = (over: Partial<DelegationAsk>): DelegationAsk => ({
  actor: 'agent:a',
  actions: ['deploy:status.read'],
  resources: ['app/web/logs'],
  audiences: undefined,
  durationSeconds: undefined,
  idleTimeoutSeconds: undefined,
  callBudget: undefined,
  ...over,
});

describe('delegation: what a sub-session may hold', () => {
  it('keeps actions and resources the parent covers, patterns included', () => {
    expect(actionWithin('deploy:status.read', 'deploy:status.*')).toBe(true);
    expect(actionWithin('deploy:status.*', 'deploy:status.*')).toBe(true);
    expect(actionWithin('deploy:status.logs*', 'deploy:status.*')).toBe(true);
    expect(actionWithin('deploy:*', 'deploy:status.*')).toBe(false);
    expect(actionWithin('*', 'deploy:release')).toBe(false);
    expect(resourceWithin('app/web/logs', 'app/web/**')).toBe(true);
    expect(resourceWithin('app/web/**', 'app/web/**')).toBe(true);
    expect(resourceWithin('app/web/logs/**', 'app/web/**')).toBe(true);
    expect(resourceWithin('app/**', 'app/web/**')).toBe(false);
    expect(resourceWithin('app/*', 'app/web')).toBe(false);
    expect(resourceWithin('svc/api-eu*', 'svc/api-*')).toBe(true);
    expect(resourceWithin('svc/*-api', 'svc/api-*')).toBe(false);
    expect(resourceWithin('svc/api-*/x', 'svc/api-*')).toBe(false);
  });

  it('is sound: whatever a sub-session pattern covers, its parent pattern covers (property)', () => {
    const segment = fc.oneof(
      fc.constantFrom('**', '*', 'a*', '*b', 'a*b', 'ab'),
      fc.stringMatching(/^[ab]{1,3}$/),
    );
    const pattern = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
    const concrete = fc
      .array(fc.stringMatching(/^[ab]{1,3}$/), { minLength: 1, maxLength: 5 })
      .map((s) => s.join('/'));
    fc.assert(
      fc.property(pattern, pattern, concrete, (child, held, resource) => {
        if (resourceWithin(child, held) && resourceCovers(child, resource))
          expect(resourceCovers(held, resource)).toBe(true);
      }),
      { numRuns: 3000 },
    );
    const action = fc.stringMatching(/^[ab:]{0,4}\*?$/);
    fc.assert(
      fc.property(action, action, fc.stringMatching(/^[ab:]{0,5}$/), (child, held, called) => {
        if (actionWithin(child, held) && actionCovers(child, called))
          expect(actionCovers(held, called)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses anything wider than the parent, and malformed asks', () => {
    expect(delegatedGrant(parent, ask({})).resources).toEqual(['app/web/logs']);
    for (const wider of [
      ask({ actions: ['deploy:rollback'] }),
      ask({ resources: ['app/**'] }),
      ask({ resources: ['app/web/../api'] }),
      ask({ resources: ['app/web//x'] }),
      ask({ resources: ['app/web/\u0000'] }),
      ask({ audiences: ['https://other.example'] }),
      ask({ actions: [] }),
      ask({ resources: Array.from({ length: 65 }, (_, i) => `app/web/${i}`) }),
      ask({ actions: ['x'.repeat(513)] }),
    ])
      expect(() => delegatedGrant(parent, wider)).toThrow(
        expect.objectContaining({ code: 'invalid_delegation' }),
      );
  });

  it('never outlives its parent, and budgets only what it holds', () => {
    const at = 1_000_000;
    expect(delegatedExpiry({ hardExpiresAt: at + 60_000 }, ask({}), at)).toBe(at + 60_000);
    expect(delegatedExpiry({ hardExpiresAt: at + 60_000 }, ask({ durationSeconds: 30 }), at)).toBe(
      at + 30_000,
    );
    expect(() => delegatedExpiry({ hardExpiresAt: at + 60_000 }, ask({ durationSeconds: 61 }), at)).toThrow();
    const grant = delegatedGrant(parent, ask({ actions: ['deploy:status.*'] }));
    expect(delegatedBudget(grant, ask({ callBudget: { 'deploy:status.*': 5 } }))).toEqual({
      'deploy:status.*': 5,
    });
    expect(() => delegatedBudget(grant, ask({ callBudget: { 'deploy:release': 5 } }))).toThrow();
    expect(() => delegatedBudget(grant, ask({ callBudget: { 'deploy:status.*': 0 } }))).toThrow();
    expect(() => delegatedBudget(grant, ask({ callBudget: { 'deploy:status.*': 1.5 } }))).toThrow();
  });

  it('counts calls against the budgeted actions that cover them, and nests act claims', () => {
    const delegation = {
      parentSessionId: 'ses_x',
      depth: 1,
      act: { sub: 'a' },
      callBudget: { 'deploy:status.*': 2 },
      callsMade: { 'deploy:status.*': 1 },
    };
    expect(countCalls(delegation, ['deploy:release'])).toEqual({
      callsMade: { 'deploy:status.*': 1 },
      exhausted: [],
    });
    expect(countCalls(delegation, ['deploy:status.read'])).toEqual({
      callsMade: { 'deploy:status.*': 2 },
      exhausted: ['deploy:status.*'],
    });
    expect(actOf('tool', { delegation })).toEqual({ sub: 'tool', act: { sub: 'a' } });
    expect(actOf('agent', { delegation: null })).toEqual({ sub: 'agent' });
  });
});
