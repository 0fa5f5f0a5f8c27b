import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TetherPrivilegeDetail } from './access-token-claims.js';
import {
  actionCovers,
  findEntitlement,
  findEntitlementRemembered,
  resourceCovers,
  resourceProblem,
} from './entitlement.js';

const detail = (actions: string[], resources: string[], privilege = 'p'): TetherPrivilegeDetail => ({
  type: 'tether_privilege',
  privilege,
  actions,
  resources,
});

describe('resource patterns', () => {
  it.each([
    ['firewall/edge-*', 'firewall/edge-1', true],
    ['firewall/edge-*', 'firewall/edge-', true],
    ['firewall/edge-*', 'firewall/core-1', false],
    ['firewall/edge-*', 'firewall/edge-1/rules', false], // `*` never crosses a `/`
    ['firewall/*', 'firewall', false],
    ['firewall/**', 'firewall', true], // `**` covers zero segments
    ['firewall/**', 'firewall/edge-1/rules/7', true],
    ['firewall/**/rules', 'firewall/rules', true],
    ['firewall/**/rules', 'firewall/a/b/rules', true],
    ['firewall/**/rules', 'firewall/a/b/rule', false],
    ['**', 'anything/at/all', true],
    ['app/web', 'app/web', true],
    ['app/web', 'app/Web', false], // case-sensitive
    ['app/web', 'app/web/x', false],
    ['app/*-prod-*', 'app/eu-prod-1', true],
    ['app/*-prod-*', 'app/eu-dev-1', false],
    ['app/a*a', 'app/a', false], // both literal parts must fit, without overlapping
    ['app/a*a', 'app/aa', true],
    ['db/*.internal', 'db/x.internal', true],
    ['db/*.internal', 'db/x.internal.evil', false],
  ])('%s covers %s: %s', (pattern, resource, expected) => {
    expect(resourceProblem(resource)).toBeUndefined();
    expect(resourceCovers(pattern, resource)).toBe(expected);
  });

  it.each([
    ['', 'the resource is empty'],
    ['firewall//edge-1', 'the resource has an empty, "." or ".." segment'],
    ['firewall/edge-1/../core', 'the resource has an empty, "." or ".." segment'],
    ['firewall/./edge-1', 'the resource has an empty, "." or ".." segment'],
    ['/firewall/edge-1', 'the resource has an empty, "." or ".." segment'],
    ['firewall/edge-1/', 'the resource has an empty, "." or ".." segment'],
    ['firewall/edge-1\n', 'the resource holds a control character'],
    ['firewall/edge\u0000', 'the resource holds a control character'],
    ['x'.repeat(1025), 'the resource is longer than 1024 characters'],
  ])('refuses the malformed resource %j whatever the grant', (resource, problem) => {
    expect(resourceProblem(resource)).toBe(problem);
    expect(findEntitlement([detail(['*'], ['**'])], 'a', resource)).toBeUndefined();
  });

  it('stays fast on a hostile pattern and resource (no exponential backtracking)', () => {
    const pattern = Array.from({ length: 30 }, () => '**/a').join('/') + '/b';
    const resource = Array.from({ length: 500 }, () => 'a').join('/');
    const started = performance.now();
    expect(resourceCovers(pattern, resource)).toBe(false);
    // Generous bound: it runs in about a millisecond; backtracking would take years.
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('a pattern without wildcards covers exactly itself (property)', () => {
    const segment = fc.stringMatching(/^[a-z0-9._-]{1,8}$/).filter((s) => s !== '.' && s !== '..');
    const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
    fc.assert(fc.property(path, path, (a, b) => resourceCovers(a, b) === (a === b)));
  });

  it('`**` covers every well-formed resource below its prefix (property)', () => {
    const segment = fc.stringMatching(/^[a-z0-9-]{1,8}$/);
    const path = fc.array(segment, { minLength: 0, maxLength: 5 });
    fc.assert(
      fc.property(path, path, (prefix, rest) => {
        const full = [...prefix, ...rest];
        fc.pre(full.length > 0);
        return resourceCovers([...prefix, '**'].join('/'), full.join('/'));
      }),
    );
  });
});

describe('actions', () => {
  it.each([
    ['firewall:rules.read', 'firewall:rules.read', true],
    ['firewall:rules.read', 'firewall:rules.write', false],
    ['firewall:rules.read', 'firewall:rules.readX', false],
    ['firewall:*', 'firewall:rules.write', true],
    ['firewall:*', 'firewallx:rules', false],
    ['*', 'anything', true],
    ['Firewall:*', 'firewall:x', false],
  ])('%s covers %s: %s', (pattern, action, expected) => {
    expect(actionCovers(pattern, action)).toBe(expected);
  });
});

describe('findEntitlement', () => {
  it('needs the action and the resource in the same entry', () => {
    const details = [
      detail(['deploy:release'], ['app/web'], 'a'),
      detail(['firewall:rules.write'], ['firewall/edge-*'], 'b'),
    ];
    expect(findEntitlement(details, 'deploy:release', 'app/web')?.privilege).toBe('a');
    expect(findEntitlement(details, 'firewall:rules.write', 'firewall/edge-1')?.privilege).toBe('b');
    // Action of one entry, resource of the other: not granted.
    expect(findEntitlement(details, 'deploy:release', 'firewall/edge-1')).toBeUndefined();
    expect(findEntitlement(details, 'firewall:rules.write', 'app/web')).toBeUndefined();
  });

  it('ignores entries of other types and refuses an empty action', () => {
    const foreign = {
      ...detail(['*'], ['**']),
      type: 'payment_initiation',
    } as unknown as TetherPrivilegeDetail;
    expect(findEntitlement([foreign], 'x', 'y')).toBeUndefined();
    expect(findEntitlement([detail(['*'], ['**'])], '', 'y')).toBeUndefined();
  });
});

describe('findEntitlementRemembered', () => {
  const frozen = (details: TetherPrivilegeDetail[]) => {
    for (const d of details) Object.freeze(d);
    return Object.freeze(details);
  };

  it('answers what findEntitlement does, the first time and again', () => {
    const segment = fc.constantFrom('a', 'b', '*', '**', 'a-*');
    const path = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
    fc.assert(
      fc.property(
        fc.array(path, { minLength: 1, maxLength: 3 }),
        fc.array(fc.constantFrom('a', 'b', 'a-1'), { minLength: 1, maxLength: 3 }),
        fc.constantFrom('read', 'write', 'x:*'),
        (patterns, resourceParts, action) => {
          const details = frozen([detail(['read', 'x:*'], patterns)]);
          const resource = resourceParts.join('/');
          const expected = findEntitlement(details, action, resource);
          expect(findEntitlementRemembered(details, action, resource)).toBe(expected);
          expect(findEntitlementRemembered(details, action, resource)).toBe(expected);
        },
      ),
    );
  });

  it('does not remember for details that may still change', () => {
    const details = [detail(['read'], ['a/b'])];
    expect(findEntitlementRemembered(details, 'read', 'a/b')).toBe(details[0]);
    details[0] = detail(['read'], ['c']);
    expect(findEntitlementRemembered(details, 'read', 'a/b')).toBeUndefined();
  });
});
