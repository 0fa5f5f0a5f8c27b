import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { collectMapping, federationBody, parseMapping, readJwksFile } from './trust.js';

describe('trust add --map parsing', () => {
  it('reads claim=value conditions, then the principal after the last colon', () => {
    expect(parseMapping('repository=acme/web,ref=refs/heads/main:deploy-pipeline')).toEqual({
      match: { repository: 'acme/web', ref: 'refs/heads/main' },
      principal: 'deploy-pipeline',
    });
  });

  it('keeps colons, globs and commas inside values', () => {
    expect(parseMapping('sub=repo:acme/*:ref:refs/tags/v*:release-bot')).toEqual({
      match: { sub: 'repo:acme/*:ref:refs/tags/v*' },
      principal: 'release-bot',
    });
    expect(parseMapping('environment=prod,eu,job_workflow_ref=acme/*:deployer')).toEqual({
      match: { environment: 'prod,eu', job_workflow_ref: 'acme/*' },
      principal: 'deployer',
    });
  });

  it('reads claim paths into nested claims (the Kubernetes rule of the README)', () => {
    expect(
      parseMapping(
        'kubernetes.io/serviceaccount/name=deployer,sub=system:serviceaccount:*:deployer:k8s-deployer',
      ),
    ).toEqual({
      match: { 'kubernetes.io/serviceaccount/name': 'deployer', sub: 'system:serviceaccount:*:deployer' },
      principal: 'k8s-deployer',
    });
  });

  it('keeps a value with = in it', () => {
    expect(parseMapping('query=a=b:svc').match).toEqual({ query: 'a=b' });
  });

  it.each([
    ['no principal', 'repository=acme/web'],
    ['an empty principal', 'repository=acme/web:'],
    ['a principal that is not a name', 'repository=acme/web:Deploy Bot'],
    ['no condition', ':deploy-pipeline'],
    ['a condition without =', 'repository:deploy-pipeline'],
    ['an empty value', 'repository=:deploy-pipeline'],
    ['a claim that is not a name', 'repo sitory=x:deploy-pipeline'],
    ['a claim given twice', 'ref=a,ref=b:deploy-pipeline'],
    ['a claim path of five segments', 'a/b/c/d/e=x:deploy-pipeline'],
    ['a claim path with an empty segment', 'kubernetes.io//namespace=x:deploy-pipeline'],
  ])('refuses %s', (_why, text) => {
    expect(() => parseMapping(text)).toThrow(InvalidArgumentError);
  });

  it('collects rules in the order given: the first match wins', () => {
    const rules = ['ref=refs/heads/main:deployer', 'ref=*:builder'].reduce<
      ReturnType<typeof collectMapping> | undefined
    >((all, m) => collectMapping(m, all), undefined);
    expect(rules?.map((r) => r.principal)).toEqual(['deployer', 'builder']);
  });
});

describe('trust add: the issuer keys and the body sent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-trust-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, value: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(value));
    return path;
  };
  const publicJwk = {
    kty: 'OKP',
    crv: 'Ed25519',
    x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
    kid: 'k1',
  };
  const base = {
    issuer: 'https://token.actions.githubusercontent.com',
    audience: 'tether',
    map: [{ match: { repository: 'acme/web' }, principal: 'deploy-pipeline' }],
  };

  it('reads a JWKS, or one JWK as a set of one', () => {
    expect(readJwksFile(file('set.json', { keys: [publicJwk] }))).toEqual({ keys: [publicJwk] });
    expect(readJwksFile(file('one.json', publicJwk))).toEqual({ keys: [publicJwk] });
  });

  it('refuses a file with private or secret key material, before anything is sent', () => {
    expect(() => readJwksFile(file('private.json', { keys: [{ ...publicJwk, d: 'secret' }] }))).toThrow(
      /private or secret key material/,
    );
    expect(() => readJwksFile(file('oct.json', { kty: 'oct', k: 'c2VjcmV0' }))).toThrow(/private or secret/);
    expect(() => readJwksFile(file('empty.json', { keys: [] }))).toThrow(CliError);
  });

  it('wants exactly one source of keys', () => {
    expect(() => federationBody('gha', base)).toThrow(/--jwks-uri or --jwks-file/);
    expect(() =>
      federationBody('gha', { ...base, jwksUri: 'https://x/jwks', jwksFile: file('k.json', publicJwk) }),
    ).toThrow(/one/);
  });

  it('maps the flags to the API fields, sending only what was given', () => {
    expect(
      federationBody('gha', {
        ...base,
        jwksUri: 'https://token.actions.githubusercontent.com/.well-known/jwks',
      }),
    ).toEqual({
      name: 'gha',
      issuer: base.issuer,
      audience: 'tether',
      jwks_uri: 'https://token.actions.githubusercontent.com/.well-known/jwks',
      principal_mapping: base.map,
    });
    expect(
      federationBody('gha', {
        ...base,
        jwksFile: file('k2.json', publicJwk),
        alg: ['EdDSA'],
        claim: ['ref', 'environment'],
        taskClaim: 'run_id',
        maxTokenAge: 300,
      }),
    ).toMatchObject({
      jwks: { keys: [publicJwk] },
      algorithms: ['EdDSA'],
      context_claims: ['ref', 'environment'],
      task_claim: 'run_id',
      max_token_age: 300,
    });
  });

  it('binds sessions to the subject token only when asked', () => {
    const base = {
      issuer: 'https://kubernetes.default.svc.cluster.local',
      audience: 'tether',
      jwksUri: 'https://cluster.example/openid/v1/jwks',
      map: [{ match: { 'kubernetes.io/namespace': 'team-a' }, principal: 'k8s-deployer' }],
    };
    expect(federationBody('cluster', base)).not.toHaveProperty('ends_with_subject_token');
    expect(federationBody('cluster', { ...base, endsWithSubjectToken: true })).toMatchObject({
      ends_with_subject_token: true,
    });
  });
});
