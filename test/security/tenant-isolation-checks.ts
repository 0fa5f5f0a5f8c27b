import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ERROR_CATALOGUE, ERROR_CODES, type ErrorCode } from '@tether-broker/protocol';
import { sql } from 'kysely';
import type { StoreHandle } from '../../packages/broker/src/store/database.js';
import type { BrokerClient } from '../../packages/client/src/index.js';

/**
 * What the tenant-isolation suite (tenant-isolation-suite.ts) aims and checks: the tenants and
 * their objects, which routes may answer what, the store snapshots that show no other tenant
 * changed, and the shape a refusal must have.
 */
export interface Who {
  id: string;
  name: string;
}

/** One tenant, its admin, and the objects the test aims the other tenants at. */
export interface Side {
  tag: 'alpha' | 'beta' | 'zeta';
  tenant: Who;
  admin: BrokerClient;
  adminId: string;
  adminKid: string;
  identity: IdentityFile;
  token: string;
  requester: Who & { kid: string; client: BrokerClient; token: string };
  approver: Who;
  pep: Who & { token: string };
  receiver: Who & { token: string };
  stream: string;
  group: Who;
  privilege: Who;
  audience: string;
  pending: string;
  active: string;
  session: string;
  endedSession: string;
  sessionToken: string;
  webhook: Who & { secret: string; url: string };
  ticket: string;
  transmitter: Who & { issuer: string; audience: string; key: Record<string, unknown>; kid: string };
  channel?: Who;
  connector?: Who;
  federation?: Who;
}

export type Expect = 'refuse' | 'scoped' | 'public';

export interface Case {
  route: string;
  attacker: Side;
  victim: Side;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string;
  expect: Expect;
  note?: string;
}

/** Routes anyone may call: they may answer 2xx, but still name nothing of a tenant. */
export const PUBLIC_ROUTES = new Set([
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /openapi.json',
  'GET /.well-known/oauth-authorization-server',
  'GET /.well-known/jwks.json',
  'GET /.well-known/ssf-configuration',
  'GET /.well-known/authzen-configuration',
  'GET /console',
  'GET /console/enrol',
  'GET /console/device',
  'GET /console/console.js',
  'GET /console/console.css',
  'GET /console/api/sign-in-methods',
  // RFC 8628 §3.1: a device asks for a code without credentials, naming the tenant it signs in to.
  'POST /oauth/device_authorization',
]);

/**
 * Where a relationship's parties see what it shares ({@link shared}): its views, and the
 * records it leaves in their own audit chains and principal lists (a seat is the customer's).
 */
export const SHARED_WITH_PROVIDER =
  /^(GET|POST|PATCH) \/v1\/(customers|relationships|seats)|^GET \/v1\/audit$/;
/** …and where a customer sees what its relationships share of its provider. */
export const SHARED_WITH_CUSTOMER = /^(GET|POST|PATCH) \/v1\/(relationships|seats)|^GET \/v1\/audit$/;

/** Routes that end the caller's own standing: run last, so that they cut no other route short. */
export const LAST_ROUTES = ['POST /v1/logins/current/end', 'POST /v1/tenant/cutoff'];

/** Browser pages: they refuse with an HTML page, not a problem document. */
export const HTML_ROUTES = /^GET \/console(\/oidc\/|$|\/enrol|\/device)/;

/** SET push (RFC 8935) answers `{err, description}`. */
export const SET_PUSH_ROUTES = new Set(['POST /v1/signals']);

/** Who attacks whom: every ordered pair of the three tenants. */
export const PAIRS: [Side['tag'], Side['tag']][] = [
  ['beta', 'alpha'],
  ['beta', 'zeta'],
  ['zeta', 'alpha'],
  ['zeta', 'beta'],
  ['alpha', 'beta'],
  ['alpha', 'zeta'],
];

/** Fewer routes than this means the enumeration broke (137 when this was written). */
export const ROUTE_FLOOR = 137;

export const DAY = 24 * 3600_000;
export const iso = (ms: number) => new Date(ms).toISOString();

/** The rows each tenant owns, per table, hashed; `ids`/`names`: the values to look for in answers. */
export interface TenantState {
  tables: Record<string, string>;
  values: Set<string>;
}

/** Tables whose rows are not a tenant's data: replay caches a refused request may fill. */
export const NOT_TENANT_DATA = new Set(['dpop_jtis', 'store_probe', 'signing_keys']);

