import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';

/**
 * A session's downstream PostgreSQL login, living exactly as long as the session. Both
 * operations are called by a job runner that retries after a crash at any point, so each one
 * converges on the same end state however often it is repeated.
 *
 * The admin role needs CREATEROLE and must be able to signal, reassign and drop the session
 * roles it creates: a superuser can; otherwise it needs pg_signal_backend and the privileges of
 * each session role (PostgreSQL checks both for pg_terminate_backend and REASSIGN OWNED).
 */
export interface PostgresTarget {
  /** Admin connection URL of the downstream database (a role with CREATEROLE, e.g. superuser in tests). */
  url: string;
  /** Roles the session's role becomes a member of (GRANT <role> TO <session role>). Each must already exist. */
  grantRoles: readonly string[];
  /** Connection + statement timeouts (ms) for the admin connection. Default 5000. */
  timeoutMs?: number;
}

export interface MintedRole {
  username: string;
  password: string;
  /** sha256 hex of the password, for audit (never the value) */
  fingerprint: string;
  validUntil: number /* epoch ms */;
}

export interface DestroyedRole {
  username: string;
  existed: boolean;
  connectionsTerminated: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;
const ROLE_PREFIX = 'tether_';
const MAX_IDENTIFIER_BYTES = 63;
const GRANT_ROLE = /^[a-z_][a-z0-9_$]{0,62}$/;
const SCRAM_ITERATIONS = 4096;
/** Hex digits of SHA-256 that disambiguate a session id the role name cannot spell as it is. */
const HASH_DIGITS = 20;
const HASHED_SUFFIX = new RegExp(`_[0-9a-f]{${HASH_DIGITS}}$`);

/** A target the broker must not even try to connect to. The message never repeats the URL (it may hold a password). */
export class PostgresTargetInvalid extends Error {
  override readonly name = 'PostgresTargetInvalid';
}

/**
 * A step of minting or destroying a role failed. It names the step and the error code; the
 * PostgreSQL message and cause are left out for the one step whose statement carries the
 * password verifier, since a syntax error there would quote part of it.
 */
export class PostgresRoleError extends Error {
  override readonly name = 'PostgresRoleError';
  constructor(
    readonly role: string,
    readonly step: string,
    readonly code: string | undefined,
    detail: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `PostgreSQL role ${role}: ${step} failed (code ${code ?? 'none'})${detail ? `: ${detail}` : ''}`,
      options,
    );
  }
}

/**
 * `tether_` + the session id when it already is a lower-case identifier short enough;
 * otherwise a readable, sanitised prefix plus a hash of the exact id, because lower-casing,
 * replacing characters and truncating would each let two sessions share one role. A name of the
 * first kind never ends the way a hashed one does, so the two kinds cannot meet.
 */
export function roleNameFor(sessionId: string): string {
  const plain = ROLE_PREFIX + sessionId;
  if (/^[a-z0-9_]+$/.test(sessionId) && plain.length <= MAX_IDENTIFIER_BYTES && !HASHED_SUFFIX.test(plain)) {
    return plain;
  }
  const hash = createHash('sha256').update(sessionId, 'utf8').digest('hex').slice(0, HASH_DIGITS);
  const room = MAX_IDENTIFIER_BYTES - ROLE_PREFIX.length - 1 - HASH_DIGITS;
  const readable = sessionId
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, room);
  return `${ROLE_PREFIX}${readable}_${hash}`;
}

