import { createHash } from 'node:crypto';
import { ERROR_CATALOGUE, ERROR_CODES, type ErrorCode } from '@tether-broker/protocol';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { decodeJwt, decodeProtectedHeader, importJWK, SignJWT } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { CLIENT_KEY_CLAIM, issueApiToken } from '../../packages/broker/src/auth/api-token.js';
import type { Dialect, StoreHandle } from '../../packages/broker/src/store/database.js';
import {
  createClientAssertion,
  createDpopProof,
  generateSessionKey,
  type SessionKey,
} from '../../packages/client/src/index.js';
import { newKeyPair, PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import {
  describeCase,
  type FuzzCase,
  type FuzzContext,
  malformedRequests,
  type OpenApiDocument,
  type RouteSpec,
  routeSpecs,
} from '../support/fuzz-inputs.js';
import { setUpScenario } from '../support/scenario.js';
import { type StoreFixture, storeTableNames } from '../support/stores.js';
import { addWebhook, deliver, genericTicket } from '../tickets/deliveries.js';

/**
 * Property-based fuzz of the whole HTTP API: every route the app serves gets malformed
 * requests (bad path params, queries, bodies, media types, sizes, tokens), sent as the tenant
 * admin so that authorisation never hides a validation gap. The admin calls with a Bearer token
 * or with a DPoP-bound token and a proof per request (valid, or broken: wrong method, URL,
 * token, key, stale, replayed). Each answer must be a 4xx in the
 * documented error shape, and the store must not change at all, audit trail included.
 *
 * Runs per route: 400 on SQLite; 150 on PostgreSQL, where each request costs about twice as
 * much (the dialect-specific failures, such as a number PostgreSQL cannot bind, show within a
 * hundred runs; the input generator is the same on both). With 137 routes, 1,000 on SQLite took
 * the file to five minutes of a 30-minute CI budget; 400 keeps over 50,000 inputs. Override both with
 * TETHER_FUZZ_RUNS; reproduce a failure with the base seed the run prints: TETHER_FUZZ_SEED=<seed>.
 */
const RUNS_OVERRIDE = process.env.TETHER_FUZZ_RUNS ? Number(process.env.TETHER_FUZZ_RUNS) : undefined;
const RUNS: Record<Dialect, number> = {
  sqlite: RUNS_OVERRIDE ?? 400,
  postgres: RUNS_OVERRIDE ?? 150,
};
const SEED = Number(process.env.TETHER_FUZZ_SEED ?? 0x7e7e5);
/** Full store snapshot every this many runs (the audit head is compared after every run). */
const SNAPSHOT_EVERY = 100;

/** The routes that exist as this test is written; the enumeration must find at least these. */
const KNOWN_ROUTES = [
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /openapi.json',
  'GET /.well-known/oauth-authorization-server',
  'GET /.well-known/jwks.json',
  'POST /oauth/token',
  'GET /v1/me',
  'GET /v1/tenants',
  'GET /v1/tenants/{id}',
  'GET /v1/principals',
  'POST /v1/principals',
  'GET /v1/principals/{ref}',
  'PATCH /v1/principals/{ref}',
  'POST /v1/principals/{ref}/keys',
  'DELETE /v1/principals/{ref}/keys/{kid}',
  'GET /v1/groups',
  'POST /v1/groups',
  'GET /v1/groups/{ref}',
  'DELETE /v1/groups/{ref}',
  'PUT /v1/groups/{ref}/members/{principal}',
  'DELETE /v1/groups/{ref}/members/{principal}',
  'GET /v1/privileges',
  'POST /v1/privileges',
  'GET /v1/privileges/{ref}',
  'PATCH /v1/privileges/{ref}',
  'DELETE /v1/privileges/{ref}',
  'GET /v1/policies',
  'PUT /v1/policies',
  'POST /v1/policies/validate',
  'GET /v1/policies/versions',
  'GET /v1/policies/versions/{version}',
  'POST /v1/requests',
  'GET /v1/requests',
  'GET /v1/requests/{id}',
  'POST /v1/requests/{id}/approve',
  'POST /v1/requests/{id}/deny',
  'POST /v1/requests/{id}/cancel',
  'GET /v1/audit',
  'GET /v1/audit/verify',
  'GET /v1/webhooks',
  'POST /v1/webhooks',
  'GET /v1/webhooks/{ref}',
  'DELETE /v1/webhooks/{ref}',
  'POST /v1/webhooks/github/{id}',
  'POST /v1/webhooks/jira/{id}',
  'POST /v1/webhooks/generic/{id}',
  'GET /v1/tickets',
  'GET /v1/tickets/{ref}',
  'POST /v1/tickets/{ref}/close',
  'POST /v1/peps/{pep}/ack',
  'POST /v1/decisions',
  'GET /v1/sessions/{id}/receipt',
  'POST /v1/sessions/{id}/extend',
  'POST /v1/signals',
  'GET /v1/signal-transmitters',
  'POST /v1/signal-transmitters',
  'GET /v1/signal-transmitters/{ref}',
  'DELETE /v1/signal-transmitters/{ref}',
];

/** SET push delivery (RFC 8935) answers its own error format, `{err, description}`, on these routes. */
const SET_PUSH_ROUTES = new Set(['POST /v1/signals']);
/** RFC 8935 §2.4 (registered in §7.1). */
const SET_ERRORS = [
  'invalid_request',
  'invalid_key',
  'invalid_issuer',
  'invalid_audience',
  'authentication_failed',
  'access_denied',
];

/**
 * RFC 6749 §5.2, plus RFC 7009 §2.2.1 for the revocation endpoint, and RFC 6750 §3.1 for a
 * caller of introspection or revocation whose own token is refused (RFC 7662 §2.3).
 */
const OAUTH_ERRORS = [
  'invalid_token',
  'insufficient_scope',
  'unsupported_token_type',
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
];

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

type Snapshot = Record<string, { rows: number; sha256: string; content?: unknown[] }>;

/**
 * The one table a refused request may write: a DPoP proof that verified is spent (RFC 9449
 * §11.1) even when the request it came with is then refused. It is checked on its own: it may
 * hold only the ids of valid proofs this test sent.
 */
const SPENT_PROOFS_TABLE = 'dpop_jtis';

/** Every table of the store: its row count and a hash of all its rows (audit heads verbatim). */
async function snapshotStore(store: StoreHandle): Promise<Snapshot> {
  const tables = (await storeTableNames(store)).filter((name) => name !== SPENT_PROOFS_TABLE);
  const snapshot: Snapshot = {};
  for (const name of tables) {
    const t = { name };
    const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(t.name)}`.execute(store.db);
    const lines = rows
      .map((r) => JSON.stringify(Object.entries(r).sort(([a], [b]) => a.localeCompare(b))))
      .sort();
    snapshot[t.name] = {
      rows: rows.length,
      sha256: createHash('sha256').update(lines.join('\n')).digest('hex'),
      ...(t.name === 'audit_heads' ? { content: rows } : {}),
    };
  }
  return snapshot;
}

async function auditHeads(store: StoreHandle): Promise<string> {
  const rows = await store.db.selectFrom('audit_heads').selectAll().orderBy('tenant_id').execute();
  return JSON.stringify(rows);
}

/**
 * How the admin's requests are authenticated in a case: a Bearer token, or a DPoP-bound token
 * with a proof made for that very request (RFC 9449 §7.1), either valid or broken one way.
 */
type Caller =
  | { kind: 'bearer' }
  | {
      kind: 'dpop';
      proof: 'valid' | 'wrong-method' | 'wrong-url' | 'other-token' | 'other-key' | 'stale' | 'replayed';
    };

const callers: fc.Arbitrary<Caller> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'bearer' } as const) },
  { weight: 2, arbitrary: fc.constant({ kind: 'dpop', proof: 'valid' } as const) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('wrong-method', 'wrong-url', 'other-token', 'other-key', 'stale', 'replayed')
      .map((proof) => ({ kind: 'dpop', proof }) as Caller),
  },
);

interface DpopCaller {
  key: SessionKey;
  otherKey: SessionKey;
  token: string;
  /** The last valid proof sent, for the replay lever. */
  lastProof?: string;
  /** The `jti` of every valid proof sent: the only rows the spent-proof table may gain. */
  sentJtis: Set<string>;
  /** `jkt:jti` of the rows the table held before the fuzz began (the set-up's own proofs). */
  before: Set<string>;
}

/** Rewrites an admin-authenticated case to use the DPoP-bound admin token and a proof. */
async function asDpopCaller(
  c: FuzzCase,
  caller: Extract<Caller, { kind: 'dpop' }>,
  dpop: DpopCaller,
  adminToken: string,
  now: number,
): Promise<FuzzCase> {
  if (c.headers.authorization !== `Bearer ${adminToken}`) return c;
  const path = c.url.split('?')[0] ?? '/';
  const target = { method: c.method, url: `${PUBLIC_URL}${path}`, accessToken: dpop.token, now };
  let proof: string;
  switch (caller.proof) {
    case 'valid':
      proof = await createDpopProof(dpop.key, target);
      break;
    case 'wrong-method':
      proof = await createDpopProof(dpop.key, { ...target, method: c.method === 'GET' ? 'POST' : 'GET' });
      break;
    case 'wrong-url':
      proof = await createDpopProof(dpop.key, { ...target, url: `${PUBLIC_URL}/v1/elsewhere` });
      break;
    case 'other-token':
      proof = await createDpopProof(dpop.key, { ...target, accessToken: `${dpop.token}x` });
      break;
    case 'other-key':
      proof = await createDpopProof(dpop.otherKey, target);
      break;
    case 'stale':
      proof = await createDpopProof(dpop.key, { ...target, now: now - 3_600_000 });
      break;
    case 'replayed':
      proof = dpop.lastProof ?? (await createDpopProof(dpop.key, { ...target, now: now - 3_600_000 }));
      break;
  }
  if (caller.proof === 'valid') {
    dpop.lastProof = proof;
    dpop.sentJtis.add(String(decodeJwt(proof).jti));
  }
  return { ...c, headers: { ...c.headers, authorization: `DPoP ${dpop.token}`, dpop: proof } };
}

/** Throws unless the spent-proof table holds nothing but valid proofs this test sent. */
async function checkSpentProofs(store: StoreHandle, dpop: DpopCaller): Promise<void> {
  const rows = await store.db.selectFrom('dpop_jtis').select(['jkt', 'jti']).execute();
  const foreign = rows.filter(
    (r) => !dpop.before.has(`${r.jkt}:${r.jti}`) && (!dpop.sentJtis.has(r.jti) || r.jkt !== dpop.key.jkt),
  );
  if (foreign.length > 0)
    throw new Error(
      `the spent-proof table holds ids of proofs that were not valid: ${JSON.stringify(foreign[0])}`,
    );
}

/** Throws unless `res` is a refusal in the route's documented error shape. */
function checkRefusal(route: RouteSpec, c: FuzzCase, res: LightMyRequestResponse): void {
  const fail: (why: string) => never = (why) => {
    throw new Error(
      `${why}\n  sent:     ${describeCase(c)}\n  answered: ${res.statusCode} ${String(
        res.headers['content-type'],
      )} ${res.body.slice(0, 400)}`,
    );
  };
  if (res.statusCode >= 500) fail('server error on malformed input');
  if (res.statusCode < 400) fail('malformed input was accepted');
  const type = String(res.headers['content-type'] ?? '');
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    fail('error body is not JSON');
  }
  if (SET_PUSH_ROUTES.has(`${route.method} ${route.path}`)) {
    if (res.statusCode !== 400) fail('SET push refusal is not 400 (RFC 8935 §2.3)');
    if (!type.startsWith('application/json')) fail('SET push error is not application/json');
    if (!SET_ERRORS.includes(String(body.err))) fail('SET push error code is not a registered one');
    if (typeof body.description !== 'string') fail('SET push error has no description');
    if (Object.keys(body).length !== 2) fail('SET push error has members besides err and description');
    return;
  }
  if (route.oauth) {
    if (!type.startsWith('application/json')) fail('OAuth error is not application/json');
    if (!OAUTH_ERRORS.includes(String(body.error))) fail('OAuth error code is not a registered one');
    if (typeof body.error_description !== 'string') fail('OAuth error has no error_description');
    if (res.headers['cache-control'] !== 'no-store') fail('OAuth error is cacheable');
    return;
  }
  if (!type.startsWith('application/problem+json')) fail('error is not application/problem+json');
  if (!ERROR_CODES.includes(body.code as ErrorCode)) fail('problem code is not in the catalogue');
  const code = body.code as ErrorCode;
  if (code === 'internal_error') fail('internal_error on malformed input');
  if (body.status !== res.statusCode || ERROR_CATALOGUE[code].status !== res.statusCode)
    fail('problem status does not match the HTTP status and the catalogue');
  for (const field of ['type', 'title', 'detail'])
    if (typeof body[field] !== 'string') fail(`problem has no ${field}`);
}

/**
 * The fuzz suite on one store. Each store has its own test file (`fuzz.sqlite.test.ts`,
 * `fuzz.postgres.test.ts`): the two halves are the suite's longest files, and apart they run
 * side by side.
 */
export function fuzzSuite(fixture: StoreFixture): void {
  let b: TestBroker;
  let routes: RouteSpec[];
  let fuzz: FuzzContext;
  let dpop: DpopCaller;
  afterAll(async () => {
    await b?.close();
    await fixture.cleanup();
  });

  beforeAll(async () => {
    b = await startTestBroker(await fixture.open());
    const s = await setUpScenario(b);
    const pending = await s.operator.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-7',
      justification: 'fuzz target',
      duration: 1800,
    });
    expect(pending.state).toBe('pending');
    // Ticket sources of every kind, and a ticket in the register, for the ticket routes to aim at.
    const webhooks = await Promise.all(
      (['github', 'jira', 'generic'] as const).map((kind) => addWebhook(s.admin, kind, `${kind}-src`)),
    );
    const generic = webhooks[2]!;
    const fed = await deliver(
      b,
      generic,
      genericTicket(generic.secret, { state: 'open', at: b.clock.now() }),
    );
    expect(fed.statusCode).toBe(200);
    // A CAEP transmitter, for the transmitter routes to aim at (and for pushed SETs to name).
    const transmitterKey = await newKeyPair();
    await s.admin.call('POST', '/v1/signal-transmitters', {
      name: 'acme-idp',
      issuer: 'https://idp.acme.example',
      jwks: { keys: [{ ...transmitterKey.publicJwk, kid: 'idp-1' }] },
    });
    const olivia = await s.admin.call<{ keys: { kid: string }[] }>('GET', '/v1/principals/olivia');
    const operators = await s.admin.call<{ id: string }>('GET', '/v1/groups/operators');
    const adminToken = await s.admin.bearerToken();
    // The same admin, with a DPoP-bound token (RFC 9449 §5) obtained as the SDK and CLI do.
    const dpopKey = await generateSessionKey();
    const tokenUrl = `${PUBLIC_URL}/oauth/token`;
    const tokenProof = await createDpopProof(dpopKey, { method: 'POST', url: tokenUrl, now: b.clock.now() });
    const bound = await b.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: tokenProof,
      },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await createClientAssertion(b.adminIdentity, {
          audience: tokenUrl,
          now: b.clock.now(),
        }),
      }).toString(),
    });
    expect(bound.statusCode).toBe(200);
    expect((bound.json() as { token_type: string }).token_type).toBe('DPoP');
    dpop = {
      key: dpopKey,
      otherKey: await generateSessionKey(),
      token: (bound.json() as { access_token: string }).access_token,
      sentJtis: new Set([String(decodeJwt(tokenProof).jti)]),
      before: new Set(),
    };

    // Tokens an attacker holds: expired, wrong issuer, foreign-signed, unsigned, tampered,
    // and one for a principal that does not exist.
    // Each names the admin's real client key, so that it is refused for its own fault alone.
    const clientKid = String(decodeJwt(adminToken)[CLIENT_KEY_CLAIM]);
    const signed = (now: number, issuer = PUBLIC_URL, principal = b.admin.principal) =>
      issueApiToken(b.ctx.keys, principal, { issuer, ttlSeconds: 60, now, clientKid }).then((t) => t.token);
    const foreign = await newKeyPair();
    const foreignKey = await importJWK(foreign.privateJwk, 'EdDSA');
    const header = decodeProtectedHeader(adminToken);
    const [h, p] = adminToken.split('.');
    const tamperAt = Math.floor((p ?? '').length / 2);
    const tampered = `${h}.${(p ?? '').slice(0, tamperAt)}${(p ?? '')[tamperAt] === 'A' ? 'B' : 'A'}${(p ?? '').slice(tamperAt + 1)}.${adminToken.split('.')[2]}`;
    const badTokens = [
      await signed(b.clock.now() - 86_400_000),
      await signed(b.clock.now(), 'https://evil.example'),
      await signed(b.clock.now(), PUBLIC_URL, { ...b.admin.principal, id: 'prn_00000000000000000000000000' }),
      await new SignJWT(decodeJwt(adminToken))
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', ...(header.kid ? { kid: header.kid } : {}) })
        .sign(foreignKey),
      `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${p}.`,
      tampered,
      adminToken.slice(0, -4),
    ];

    fuzz = {
      adminToken,
      badTokens,
      bodyLimitBytes: b.ctx.config.bodyLimitBytes,
      targets: {
        'tenants/id': [b.tenant.id],
        'requests/id': [pending.id],
        'groups/ref': ['operators', 'approvers', operators.id],
        'groups/principal': ['olivia', 'oscar', 'deploy-bot'],
        'principals/ref': ['olivia', 'deploy-bot', 'root-admin'],
        'principals/kid': olivia.keys.map((k) => k.kid),
        'privileges/ref': ['firewall-admin', 'deploy'],
        'policies/version': ['1', '2'],
        'webhooks/ref': ['github-src', 'generic-src', ...webhooks.map((w) => w.id)],
        'webhooks/id': webhooks.map((w) => w.id),
        'tickets/ref': ['CHG-4411', 'NET-7'],
        'signal-transmitters/ref': ['acme-idp'],
      },
    };

    const doc = JSON.parse((await b.app.inject({ url: '/openapi.json' })).body) as OpenApiDocument;
    routes = routeSpecs(b.app.printRoutes({ commonPrefix: false }), doc);
  });

  it('enumerates every route the app serves, documented or hidden', () => {
    const found = routes.map((r) => `${r.method} ${r.path}`);
    expect(found).toEqual(expect.arrayContaining(KNOWN_ROUTES));
    expect(routes.filter((r) => r.hidden).map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining(['GET /metrics', 'GET /openapi.json']),
    );
    // Every path parameter of a documented route has a schema to break.
    for (const r of routes.filter((x) => !x.hidden))
      for (const p of r.params)
        expect(Object.keys(p.schema), `${r.method} ${r.path} {${p.name}}`).not.toEqual([]);
  });

  const runs = RUNS[fixture.dialect];
  it(`answers ${runs} malformed requests per route with a 4xx error document and writes nothing`, async () => {
    const store = b.ctx.store;
    // Refusals log at info; tens of thousands of them only slow the run. Errors still log.
    const logLevel = b.app.log.level;
    b.app.log.level = 'warn';
    onTestFinished(() => {
      b.app.log.level = logLevel;
    });
    const before = await snapshotStore(store);
    for (const r of await store.db.selectFrom('dpop_jtis').select(['jkt', 'jti']).execute())
      dpop.before.add(`${r.jkt}:${r.jti}`);
    const failures: string[] = [];
    const started = performance.now();
    const cpuAtStart = process.cpuUsage();
    console.log(`fuzz [${store.dialect}]: ${routes.length} routes × ${runs} runs, seed ${SEED}`);

    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      // Per route, from its name: adding a route leaves every other route's cases as they were.
      const seed =
        (SEED ^ Number.parseInt(createHash('sha256').update(name).digest('hex').slice(0, 8), 16)) | 0;
      const levers: Record<string, number> = {};
      const callersSeen: Record<string, number> = {};
      const statuses: Record<number, number> = {};
      const recent: string[] = [];
      let done = 0;
      const routeStarted = performance.now();
      b.logs.length = 0;
      // Each route is held to the state it started from, so one route's write is reported
      // once (and the final check still compares against the very first snapshot).
      const baseline = await snapshotStore(store);
      const headsAtStart = await auditHeads(store);
      try {
        await fc.assert(
          fc.asyncProperty(malformedRequests(route, fuzz), callers, async (generated, caller) => {
            done++;
            const c =
              caller.kind === 'dpop'
                ? await asDpopCaller(generated, caller, dpop, fuzz.adminToken, b.clock.now())
                : generated;
            const callerName = caller.kind === 'dpop' ? `dpop-${caller.proof}` : 'bearer';
            callersSeen[callerName] = (callersSeen[callerName] ?? 0) + 1;
            levers[c.lever] = (levers[c.lever] ?? 0) + 1;
            recent.push(describeCase(c));
            if (recent.length > SNAPSHOT_EVERY) recent.shift();
            const res = await b.app.inject({
              method: c.method as 'GET',
              url: c.url,
              headers: c.headers,
              ...(c.payload === undefined ? {} : { payload: c.payload }),
            });
            statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
            checkRefusal(route, c, res);
            if ((await auditHeads(store)) !== headsAtStart)
              throw new Error(`the audit trail grew\n  sent: ${describeCase(c)}`);
            if (done % SNAPSHOT_EVERY === 0) {
              await checkSpentProofs(store, dpop);
              const now = await snapshotStore(store);
              if (JSON.stringify(now) !== JSON.stringify(baseline))
                throw new Error(
                  `the store changed within the last ${recent.length} cases:\n  ${recent.join('\n  ')}`,
                );
            }
          }),
          { numRuns: runs, seed, endOnFailure: true, includeErrorInReport: true },
        );
        const errorLines = b.logs.filter((l) => (JSON.parse(l) as { level: number }).level >= 50);
        if (errorLines.length > 0) failures.push(`${name}: error logged: ${errorLines[0]?.slice(0, 400)}`);
        expect(await snapshotStore(store), `${name}: store unchanged`).toEqual(baseline);
        await checkSpentProofs(store, dpop);
      } catch (err) {
        failures.push(`${name} (base seed ${SEED}): ${(err as Error).message}`);
      }
      console.log(
        `  ${name}: ${done} runs, ${Math.round(performance.now() - routeStarted)} ms; ` +
          `levers ${JSON.stringify(levers)}; callers ${JSON.stringify(callersSeen)}; ` +
          `statuses ${JSON.stringify(statuses)}`,
      );
    }

    console.log(
      `fuzz [${store.dialect}]: ${routes.length} routes × ${runs} runs = ${routes.length * runs} requests in ` +
        `${Math.round(performance.now() - started)} ms (${Math.round(cpuMs(process.cpuUsage(cpuAtStart)))} ms CPU)`,
    );
    expect(failures).toEqual([]);
    expect(await snapshotStore(store)).toEqual(before);
  }, 900_000);
}
