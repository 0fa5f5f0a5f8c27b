import { isTetherError, type TetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import {
  assertFederationIsCoherent,
  assertTenantAudience,
  claimTags,
  claimText,
  FEDERATION_DEFAULTS,
  type Federation,
  globMatches,
  isAcceptableJwksUri,
  isTenantAudience,
  type MappingRule,
  mapToPrincipal,
  taskReference,
} from './federation.js';

/** Claims shaped like a CI provider's OIDC token. */
const CI = {
  iss: 'https://token.actions.example',
  aud: 'tether:acme',
  sub: 'repo:acme/web:ref:refs/heads/main',
  repository: 'acme/web',
  repository_owner: 'acme',
  ref: 'refs/heads/main',
  run_id: '123456',
  run_attempt: 1,
  actor: 'octo',
  pull_request: false,
  groups: ['a', 'b'],
  nested: { ref: 'x' },
  iat: 1767607200,
};

function refusal(run: () => unknown): TetherError {
  try {
    run();
  } catch (err) {
    if (isTetherError(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('globMatches', () => {
  const cases: [pattern: string, value: string, expected: boolean][] = [
    ['refs/heads/main', 'refs/heads/main', true],
    ['refs/heads/main', 'refs/heads/main2', false],
    ['refs/heads/main', 'refs/heads/mai', false],
    ['refs/heads/*', 'refs/heads/main', true],
    ['refs/heads/*', 'refs/heads/feature/x', true],
    ['refs/heads/*', 'refs/heads/', true],
    ['refs/heads/*', 'refs/tags/v1', false],
    ['*', '', true],
    ['*', 'anything at all', true],
    ['repo:acme/*:ref:refs/tags/v*', 'repo:acme/web:ref:refs/tags/v1.2', true],
    ['repo:acme/*:ref:refs/tags/v*', 'repo:acme/web:ref:refs/heads/v1', false],
    ['repo:acme/*:ref:refs/tags/v*', 'repo:evil/acme/web:ref:refs/tags/v1', false],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'acb', false],
    ['*b*', 'abc', true],
    ['ab*ba', 'aba', false],
    // Only `*` is special: regex and other glob characters are literal.
    ['acme/.*', 'acme/web', false],
    ['acme/?eb', 'acme/web', false],
    ['acme/[w]eb', 'acme/[w]eb', true],
  ];
  it.each(cases)('%j against %j → %s', (pattern, value, expected) => {
    expect(globMatches(pattern, value)).toBe(expected);
  });
});

describe('claimText', () => {
  const cases: [value: unknown, expected: string | undefined][] = [
    ['main', 'main'],
    ['', ''],
    [42, '42'],
    [1.5, '1.5'],
    [true, 'true'],
    [false, 'false'],
    [Number.NaN, undefined],
    [Number.POSITIVE_INFINITY, undefined],
    [null, undefined],
    [undefined, undefined],
    [['a'], undefined],
    [{ a: 1 }, undefined],
  ];
  it.each(cases)('%j → %j', (value, expected) => {
    expect(claimText(value)).toBe(expected);
  });
});

describe('mapToPrincipal', () => {
  const rules: MappingRule[] = [
    { match: { repository: 'acme/web', ref: 'refs/heads/main' }, principal: 'prn_main' },
    { match: { repository: 'acme/web', ref: 'refs/tags/v*' }, principal: 'prn_release' },
    { match: { repository_owner: 'acme', pull_request: 'false' }, principal: 'prn_acme' },
    { match: { run_attempt: '1', sub: 'repo:other/*' }, principal: 'prn_other' },
  ];
  const cases: [
    name: string,
    claims: Record<string, unknown>,
    expected: ReturnType<typeof mapToPrincipal>,
  ][] = [
    ['first rule, every condition holds', CI, { principal: 'prn_main', rule: 0 }],
    ['second rule: a tag', { ...CI, ref: 'refs/tags/v2.0.1' }, { principal: 'prn_release', rule: 1 }],
    [
      'falls through to a later rule (boolean claim stringified)',
      { ...CI, ref: 'refs/heads/dev' },
      { principal: 'prn_acme', rule: 2 },
    ],
    [
      'number claim stringified',
      { ...CI, repository: 'other/x', repository_owner: 'other', sub: 'repo:other/x', run_attempt: 1 },
      { principal: 'prn_other', rule: 3 },
    ],
    ['one failing condition fails the rule', { ...CI, repository: 'acme/api', repository_owner: 'x' }, null],
    ['a missing claim fails its condition', { repository: 'acme/web' }, null],
    [
      'a non-scalar claim never matches',
      { ...CI, repository: ['acme/web'], repository_owner: { x: 1 } },
      null,
    ],
    ['case matters', { ...CI, repository: 'ACME/web', repository_owner: 'ACME' }, null],
    [
      'an inherited property is not a claim',
      Object.create({ repository: 'acme/web', ref: 'refs/heads/main' }),
      null,
    ],
  ];
  it.each(cases)('%s', (_name, claims, expected) => {
    expect(mapToPrincipal(rules, claims)).toEqual(expected);
  });

  it('never matches with an empty rule list or a rule without conditions', () => {
    expect(mapToPrincipal([], CI)).toBeNull();
    expect(mapToPrincipal([{ match: {}, principal: 'prn_any' }], CI)).toBeNull();
  });
});

describe('claimTags', () => {
  const cases: [names: string[], expected: Record<string, string>][] = [
    [['ref', 'repository'], { 'claim:ref': 'refs/heads/main', 'claim:repository': 'acme/web' }],
    [['run_attempt', 'pull_request'], { 'claim:run_attempt': '1', 'claim:pull_request': 'false' }],
    [['groups', 'nested', 'absent'], {}],
    [[], {}],
  ];
  it.each(cases)('%j', (names, expected) => {
    expect(claimTags(names, CI)).toEqual(expected);
  });
});

describe('taskReference', () => {
  const cases: [claims: Record<string, unknown>, expected: ReturnType<typeof taskReference>][] = [
    [{ run_id: '123456' }, { reference: '123456' }],
    [{ run_id: 123456 }, { reference: '123456' }],
    [{}, { reference: null }],
    [{ run_id: 'abc/def-1.2:3#4' }, { reference: 'abc/def-1.2:3#4' }],
    [{ run_id: '' }, { invalid: 'the run_id claim is not a usable task reference' }],
    [{ run_id: 'has space' }, { invalid: 'the run_id claim is not a usable task reference' }],
    [{ run_id: 'x'.repeat(129) }, { invalid: 'the run_id claim is not a usable task reference' }],
    [{ run_id: ['1'] }, { invalid: 'the run_id claim is not a usable task reference' }],
  ];
  it.each(cases)('%j', (claims, expected) => {
    expect(taskReference('run_id', claims)).toEqual(expected);
  });
});

// The shape only: where a URL may point (https, no private address unless the operator allows
// it) is the outbound client's decision, tested in test/security/ssrf-outbound.test.ts.
describe('isAcceptableJwksUri', () => {
  const cases: [uri: string, ok: boolean][] = [
    ['https://token.actions.example/.well-known/jwks', true],
    ['http://127.0.0.1:8080/jwks', true],
    ['http://token.actions.example/jwks', true],
    ['https://user:pw@issuer.example/jwks', false],
    ['https://issuer.example/jwks#frag', false],
    ['file:///etc/passwd', false],
    ['not a url', false],
  ];
  it.each(cases)('%s → %s', (uri, ok) => {
    expect(isAcceptableJwksUri(uri)).toBe(ok);
  });
});

describe('isTenantAudience', () => {
  const BROKER = 'https://tether.example';
  const cases: [audience: string, ok: boolean][] = [
    ['https://tether.example/tenants/acme', true],
    ['https://tether.example/tenants/acme/ci', true],
    ['https://tether.example/tenants/acme/ci/web-1.prod', true],
    ['https://tether.example/tenants/acme-2', false],
    ['https://tether.example/tenants/acmex', false],
    ['https://tether.example/tenants/globex', false],
    ['https://tether.example/tenants/acme/', false],
    ['https://tether.example/tenants/acme/../globex', false],
    ['https://tether.example/tenants/acme/./ci', false],
    ['https://tether.example/tenants/acme/a b', false],
    ['https://tether.example/tenants/acme?x=1', false],
    ['https://tether.example', false],
    ['tether:acme', false],
    [`https://tether.example/tenants/acme/${'x'.repeat(129)}`, false],
  ];
  it.each(cases)('%s → %s', (audience, ok) => {
    expect(isTenantAudience(audience, BROKER, 'acme')).toBe(ok);
  });
  it("names only the tenant's own audience when it refuses", () => {
    expect(() => assertTenantAudience('https://tether.example/tenants/globex', BROKER, 'acme')).toThrow(
      expect.objectContaining({
        code: 'audience_not_in_tenant',
        detail: expect.not.stringContaining('globex'),
      }),
    );
  });
});

describe('assertFederationIsCoherent', () => {
  type Coherence = Parameters<typeof assertFederationIsCoherent>[0];
  const base: Coherence = {
    issuer: 'https://token.actions.example',
    audience: 'tether:acme',
    jwksUri: 'https://token.actions.example/.well-known/jwks',
    jwks: null,
    algorithms: [...FEDERATION_DEFAULTS.algorithms],
    principalMapping: [{ match: { repository: 'acme/web' }, principal: 'prn_x' }],
    contextClaims: ['ref'],
    taskClaim: FEDERATION_DEFAULTS.taskClaim,
    maxTokenAgeSeconds: FEDERATION_DEFAULTS.maxTokenAgeSeconds,
  };

  it('accepts a coherent record, with either kind of key source', () => {
    expect(() => assertFederationIsCoherent(base)).not.toThrow();
    expect(() => assertFederationIsCoherent({ ...base, jwksUri: null, jwks: { keys: [] } })).not.toThrow();
  });

  const cases: [name: string, changes: Partial<Federation>, detail: RegExp][] = [
    ['both key sources', { jwks: { keys: [] } }, /exactly one of jwks_uri and jwks/],
    ['no key source', { jwksUri: null }, /exactly one of jwks_uri and jwks/],
    ['jwks_uri with credentials', { jwksUri: 'https://user:pw@issuer.example/jwks' }, /credentials/],
    ['jwks_uri not http(s)', { jwksUri: 'file:///etc/passwd' }, /https/],
    ['no algorithm', { algorithms: [] }, /algorithms may not be empty/],
    ['a symmetric algorithm', { algorithms: ['RS256', 'HS256' as 'RS256'] }, /not accepted: HS256/],
    ['alg none', { algorithms: ['none' as 'RS256'] }, /not accepted: none/],
    ['no rule', { principalMapping: [] }, /at least one rule/],
    [
      'a rule without conditions',
      { principalMapping: [{ match: {}, principal: 'prn_x' }] },
      /\[0\]\.match needs at least one condition/,
    ],
    [
      'a bad claim name in a rule',
      { principalMapping: [{ match: { 'a b': 'x' }, principal: 'prn_x' }] },
      /not a claim name/,
    ],
    [
      'too many rules',
      { principalMapping: Array.from({ length: 33 }, () => base.principalMapping[0]!) },
      /at most 32 rules/,
    ],
    ['a bad context claim', { contextClaims: ['ok', 'claim:ref'] }, /"claim:ref" is not a claim name/],
    ['a bad task claim', { taskClaim: '' }, /"" is not a claim name/],
    ['token age too short', { maxTokenAgeSeconds: 5 }, /max_token_age/],
    ['token age too long', { maxTokenAgeSeconds: 86400 }, /max_token_age/],
  ];
  it.each(cases)('refuses %s', (_name, changes, detail) => {
    const err = refusal(() => assertFederationIsCoherent({ ...base, ...changes }));
    expect(err.code).toBe('invalid_request');
    expect(err.detail).toMatch(detail);
  });
});
