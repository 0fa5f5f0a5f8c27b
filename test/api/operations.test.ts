import type { LightMyRequestResponse } from 'fastify';
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, type JWK, jwtVerify } from 'jose';
import { sql } from 'kysely';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRIVATE_JWK_MEMBERS } from '../../packages/broker/src/domain/principal.js';
import { injectFetch, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { describeEachStore } from '../support/stores.js';

interface OpenApiOperation {
  parameters?: { in: string; name: string; required?: boolean; schema?: unknown }[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
}

/**
 * The routes Fastify actually serves, read from its route tree (`printRoutes`), as
 * `METHOD /path/{param}`. HEAD is left out: Fastify adds it to every GET by itself.
 */
function servedRoutes(tree: string): string[] {
  const routes: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    const path = (stack[depth - 1] ?? '') + m[2]!;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) {
      routes.push(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return routes;
}

/** Writes that take no body on purpose, and why. */
/** RFC 8935 push delivery of Security Event Tokens: its own media type and error format. */
const SET_PUSH = 'POST /v1/signals';

const BODYLESS_WRITES: Record<string, string> = {
  'PUT /v1/groups/{ref}/members/{principal}': 'the membership is entirely in the URL',
  // The ticket system's own JSON, read as the exact bytes its HMAC signs: no schema may parse
  // or reject it before the signature is checked.
  'POST /v1/webhooks/github/{id}': 'a signed GitHub payload, kept raw for its HMAC',
  'POST /v1/webhooks/jira/{id}': 'a signed Jira payload, kept raw for its HMAC',
  'POST /v1/webhooks/generic/{id}': 'a signed generic payload, kept raw for its HMAC',
};

describeEachStore('operations and discovery', (fixture) => {
  let b: TestBroker;
  /** Every response this suite received, to check the headers all of them must carry. */
  const seen: { what: string; response: LightMyRequestResponse }[] = [];
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const response = await b.app.inject({ method: 'GET', url, headers });
    seen.push({ what: `GET ${url}`, response });
    return response;
  };

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
  });
  afterAll(async () => {
    await b.close();
    await fixture.cleanup();
  });

  it('/healthz answers 200 ok', async () => {
    const r = await get('/healthz');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
  });

  it('/readyz answers 200 with the store in use', async () => {
    const r = await get('/readyz');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ready', store: fixture.dialect, readiness: 'ready' });
  });

  it('/metrics is Prometheus text counting requests by route pattern, never by raw URL', async () => {
    const admin = b.client(b.adminIdentity);
    await admin.call('GET', '/v1/principals/root-admin');
    await get('/healthz');
    await get('/no-such-page-7f3a');
    const r = await get('/metrics');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toContain('# TYPE tether_http_requests_total counter');
    const line = (route: string, method: string, status: number) =>
      new RegExp(
        `^tether_http_requests_total\\{(?=.*route="${route.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}")(?=.*method="${method}")(?=.*status="${status}")[^}]*\\} [1-9]\\d*$`,
        'm',
      );
    expect(r.body).toMatch(line('/healthz', 'GET', 200));
    expect(r.body).toMatch(line('/v1/principals/:ref', 'GET', 200));
    expect(r.body).toMatch(line('/oauth/token', 'POST', 200));
    // Label values stay bounded: no record names, no unmatched URLs.
    expect(r.body).not.toContain('root-admin');
    expect(r.body).not.toContain('no-such-page-7f3a');
  });

  describe('/openapi.json', () => {
    let spec: OpenApiDocument;
    let routes: string[];
    beforeAll(async () => {
      const r = await get('/openapi.json');
      expect(r.statusCode).toBe(200);
      spec = r.json();
      routes = servedRoutes(b.app.printRoutes({ commonPrefix: false }));
    });

    it('is an OpenAPI 3.1 document', () => {
      expect(spec.openapi).toBe('3.1.0');
      expect(spec.info.title).toBeTruthy();
    });

    it('reads the served routes (the route-tree parser works)', () => {
      expect(routes).toContain('POST /v1/requests');
      expect(routes).toContain('DELETE /v1/principals/{ref}/keys/{kid}');
      expect(routes.filter((r) => r.includes(' /v1/')).length).toBeGreaterThanOrEqual(25);
    });

    it('documents every /v1 route, and no route that is not served', () => {
      const v1 = routes.filter((r) => r.split(' ')[1]!.startsWith('/v1/'));
      const documented = Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      );
      expect(v1.filter((r) => !documented.includes(r))).toEqual([]);
      expect(documented.filter((r) => !routes.includes(r))).toEqual([]);
    });

    it('gives every /v1 operation a 2xx response schema and its problem responses', () => {
      for (const [path, ops] of Object.entries(spec.paths).filter(([p]) => p.startsWith('/v1/'))) {
        for (const [method, op] of Object.entries(ops)) {
          const where = `${method.toUpperCase()} ${path}`;
          const ok = Object.entries(op.responses ?? {}).filter(([status]) => /^2\d\d$/.test(status));
          expect(ok.length, `${where}: no 2xx response`).toBeGreaterThan(0);
          for (const [status, response] of ok) {
            if (status === '204') continue; // No Content (SSF stream deletion): nothing to describe
            expect(
              response.content?.['application/json']?.schema,
              `${where} ${status}: no schema`,
            ).toBeTruthy();
          }
          if (where === SET_PUSH) {
            // RFC 8935 §2.4: a push receiver answers errors as {err, description}, 400 only.
            expect(op.responses?.['400']?.content?.['application/json']?.schema, where).toBeTruthy();
            continue;
          }
          for (const status of ['400', '401', '403', '404']) {
            expect(
              op.responses?.[status]?.content?.['application/json']?.schema,
              `${where} ${status}`,
            ).toBeTruthy();
          }
        }
      }
    });

    it('gives every /v1 operation its path parameters and, for writes, a request body schema', () => {
      for (const [path, ops] of Object.entries(spec.paths).filter(([p]) => p.startsWith('/v1/'))) {
        const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
        for (const [method, op] of Object.entries(ops)) {
          const where = `${method.toUpperCase()} ${path}`;
          for (const name of params) {
            const p = op.parameters?.find((x) => x.in === 'path' && x.name === name);
            expect(p?.schema, `${where}: path parameter ${name}`).toBeTruthy();
          }
          if (['post', 'put', 'patch'].includes(method) && !(where in BODYLESS_WRITES)) {
            const media = where === SET_PUSH ? 'application/secevent+jwt' : 'application/json';
            expect(op.requestBody?.content?.[media]?.schema, `${where}: request body`).toBeTruthy();
          }
        }
      }
    });

    it('documents the query parameters of the list routes', () => {
      const names = (path: string) =>
        (spec.paths[path]?.get?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      expect(names('/v1/requests')).toEqual(expect.arrayContaining(['state', 'principal', 'limit']));
      expect(names('/v1/audit')).toEqual(expect.arrayContaining(['request', 'ticket', 'limit']));
    });

    it('documents the public entry points too', () => {
      for (const path of [
        '/oauth/token',
        '/.well-known/oauth-authorization-server',
        '/.well-known/jwks.json',
      ]) {
        expect(spec.paths[path], path).toBeDefined();
      }
    });
  });

  describe('discovery', () => {
    it('serves RFC 8414 metadata that a standard OAuth client accepts', async () => {
      const r = await get('/.well-known/oauth-authorization-server');
      expect(r.statusCode).toBe(200);
      const meta = r.json();
      expect(meta.issuer).toBe(PUBLIC_URL);
      expect(meta.token_endpoint).toBe(`${PUBLIC_URL}/oauth/token`);
      expect(meta.jwks_uri).toBe(`${PUBLIC_URL}/.well-known/jwks.json`);
      expect(meta.grant_types_supported).toContain('client_credentials');
      expect(meta.token_endpoint_auth_methods_supported).toEqual(['private_key_jwt']);
      expect(meta.token_endpoint_auth_signing_alg_values_supported).toContain('EdDSA');
      for (const alg of meta.token_endpoint_auth_signing_alg_values_supported as string[]) {
        expect(alg).not.toMatch(/^(none|HS\d+)$/i);
      }
      expect(meta.response_types_supported).toBeDefined();

      // oauth4webapi checks the issuer against the URL it was discovered from (RFC 8414 §3.3).
      const issuer = new URL(PUBLIC_URL);
      const response = await oauth.discoveryRequest(issuer, {
        algorithm: 'oauth2',
        [oauth.customFetch]: injectFetch(b.app),
        [oauth.allowInsecureRequests]: true,
      });
      const as = await oauth.processDiscoveryResponse(issuer, response);
      expect(as.issuer).toBe(PUBLIC_URL);
    });

    it('publishes only public Ed25519 keys, each with its RFC 7638 thumbprint as kid, that verify its tokens', async () => {
      const r = await get('/.well-known/jwks.json');
      expect(r.statusCode).toBe(200);
      const jwks = r.json() as { keys: JWK[] };
      expect(jwks.keys.length).toBeGreaterThan(0);
      for (const key of jwks.keys) {
        expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
        expect(key).not.toHaveProperty('d');
        for (const member of PRIVATE_JWK_MEMBERS) expect(key, member).not.toHaveProperty(member);
        expect(key.kid).toBe(await calculateJwkThumbprint(key));
      }
      expect(new Set(jwks.keys.map((k) => k.kid)).size).toBe(jwks.keys.length);

      const token = await b.client(b.adminIdentity).bearerToken();
      expect(jwks.keys.map((k) => k.kid)).toContain(decodeProtectedHeader(token).kid);
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
        issuer: PUBLIC_URL,
        currentDate: new Date(b.clock.now()),
      });
      expect(payload.sub).toBe(b.admin.principal.id);
    });
  });

  describe('errors and request ids', () => {
    it('answers an unknown route with a 404 route_not_found problem', async () => {
      for (const [method, url] of [
        ['GET', '/nope'],
        ['GET', '/v1/nope'],
        ['DELETE', '/healthz'],
        ['POST', '/v1/principals/root-admin'],
      ] as const) {
        const r = await b.app.inject({ method, url });
        seen.push({ what: `${method} ${url}`, response: r });
        expect(r.statusCode, `${method} ${url}`).toBe(404);
        expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
        const problem = r.json();
        expect(problem).toMatchObject({
          type: 'https://tether.dev/errors#route_not_found',
          status: 404,
          code: 'route_not_found',
        });
        expect(problem.instance).toBe(r.headers['x-request-id']);
      }
    });

    it('refuses /v1 without a token with a 401 problem', async () => {
      const r = await get('/v1/me');
      expect(r.statusCode).toBe(401);
      expect(r.json()).toMatchObject({ code: 'unauthenticated' });
      expect(r.headers['www-authenticate']).toMatch(/^Bearer\b/);
    });

    it('puts a fresh x-request-id on every response, ignoring one the client sends', async () => {
      const chosen = await get('/healthz', { 'x-request-id': 'client-chosen-id' });
      expect(chosen.headers['x-request-id']).not.toBe('client-chosen-id');
      const oauthError = await b.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: 'grant_type=password',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      seen.push({ what: 'POST /oauth/token', response: oauthError });
      expect(oauthError.statusCode).toBe(400);

      expect(seen.length).toBeGreaterThanOrEqual(10);
      const ids = seen.map(({ what, response }) => {
        const id = response.headers['x-request-id'];
        expect(id, what).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        return id;
      });
      expect(new Set(ids).size).toBe(ids.length);
    });
  });

  it('/readyz answers 503 when the store schema is not one this build can serve', async () => {
    const store = await fixture.open();
    const other = await startTestBroker(store);
    try {
      await sql`insert into kysely_migration (name, timestamp) values ('9999-newer', ${new Date().toISOString()})`.execute(
        store.db,
      );
      const r = await other.app.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toEqual({
        status: 'not_ready',
        store: fixture.dialect,
        readiness: 'schema_not_current',
      });
      // Liveness is a different question: the process is fine.
      expect((await other.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await other.close();
    }
  });
});
