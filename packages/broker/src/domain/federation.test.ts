import { isTetherError, type TetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import {
  assertFederationIsCoherent,
  assertTenantAudience,
  claimAt,
  claimPathProblem,
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

/** Claims shaped as Kubernetes issues a projected service-account token. */
const K8S = {
  aud: ['https://tether.example/tenants/acme'],
  exp: 1_700_003_600,
  iat: 1_700_000_000,
  nbf: 1_700_000_000,
  iss: 'https://kubernetes.default.svc.cluster.local',
  jti: '7d1f0c5e-0b1a-4c1e-9a57-3f3b2b8f0a11',
  sub: 'system:serviceaccount:team-a:deployer',
  'kubernetes.io': {
    namespace: 'team-a',
    node: { name: 'n1', uid: 'c0a8f6e4-node' },
    pod: { name: 'deployer-7c9f', uid: '5b6e0f7a-pod' },
    serviceaccount: { name: 'deployer', uid: '9e1d2c3b-sa' },
    warnafter: 1_700_003_000,
  },
};

describe('claim paths', () => {
  describe('claimAt reads own members of plain objects only', () => {
    const cases: [name: string, claims: Record<string, unknown>, path: string, expected: unknown][] = [
      ['a top-level claim', K8S, 'sub', 'system:serviceaccount:team-a:deployer'],
      ['one level down', K8S, 'kubernetes.io/namespace', 'team-a'],
      ['two levels down', K8S, 'kubernetes.io/pod/uid', '5b6e0f7a-pod'],
      ['a nested object itself', K8S, 'kubernetes.io/pod', { name: 'deployer-7c9f', uid: '5b6e0f7a-pod' }],
      ['a missing member', K8S, 'kubernetes.io/pod/ip', undefined],
      ['below a scalar', K8S, 'kubernetes.io/namespace/x', undefined],
      [
        'the nested object replaced by a string',
        { 'kubernetes.io': 'team-a' },
        'kubernetes.io/namespace',
        undefined,
      ],
      [
        'through an array',
        { 'kubernetes.io': [{ namespace: 'team-a' }] },
        'kubernetes.io/0/namespace',
        undefined,
      ],
      ['an array index at the top', { groups: ['a'] }, 'groups/0', undefined],
      ['array length', { groups: ['a'] }, 'groups/length', undefined],
      [
        'a flat key that holds the slash is never read',
        { 'kubernetes.io/namespace': 'team-a' },
        'kubernetes.io/namespace',
        undefined,
      ],
      [
        'an inherited member',
        { 'kubernetes.io': Object.create({ namespace: 'team-a' }) },
        'kubernetes.io/namespace',
        undefined,
      ],
      [
        'an instance of a class',
        {
          'kubernetes.io': new (class {
            namespace = 'team-a';
          })(),
        },
        'kubernetes.io/namespace',
        undefined,
      ],
      ['constructor on a plain object', { a: {} }, 'a/constructor', undefined],
      ['constructor at the top', {}, 'constructor', undefined],
      ['toString at the top', {}, 'toString', undefined],
      [
        'an own __proto__ member, as JSON.parse makes it',
        JSON.parse('{"a": {"__proto__": {"namespace": "team-a"}}}'),
        'a/__proto__/namespace',
        undefined,
      ],
      ['an own constructor member', JSON.parse('{"constructor": "x"}'), 'constructor', undefined],
      ['a null-prototype object is plain', { a: Object.assign(Object.create(null), { b: 'x' }) }, 'a/b', 'x'],
    ];
    it.each(cases)('%s', (_name, claims, path, expected) => {
      expect(claimAt(claims, path)).toEqual(expected);
    });
  });

  it('maps, tags and references through nested claims', () => {
    const rules: MappingRule[] = [
      { match: { 'kubernetes.io/serviceaccount/name': 'deployer', iss: '*' }, principal: 'prn_k8s' },
    ];
    expect(mapToPrincipal(rules, K8S)).toEqual({ principal: 'prn_k8s', rule: 0 });
    expect(mapToPrincipal(rules, { ...K8S, 'kubernetes.io': 'deployer' })).toBeNull();
    expect(
      claimTags(['kubernetes.io/namespace', 'kubernetes.io/pod/name', 'kubernetes.io/node', 'sub'], K8S),
    ).toEqual({
      'claim:kubernetes.io/namespace': 'team-a',
      'claim:kubernetes.io/pod/name': 'deployer-7c9f',
      'claim:sub': 'system:serviceaccount:team-a:deployer',
    });
    // A top-level `namespace` beside the nested one is another claim: it never stands in for it.
    expect(claimTags(['kubernetes.io/namespace'], { ...K8S, namespace: '*', 'kubernetes.io': 'x' })).toEqual(
      {},
    );
    expect(taskReference('kubernetes.io/pod/uid', K8S)).toEqual({ reference: '5b6e0f7a-pod' });
    expect(taskReference('kubernetes.io/pod/uid', { 'kubernetes.io': { pod: {} } })).toEqual({
      reference: null,
    });
    expect(taskReference('kubernetes.io/pod', K8S)).toEqual({
      invalid: 'the kubernetes.io/pod claim is not a usable task reference',
    });
  });

  describe('claimPathProblem', () => {
    const cases: [path: string, problem: string | undefined][] = [
      ['ref', undefined],
      ['kubernetes.io/namespace', undefined],
      ['kubernetes.io/pod/uid', undefined],
      ['a/b/c/d', undefined],
      [`${'a'.repeat(63)}/${'b'.repeat(63)}`, undefined],
      ['a/b/c/d/e', 'a claim path has at most 4 segments'],
      [`${'a'.repeat(64)}/${'b'.repeat(64)}`, 'a claim path has at most 128 characters'],
      [
        'a'.repeat(65),
        '"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is not an identifier (a letter or _, then letters, digits, _ . -; at most 64)',
      ],
      ['', 'a segment is empty'],
      ['a/', 'a segment is empty'],
      ['/a', 'a segment is empty'],
      ['a//b', 'a segment is empty'],
      ['__proto__', '"__proto__" may not be a segment'],
      ['kubernetes.io/__proto__/x', '"__proto__" may not be a segment'],
      ['a/constructor', '"constructor" may not be a segment'],
      ['a/prototype', '"prototype" may not be a segment'],
      ['a/0', '"0" is not an identifier (a letter or _, then letters, digits, _ . -; at most 64)'],
      ['a/b c', '"b c" is not an identifier (a letter or _, then letters, digits, _ . -; at most 64)'],
      [
        'claim:ref',
        '"claim:ref" is not an identifier (a letter or _, then letters, digits, _ . -; at most 64)',
      ],
    ];
    it.each(cases)('%j → %j', (path, problem) => {
      expect(claimPathProblem(path)).toBe(problem);
    });
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
    expect(() =>
      assertFederationIsCoherent({
        ...base,
        principalMapping: [
          { match: { 'kubernetes.io/serviceaccount/name': 'deployer' }, principal: 'prn_x' },
        ],
        contextClaims: ['kubernetes.io/namespace', 'kubernetes.io/pod/name'],
        taskClaim: 'kubernetes.io/pod/uid',
      }),
    ).not.toThrow();
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
    [
      'a rule condition through a prototype key',
      { principalMapping: [{ match: { 'kubernetes.io/__proto__/x': 'y' }, principal: 'prn_x' }] },
      /^principal_mapping\[0\]\.match: "kubernetes\.io\/__proto__\/x" is not a claim name: "__proto__" may not be a segment$/,
    ],
    [
      'a context claim deeper than four segments',
      { contextClaims: ['kubernetes.io/a/b/c/d'] },
      /^context_claims: "kubernetes\.io\/a\/b\/c\/d" is not a claim name: a claim path has at most 4 segments$/,
    ],
    [
      'an over-long task claim path',
      { taskClaim: ['a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60)].join('/') },
      /^task_claim: "a+\/b+\/c+" is not a claim name: a claim path has at most 128 characters$/,
    ],
    [
      'a context claim reaching constructor',
      { contextClaims: ['ok', 'kubernetes.io/constructor'] },
      /"constructor" may not be a segment/,
    ],
    ['token age too short', { maxTokenAgeSeconds: 5 }, /max_token_age/],
    ['token age too long', { maxTokenAgeSeconds: 86400 }, /max_token_age/],
  ];
  it.each(cases)('refuses %s', (_name, changes, detail) => {
    const err = refusal(() => assertFederationIsCoherent({ ...base, ...changes }));
    expect(err.code).toBe('invalid_request');
    expect(err.detail).toMatch(detail);
  });
});
