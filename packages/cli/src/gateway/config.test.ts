import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  GATEWAY_DEFAULTS,
  GatewayConfigError,
  readGatewayConfig,
  resolveGatewayConfig,
  validateGatewayConfig,
} from './config.js';

const minimal = () => ({
  listen: { port: 8701 },
  public_url: 'http://127.0.0.1:8701/',
  upstream: 'http://127.0.0.1:9801',
  identity: 'edge-gateway.json',
  routes: [
    { method: 'GET', path: '/rules/:edge', action: 'firewall:rules.read', resource: 'firewall/{edge}' },
  ],
});

/** The problems a configuration is refused with (fails the test if it is accepted). */
function problemsOf(value: unknown): readonly string[] {
  try {
    validateGatewayConfig(value, '/etc/tether');
  } catch (err) {
    if (err instanceof GatewayConfigError) return err.problems;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

describe('gateway configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-gateway-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fills in defaults and normalises URLs', () => {
    const s = validateGatewayConfig(minimal(), '/etc/tether');
    expect(s).toMatchObject({
      listen: { host: '127.0.0.1', port: 8701 },
      publicUrl: 'http://127.0.0.1:8701',
      upstream: 'http://127.0.0.1:9801',
      broker: undefined,
      issuer: undefined,
      audience: undefined,
      identityFile: '/etc/tether/edge-gateway.json',
      stalenessBudgetMs: GATEWAY_DEFAULTS.stalenessBudgetMs,
      upstreamTimeoutMs: GATEWAY_DEFAULTS.upstreamTimeoutMs,
    });
    expect(s.routes).toHaveLength(1);
  });

  it('reads every setting', () => {
    const s = validateGatewayConfig(
      {
        ...minimal(),
        listen: { host: '0.0.0.0', port: 0 },
        public_url: 'HTTPS://GW.Example.com:443/fw/',
        upstream: 'http://10.0.0.5:8080/api/v1',
        broker: 'http://broker.internal:8700',
        issuer: 'https://broker.example.com',
        audience: 'urn:acme:firewall',
        identity: '~/gw.json',
        staleness_budget: '1500ms',
        upstream_timeout: '2m',
      },
      '/etc/tether',
    );
    expect(s).toMatchObject({
      listen: { host: '0.0.0.0', port: 0 },
      publicUrl: 'https://gw.example.com/fw',
      upstream: 'http://10.0.0.5:8080/api/v1',
      broker: 'http://broker.internal:8700',
      issuer: 'https://broker.example.com',
      audience: 'urn:acme:firewall',
      identityFile: join(homedir(), 'gw.json'),
      stalenessBudgetMs: 1500,
      upstreamTimeoutMs: 120_000,
    });
  });

  it('reports every problem at once, each naming its field', () => {
    const problems = problemsOf({
      listen: { port: 70000, backlog: 5 },
      public_url: 'ftp://gw.example',
      upstream: 'http://user:pw@10.0.0.5',
      broker: 'not a url',
      staleness_budget: '10',
      upstream_timeout: '1h',
      routes: [
        { method: 'get', path: '/x', action: 'a:b', resource: 'r' },
        { method: 'GET', path: '/rules/:edge', action: 'fw:*', resource: 'firewall/{id}' },
        { method: 'GET', path: '/healthz', action: 'a:b', resource: 'r', extra: 1 },
        'not a route',
      ],
      proxy: true,
    });
    expect(problems).toEqual([
      'proxy: unknown setting (known: listen, public_url, upstream, broker, issuer, identity, audience, staleness_budget, upstream_timeout, header_timeout, request_timeout, max_body_size, dpop_nonce_window, routes, tls, allow_insecure_http)',
      'listen.backlog: unknown setting (known: host, port)',
      'listen.port: must be an integer from 0 to 65535',
      'public_url: must be an http(s) URL',
      'upstream: must not carry credentials',
      'broker: "not a url" is not an absolute URL',
      'staleness_budget: must be a duration such as 500ms, 10s or 2m',
      'upstream_timeout: must be a duration such as 500ms, 10s or 2m',
      'routes[0].method: must be *, one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or a list of them',
      'routes[1].action: must be one concrete action: printable, no spaces, no *',
      'routes[1].resource: {id} is not a parameter of the path (:edge)',
      'routes[2].extra: unknown setting (known: method, path, action, resource)',
      'routes[2].path: /healthz is answered by the gateway itself',
      'routes[3]: must be a mapping',
    ]);
  });

  it.each([
    ['no routes', { ...minimal(), routes: [] }, 'routes: must be a list of at least one route'],
    ['no listen', { ...minimal(), listen: undefined }, 'listen: is required'],
    ['a missing port', { ...minimal(), listen: { host: '::1' } }, 'listen.port: must be an integer'],
    ['no public_url', { ...minimal(), public_url: undefined }, 'public_url: must be a non-empty string'],
    [
      'an upstream with a query',
      { ...minimal(), upstream: 'http://u/?x=1' },
      'upstream: must not carry a query',
    ],
    [
      'a budget out of range',
      { ...minimal(), staleness_budget: '50ms' },
      'staleness_budget: must be from 100 ms',
    ],
    ['an empty audience', { ...minimal(), audience: ' ' }, 'audience: must be a non-empty string'],
    [
      'a bad route template',
      { ...minimal(), routes: [{ method: 'GET', path: '/a/:x', action: 'a:b', resource: 'r/{y}' }] },
      'routes[0].resource: {y} is not a parameter of the path (:x)',
    ],
    [
      'a bad route path',
      { ...minimal(), routes: [{ method: 'GET', path: 'a', action: 'a:b', resource: 'r' }] },
      'routes[0].path: must begin with /',
    ],
    [
      'a repeated route',
      {
        ...minimal(),
        routes: [
          { method: ['GET', 'POST'], path: '/a', action: 'a:b', resource: 'r' },
          { method: ['POST', 'GET'], path: '/a', action: 'a:c', resource: 'r' },
        ],
      },
      'routes[1]: repeats routes[0] (same method and path)',
    ],
    [
      'a method named twice',
      { ...minimal(), routes: [{ method: ['GET', 'GET'], path: '/a', action: 'a:b', resource: 'r' }] },
      'routes[0].method: names a method twice',
    ],
    [
      'a missing action',
      { ...minimal(), routes: [{ method: 'GET', path: '/a', resource: 'r' }] },
      'routes[0].action: must be a non-empty string',
    ],
  ])('refuses %s', (_why, value, problem) => {
    expect(problemsOf(value).join('\n')).toContain(problem);
  });

  it.each([
    ['a list', [1, 2]],
    ['a string', 'listen: 1'],
    ['nothing', null],
  ])('refuses a document that is %s', (_why, value) => {
    expect(problemsOf(value)).toEqual([': must be a mapping']);
  });

  it('reads a YAML file; a parse error, duplicate keys and aliases are refused with the file named', () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(
      good,
      [
        'listen: { host: 127.0.0.1, port: 8701 }',
        'public_url: http://127.0.0.1:8701',
        'upstream: http://127.0.0.1:9801',
        'identity: ./ids/gw.json',
        'routes:',
        // In a flow mapping `{` is syntax: the template is quoted.
        "  - { method: GET, path: /rules/:edge, action: 'firewall:rules.read', resource: 'firewall/{edge}' }",
      ].join('\n'),
    );
    expect(readGatewayConfig(good).identityFile).toBe(join(dir, 'ids', 'gw.json'));

    const cases: [string, string][] = [
      ['broken.yaml', 'listen: [1, 2'],
      ['dup.yaml', 'upstream: http://a\nupstream: http://b\n'],
      ['alias.yaml', 'a: &x { port: 1 }\nlisten: *x\n'],
    ];
    for (const [name, text] of cases) {
      const file = join(dir, name);
      writeFileSync(file, text);
      expect(() => readGatewayConfig(file), name).toThrow(GatewayConfigError);
      expect(() => readGatewayConfig(file), name).toThrow(file);
    }
    expect(() => readGatewayConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read .*missing\.yaml: ENOENT/);
  });

  it('the shipped example is valid', () => {
    const example = new URL('../../../../examples/gateway.yaml', import.meta.url);
    const s = validateGatewayConfig(parseYaml(readFileSync(example, 'utf8')), '/');
    expect(s.publicUrl).toBe('http://127.0.0.1:8701');
    expect(s.upstream).toBe('http://127.0.0.1:9801');
  });

  it('takes broker and audience from the identity and public URL unless set', () => {
    const identity = {
      broker: 'http://127.0.0.1:8700/',
      tenant: 'ten_1',
      principal: 'prn_1',
      key: { d: 'x' },
    };
    const resolved = resolveGatewayConfig(validateGatewayConfig(minimal(), '/'), identity);
    expect(resolved).toMatchObject({
      broker: 'http://127.0.0.1:8700',
      audience: 'http://127.0.0.1:8701',
      identity,
    });
    expect('identityFile' in resolved).toBe(false);
    const set = resolveGatewayConfig(
      validateGatewayConfig({ ...minimal(), broker: 'http://b:1', audience: 'urn:x' }, '/'),
      identity,
    );
    expect(set).toMatchObject({ broker: 'http://b:1', audience: 'urn:x' });
  });
});