/** Checks the shape of a target before anything connects or is stored. */
export function assertPostgresTarget(target: PostgresTarget): void {
  let url: URL;
  try {
    url = new URL(target.url);
  } catch {
    throw new PostgresTargetInvalid('url is not a valid URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new PostgresTargetInvalid('url must start with postgres:// or postgresql://');
  }
  if (url.hostname === '') throw new PostgresTargetInvalid('url must name a host');
  if (!Array.isArray(target.grantRoles)) throw new PostgresTargetInvalid('grantRoles must be a list');
  for (const name of target.grantRoles) {
    if (typeof name !== 'string' || !GRANT_ROLE.test(name)) {
      throw new PostgresTargetInvalid(
        `grant role ${JSON.stringify(name)} is not a plain lower-case identifier (${GRANT_ROLE.source})`,
      );
    }
  }
  const { timeoutMs } = target;
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) {
    throw new PostgresTargetInvalid('timeoutMs must be a positive integer');
  }
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677). Sent in place
 * of the password, it keeps the password out of server logs and pg_stat_activity, and the
 * server stores it verbatim. Passwords here are ASCII, so SASLprep leaves them unchanged.
 */
export async function scramSha256Verifier(password: string, salt: Buffer = randomBytes(16)): Promise<string> {
  const salted = await promisify(pbkdf2)(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const b64 = (b: Buffer) => b.toString('base64');
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

/** Creates the session's LOGIN role, or resets the one an earlier attempt left, with a fresh password. */
export async function mintRole(
  target: PostgresTarget,
  sessionId: string,
  validUntil: number,
): Promise<MintedRole> {
  assertPostgresTarget(target);
  if (!Number.isFinite(validUntil)) throw new RangeError('validUntil must be epoch milliseconds');
  const role = roleNameFor(sessionId);
  const password = randomBytes(32).toString('base64url');
  const verifier = await scramSha256Verifier(password);
  const id = pg.escapeIdentifier(role);
  // Attributes are spelt out so that a reset also takes back anything granted to the role meanwhile.
  const attributes =
    `LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT -1 ` +
    `PASSWORD ${pg.escapeLiteral(verifier)} VALID UNTIL ${pg.escapeLiteral(new Date(validUntil).toISOString())}`;

  await withAdmin(target, role, (client) =>
    inTransaction(client, role, async () => {
      const existing = await lookUpRole(client, role);
      if (existing === undefined) {
        await run(
          client,
          role,
          'creating role',
          `CREATE ROLE ${id} WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS ${attributes}`,
          {
            secret: true,
          },
        );
      } else {
        // Never hand out a role that can do more than a session role ever could: not ours.
        if (existing.rolsuper || existing.rolreplication || existing.rolbypassrls) {
          throw new PostgresRoleError(
            role,
            'resetting role',
            undefined,
            'the role exists with privileges the broker never grants',
          );
        }
        await run(client, role, 'resetting role', `ALTER ROLE ${id} WITH ${attributes}`, { secret: true });
        await revokeOtherMemberships(client, role, target.grantRoles);
      }
      await assertGrantable(client, role, target.grantRoles);
      for (const group of new Set(target.grantRoles)) {
        await run(client, role, 'granting roles', `GRANT ${pg.escapeIdentifier(group)} TO ${id}`);
      }
    }),
  );
  const fingerprint = createHash('sha256').update(password, 'utf8').digest('hex');
  return { username: role, password, fingerprint, validUntil };
}

/**
 * Ends the session's role: NOLOGIN is committed first so that no new connection can start,
 * then every connection it has is cut, then what it owns is handed to the admin and the role
 * dropped. A role that is already gone is the end state a retry expects, not an error.
 */
export async function destroyRole(target: PostgresTarget, sessionId: string): Promise<DestroyedRole> {
  assertPostgresTarget(target);
  const role = roleNameFor(sessionId);
  const id = pg.escapeIdentifier(role);
  return withAdmin(target, role, async (client) => {
    const existing = await lookUpRole(client, role);
    if (existing === undefined) return { username: role, existed: false, connectionsTerminated: 0 };
    await run(client, role, 'revoking login', `ALTER ROLE ${id} WITH NOLOGIN`);
    // The holder may have granted the role to a login of its own (GRANT tether_x TO alice):
    // that membership would keep the grants alive however long the drop takes.
    await revokeFromMembers(client, role);
    let connectionsTerminated = await terminateBackends(client, role, existing.oid);
    await ensureOrphanRole(client, role);
    await inTransaction(client, role, async () => {
      // REASSIGN keeps what the session built (it may be someone's data), but never to the admin:
      // a SECURITY DEFINER function or a view the holder left would then run with the admin's
      // rights. The orphan role has no login and no privileges. DROP OWNED then removes the
      // privileges granted to the role, which would otherwise block DROP ROLE.
      await run(
        client,
        role,
        'reassigning owned objects',
        `REASSIGN OWNED BY ${id} TO ${pg.escapeIdentifier(ORPHAN_ROLE)}`,
      );
      await run(client, role, 'dropping owned objects', `DROP OWNED BY ${id}`);
      await run(client, role, 'dropping role', `DROP ROLE ${id}`);
    });
    // A login that passed its checks just before NOLOGIN committed may only have shown up in
    // pg_stat_activity since; the oid still finds it now the name is gone.
    connectionsTerminated += await terminateBackends(client, role, existing.oid);
    return { username: role, existed: true, connectionsTerminated };
  });
}

interface RoleRow {
  oid: number;
  rolsuper: boolean;
  rolreplication: boolean;
  rolbypassrls: boolean;
}

async function lookUpRole(client: pg.Client, role: string): Promise<RoleRow | undefined> {
  const { rows } = await run<RoleRow>(
    client,
    role,
    'looking up role',
    'SELECT oid::int AS oid, rolsuper, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = $1',
    { params: [role] },
  );
  return rows[0];
}

/** Owns what ended sessions left behind: no login, no privileges, member of nothing. */
export const ORPHAN_ROLE = 'tether_orphaned';

/** Built-in roles whose members reach the server's files, programs or other sessions. */
const SERVER_REACHING_ROLES = [
  'pg_execute_server_program',
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_signal_backend',
];

/**
 * Refuses grant roles that are (or lead to) a superuser or a server-reaching built-in role:
 * checked at every mint, on the server itself, since membership can change after the connector
 * was registered and a name alone says nothing of it.
 */
async function assertGrantable(client: pg.Client, role: string, grants: readonly string[]): Promise<void> {
  if (grants.length === 0) return;
  const { rows } = await run<{ rolname: string }>(
    client,
    role,
    'checking grant roles',
    `SELECT g.rolname FROM pg_roles g
      WHERE g.rolname = ANY($1::text[])
        AND (g.rolsuper OR g.rolcreaterole OR g.rolbypassrls OR g.rolreplication
             OR EXISTS (SELECT 1 FROM pg_roles s
                         WHERE (s.rolsuper OR s.rolname = ANY($2::text[]))
                           AND pg_has_role(g.oid, s.oid, 'MEMBER')))`,
    { params: [grants, SERVER_REACHING_ROLES] },
  );
  if (rows.length > 0)
    throw new PostgresRoleError(
      role,
      'checking grant roles',
      undefined,
      `${rows.map((r) => r.rolname).join(', ')} would give a superuser's or the server's reach`,
    );
}

/** The orphan role, created once (concurrent destroys may race to create it: either wins). */
async function ensureOrphanRole(client: pg.Client, role: string): Promise<void> {
  const { rows } = await run(
    client,
    role,
    'looking up the orphan role',
    'SELECT 1 FROM pg_roles WHERE rolname = $1',
    {
      params: [ORPHAN_ROLE],
    },
  );
  if (rows.length > 0) return;
  try {
    await run(
      client,
      role,
      'creating the orphan role',
      `CREATE ROLE ${pg.escapeIdentifier(ORPHAN_ROLE)} NOLOGIN`,
    );
  } catch (err) {
    if (!(err instanceof PostgresRoleError && err.code === '42710')) throw err;
  }
}

/** Revokes the role from every role it was granted to (by the holder, during the session). */
async function revokeFromMembers(client: pg.Client, role: string): Promise<void> {
  const { rows } = await run<{ rolname: string }>(
    client,
    role,
    'revoking its members',
    `SELECT r.rolname FROM pg_auth_members m
       JOIN pg_roles g ON g.oid = m.roleid
       JOIN pg_roles r ON r.oid = m.member
      WHERE g.rolname = $1`,
    { params: [role] },
  );
  for (const { rolname } of rows)
    await run(
      client,
      role,
      'revoking its members',
      `REVOKE ${pg.escapeIdentifier(role)} FROM ${pg.escapeIdentifier(rolname)}`,
    );
}

/** A reset must leave the memberships the target asks for now, not those an earlier attempt was given. */
async function revokeOtherMemberships(
  client: pg.Client,
  role: string,
  keep: readonly string[],
): Promise<void> {
  const { rows } = await run<{ rolname: string }>(
    client,
    role,
    'revoking stale memberships',
    `SELECT g.rolname FROM pg_auth_members m
       JOIN pg_roles g ON g.oid = m.roleid
       JOIN pg_roles r ON r.oid = m.member
      WHERE r.rolname = $1`,
    { params: [role] },
  );
  for (const { rolname } of rows) {
    if (keep.includes(rolname)) continue;
    const sql = `REVOKE ${pg.escapeIdentifier(rolname)} FROM ${pg.escapeIdentifier(role)}`;
    await run(client, role, 'revoking stale memberships', sql);
  }
}

/**
 * Terminates the role's backends, by oid so that it still works once the role is dropped. The
 * pids are fixed first (MATERIALIZED) so that the planner cannot call pg_terminate_backend on
 * rows before the filter has removed them.
 */
async function terminateBackends(client: pg.Client, role: string, oid: number): Promise<number> {
  const { rows } = await run<{ n: number }>(
    client,
    role,
    'terminating connections',
    `WITH targets AS MATERIALIZED (
       SELECT pid FROM pg_stat_activity WHERE usesysid = $1 AND pid <> pg_backend_pid()
     )
     SELECT (count(*) FILTER (WHERE pg_terminate_backend(pid)))::int AS n FROM targets`,
    { params: [oid] },
  );
  return rows[0]?.n ?? 0;
}

/** One short-lived admin connection per operation: the job runner calls rarely, and a pool would outlive the call. */
async function withAdmin<T>(
  target: PostgresTarget,
  role: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const client = new pg.Client({
    connectionString: target.url,
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
    // The server's own timeout reports first, with its code; this one catches a server that stops answering.
    query_timeout: timeoutMs + 1000,
    // A broker that stalls mid-transaction must not leave locks on pg_authid behind.
    idle_in_transaction_session_timeout: timeoutMs * 2,
    application_name: 'tether-broker:session-roles',
  });
  // A connection that drops between queries is reported as an event; unheard, it would crash the
  // process. A query in flight rejects on its own, and that is the error the caller sees.
  client.on('error', () => undefined);
  try {
    await guard(role, 'connecting', () => client.connect(), false);
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs fn between BEGIN and COMMIT; on any failure rolls back, leaving the state a retry starts from. */
async function inTransaction<T>(client: pg.Client, role: string, fn: () => Promise<T>): Promise<T> {
  await run(client, role, 'beginning transaction', 'BEGIN');
  try {
    const result = await fn();
    await run(client, role, 'committing', 'COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

function run<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.Client,
  role: string,
  step: string,
  sql: string,
  options: { params?: unknown[]; secret?: boolean } = {},
): Promise<pg.QueryResult<R>> {
  return guard(role, step, () => client.query<R>(sql, options.params), options.secret ?? false);
}

/** Names the failed step; keeps PostgreSQL's message and the cause only where the statement held no secret. */
async function guard<T>(role: string, step: string, fn: () => Promise<T>, secret: boolean): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PostgresRoleError) throw err;
    const code = (err as { code?: unknown }).code;
    const codeText = typeof code === 'string' ? code : undefined;
    if (secret) throw new PostgresRoleError(role, step, codeText, undefined);
    throw new PostgresRoleError(role, step, codeText, (err as Error).message, { cause: err });
  }
}