export async function snapshotAll(
  store: StoreHandle,
  columns: Map<string, string[]>,
  tenants: string[],
): Promise<Map<string, TenantState>> {
  const out = new Map<string, TenantState>(tenants.map((t) => [t, { tables: {}, values: new Set() }]));
  const owned = new Map<string, Map<string, string[]>>(tenants.map((t) => [t, new Map()]));
  const ids = new Map<string, Set<string>>(tenants.map((t) => [t, new Set([t])]));
  const line = (r: Record<string, unknown>) =>
    JSON.stringify(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
  const withTenant = [...columns].filter(([t, c]) => c.includes('tenant_id') && !NOT_TENANT_DATA.has(t));
  const without = [...columns].filter(([t, c]) => !c.includes('tenant_id') && !NOT_TENANT_DATA.has(t));
  const read = (table: string) =>
    sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(store.db).then((r) => r.rows);
  // All tables at once: on PostgreSQL the pool runs them side by side.
  const [first, second] = await Promise.all([
    Promise.all(withTenant.map(([t]) => read(t))),
    Promise.all(without.map(([t]) => read(t))),
  ]);
  for (const [i, [table, cols]] of withTenant.entries()) {
    const rows = first[i] ?? [];
    for (const r of rows) {
      const tenant = String(r.tenant_id);
      const mine = owned.get(tenant);
      if (!mine) continue;
      mine.set(table, [...(mine.get(table) ?? []), line(r)]);
      for (const c of ['id', 'name', 'kid']) {
        const v = r[c];
        if (cols.includes(c) && typeof v === 'string') {
          if (c === 'id') ids.get(tenant)?.add(v);
          out.get(tenant)?.values.add(v);
        }
      }
    }
  }
  // A row of one tenant that names another tenant's object (a member, a reviewer, a session)
  // belongs to that tenant's state too: a cross-tenant reference is a change to it.
  for (const [i, [table]] of withTenant.entries()) {
    for (const r of first[i] ?? []) {
      const strings = Object.values(r).filter((v): v is string => typeof v === 'string');
      for (const t of tenants) {
        if (t === r.tenant_id) continue;
        const mine = ids.get(t) ?? new Set();
        if (!strings.some((s) => s !== t && mine.has(s))) continue;
        const m = owned.get(t);
        const key = `${table} (of ${String(r.tenant_id)})`;
        m?.set(key, [...(m.get(key) ?? []), line(r)]);
      }
    }
  }
  for (const [i, [table]] of without.entries()) {
    const rows = second[i] ?? [];
    for (const r of rows) {
      const strings = Object.values(r).filter((v): v is string => typeof v === 'string');
      for (const t of tenants) {
        const mine = ids.get(t) ?? new Set();
        if (!strings.some((s) => mine.has(s))) continue;
        const m = owned.get(t);
        m?.set(table, [...(m.get(table) ?? []), line(r)]);
        if (table === 'tenants' || table === 'relationships') {
          for (const c of ['id', 'name']) if (typeof r[c] === 'string') out.get(t)?.values.add(String(r[c]));
        }
      }
    }
  }
  for (const t of tenants) {
    const state = out.get(t);
    for (const [table, lines] of owned.get(t) ?? [])
      if (state)
        state.tables[table] =
          `${lines.length}:${createHash('sha256').update(lines.sort().join('\n')).digest('hex')}`;
  }
  return out;
}

/** The text of an answer with the claims of every JWS in it decoded alongside (feeds, tokens). */
export function withDecodedTokens(text: string): string {
  const claims = [...text.matchAll(/eyJ[\w-]+\.(eyJ[\w-]+)\.[\w-]*/g)].map((m) =>
    Buffer.from(m[1] ?? '', 'base64url').toString('utf8'),
  );
  return claims.length > 0 ? `${text}\n${claims.join('\n')}` : text;
}

/** Each tenant's audit chain head, as stored. */
export async function auditHeads(store: StoreHandle): Promise<Map<string, string>> {
  const rows = await store.db.selectFrom('audit_heads').selectAll().execute();
  return new Map(rows.map((r) => [String(r.tenant_id), JSON.stringify(r)]));
}

/** Reads an injected answer's body; an event stream is read for a moment, then dropped. */
export async function readAll(stream: Readable, eventStream: boolean): Promise<string> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stream.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    stream.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
    stream.on('end', finish);
    stream.on('error', finish);
    stream.on('close', finish);
    setTimeout(finish, eventStream ? 150 : 5000);
  });
}

/** Why an answer is not a refusal in the route's documented shape, or undefined if it is one. */
export function refusalProblem(
  route: string,
  status: number,
  type: string,
  text: string,
): string | undefined {
  if (status < 400 || status >= 500) return `not a 4xx (${status})`;
  if (HTML_ROUTES.test(route) && type.startsWith('text/html')) return undefined;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return 'error body is not JSON';
  }
  if (SET_PUSH_ROUTES.has(route)) {
    if (typeof body.err !== 'string' || typeof body.description !== 'string') return 'not a SET push error';
    return undefined;
  }
  if (route.includes(' /oauth/')) {
    if (!type.startsWith('application/json')) return 'OAuth error is not application/json';
    if (typeof body.error !== 'string' || typeof body.error_description !== 'string')
      return 'not an OAuth error';
    return undefined;
  }
  if (!type.startsWith('application/problem+json')) return `error is ${type}, not application/problem+json`;
  const code = body.code as ErrorCode;
  if (!ERROR_CODES.includes(code)) return `problem code ${String(body.code)} is not in the catalogue`;
  if (body.status !== status || ERROR_CATALOGUE[code].status !== status)
    return 'problem status does not match the HTTP status and the catalogue';
  for (const field of ['type', 'title', 'detail']) if (typeof body[field] !== 'string') return `no ${field}`;
  return undefined;
}
