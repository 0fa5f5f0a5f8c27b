import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  assertPostgresTarget,
  destroyRole,
  mintRole,
  ORPHAN_ROLE,
  type PostgresTarget,
  PostgresTargetInvalid,
  roleNameFor,
  scramSha256Verifier,
} from './postgres-roles.js';

/**
 * This server's pg_hba.conf trusts every local and 127.0.0.1 connection, so a login here never
 * checks a password. The suite therefore proves the password by recomputing the stored SCRAM
 * verifier from it, and proves login works (or not) by connecting as the role.
 */
const PG_URL = process.env.TETHER_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Empty when the global setup found PostgreSQL unreachable: the suite is then skipped and reported. */
const PG_REACHABLE = inject('pgUrl') !== '';

const HOUR = 3600_000;
const suffix = () => randomBytes(6).toString('hex');
const sessionId = () => `ses_${randomBytes(13).toString('hex').slice(0, 26)}`;

/** Connects as `user` to the test database; the caller ends the client. */
async function connectAs(user: string, password?: string): Promise<pg.Client> {
  const url = new URL(PG_URL);
  url.username = user;
  url.password = '';
  const client = new pg.Client({ connectionString: url.toString(), password, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectAs(new URL(PG_URL).username || 'postgres');
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function roleRow(role: string) {
  return admin(async (c) => {
    const { rows } = await c.query<{
      rolcanlogin: boolean;
      rolsuper: boolean;
      rolcreaterole: boolean;
      rolpassword: string;
      valid_until_ms: string;
    }>(
      `SELECT rolcanlogin, rolsuper, rolcreaterole, rolpassword,
              (extract(epoch FROM rolvaliduntil) * 1000)::bigint AS valid_until_ms
         FROM pg_authid WHERE rolname = $1`,
      [role],
    );
    return rows[0];
  });
}

/** Independent of the module: does the stored verifier belong to this password? (RFC 5802 §3) */
function verifierMatches(stored: string, password: string): boolean {
  const m = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(stored);
  if (!m) return false;
  const salted = pbkdf2Sync(password, Buffer.from(m[1]!, 'base64'), 4096, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest('base64');
  const serverKey = createHmac('sha256', salted).update('Server Key').digest('base64');
  return storedKey === m[2] && serverKey === m[3];
}

/** Something that looks like a minted password (43 base64url characters) or a verifier. */
const SECRET_SHAPED = /[A-Za-z0-9_-]{43}|SCRAM-SHA-256/;

async function expectLoginRefused(role: string): Promise<void> {
  const err = await connectAs(role).then(
    async (c) => {
      await c.end();
      return undefined;
    },
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(err, 'login as a destroyed role must fail').toBeDefined();
  expect(err?.code).toBe('28000');
  expect(err?.message).toMatch(/does not exist/);
}

describe.skipIf(!PG_REACHABLE)('postgres session roles [postgres]', () => {
  const rolesToDrop = new Set<string>();
  const schemasToDrop = new Set<string>();
  const clientsToEnd = new Set<pg.Client>();

  /** A throwaway group role for the session role to join. */
  async function groupRole(): Promise<string> {
    const name = `tether_test_grp_${suffix()}`;
    rolesToDrop.add(name);
    await admin((c) => c.query(`CREATE ROLE ${pg.escapeIdentifier(name)} NOLOGIN`));
    return name;
  }

  function session(): { id: string; role: string } {
    const id = sessionId();
    const role = roleNameFor(id);
    rolesToDrop.add(role);
    return { id, role };
  }

  afterEach(async () => {
    for (const c of clientsToEnd) await c.end().catch(() => undefined);
    clientsToEnd.clear();
    await admin(async (c) => {
      for (const s of schemasToDrop) await c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(s)} CASCADE`);
      // Session roles first: they are members of the group roles.
      const isGroup = (r: string) => r.startsWith('tether_test_grp_');
      const ordered = [...rolesToDrop].filter((r) => !isGroup(r)).concat([...rolesToDrop].filter(isGroup));
      for (const r of ordered) {
        const { rowCount } = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [r]);
        if (!rowCount) continue;
        const id = pg.escapeIdentifier(r);
        await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [r]);
        await c.query(`DROP OWNED BY ${id}`);
        await c.query(`DROP ROLE ${id}`);
      }
    });
    schemasToDrop.clear();
    rolesToDrop.clear();
  });

  it('mints a LOGIN role valid until the given time, a member of the granted role', async () => {
    const group = await groupRole();
    const { id, role } = session();
    const validUntil = Date.now() + HOUR;
    const minted = await mintRole({ url: PG_URL, grantRoles: [group] }, id, validUntil);

    expect(minted.username).toBe(role);
    expect(minted.validUntil).toBe(validUntil);
    expect(minted.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(minted.fingerprint).toBe(createHash('sha256').update(minted.password).digest('hex'));

    const row = await roleRow(role);
    expect(row).toMatchObject({ rolcanlogin: true, rolsuper: false, rolcreaterole: false });
    expect(Number(row?.valid_until_ms)).toBe(validUntil);
    expect(row?.rolpassword.startsWith('SCRAM-SHA-256$4096:')).toBe(true);
    expect(verifierMatches(row!.rolpassword, minted.password)).toBe(true);

    const asRole = await connectAs(role, minted.password);
    clientsToEnd.add(asRole);
    const { rows } = await asRole.query<{ member: boolean; me: string }>(
      "SELECT pg_has_role(current_user, $1, 'MEMBER') AS member, current_user AS me",
      [group],
    );
    expect(rows[0]).toEqual({ member: true, me: role });
    await asRole.query(`SET ROLE ${pg.escapeIdentifier(group)}`);
    expect((await asRole.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u).toBe(group);
  });

  it('computes the same SCRAM verifier as PostgreSQL does for the same password and salt', async () => {
    const scratch = `tether_test_scram_${suffix()}`;
    rolesToDrop.add(scratch);
    // The one place a clear-text password goes to the server: a throwaway role, so PostgreSQL's
    // own SCRAM code makes the reference verifier.
    const stored = await admin(async (c) => {
      await c.query("SET password_encryption = 'scram-sha-256'");
      await c.query(`CREATE ROLE ${scratch} PASSWORD 'correct horse battery staple'`);
      const { rows } = await c.query<{ p: string }>(
        'SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1',
        [scratch],
      );
      return rows[0]!.p;
    });
    const salt = Buffer.from(/^SCRAM-SHA-256\$4096:([^$]+)\$/.exec(stored)![1]!, 'base64');
    expect(await scramSha256Verifier('correct horse battery staple', salt)).toBe(stored);
  });

  it('a second mint for the same session (a retry) resets the one role with a new password', async () => {
    const [g1, g2] = [await groupRole(), await groupRole()];
    const { id, role } = session();
    const first = await mintRole({ url: PG_URL, grantRoles: [g1] }, id, Date.now() + HOUR);
    const later = Date.now() + 2 * HOUR;
    // The retry also finds the target changed: it must end with exactly the memberships asked for now.
    const second = await mintRole({ url: PG_URL, grantRoles: [g2] }, id, later);

    expect(second.username).toBe(first.username);
    expect(second.password).not.toBe(first.password);
    expect(second.fingerprint).not.toBe(first.fingerprint);
    const row = await roleRow(role);
    expect(verifierMatches(row!.rolpassword, second.password)).toBe(true);
    expect(verifierMatches(row!.rolpassword, first.password)).toBe(false);
    expect(Number(row?.valid_until_ms)).toBe(later);

    await admin(async (c) => {
      const count = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      expect(count.rowCount).toBe(1);
      const { rows } = await c.query<{ g1: boolean; g2: boolean }>(
        "SELECT pg_has_role($1, $2, 'MEMBER') AS g1, pg_has_role($1, $3, 'MEMBER') AS g2",
        [role, g1, g2],
      );
      expect(rows[0]).toEqual({ g1: false, g2: true });
    });
  });

  it('destroy cuts a connection busy inside a transaction, drops the role, and refuses new logins', async () => {
    const group = await groupRole();
    const { id, role } = session();
    const target = { url: PG_URL, grantRoles: [group] };
    const minted = await mintRole(target, id, Date.now() + HOUR);

    const busy = await connectAs(role, minted.password);
    clientsToEnd.add(busy);
    await busy.query('BEGIN');
    const sleeping = busy.query('SELECT pg_sleep(30)');
    // Caught now, asserted below: an unobserved rejection would fail the run on its own.
    const settled = sleeping.then(
      () => ({ rejected: false, at: Date.now() }),
      (err: { code?: string }) => ({ rejected: true, at: Date.now(), code: err.code }),
    );
    await admin(async (c) => {
      // Destroy only once the sleep is really running, so it is the busy query that gets cut.
      for (let i = 0; i < 100; i++) {
        const { rowCount } = await c.query(
          "SELECT 1 FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
          [role],
        );
        if (rowCount) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error('the busy query never showed up in pg_stat_activity');
    });

    const started = Date.now();
    const destroyed = await destroyRole(target, id);
    expect(destroyed).toMatchObject({ username: role, existed: true });
    expect(destroyed.connectionsTerminated).toBeGreaterThanOrEqual(1);

    const outcome = await settled;
    expect(outcome.rejected).toBe(true);
    expect(outcome).toMatchObject({ code: '57P01' }); // admin_shutdown: terminated by pg_terminate_backend
    expect(outcome.at - started).toBeLessThan(2000);
    await expect(sleeping).rejects.toThrow();

    expect(await roleRow(role)).toBeUndefined();
    await expectLoginRefused(role);
  });

  it('destroy drops a role that owns a table, keeping the table under the privilege-less orphan role, never the admin', async () => {
    const group = await groupRole();
    const schema = `tether_test_s_${suffix()}`;
    schemasToDrop.add(schema);
    await admin((c) =>
      c.query(`CREATE SCHEMA ${schema}; GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${group}`),
    );
    const { id, role } = session();
    const target = { url: PG_URL, grantRoles: [group] };
    const minted = await mintRole(target, id, Date.now() + HOUR);

    const asRole = await connectAs(role, minted.password);
    await asRole.query(`CREATE TABLE ${schema}.made_by_session (n int)`);
    await asRole.query(`INSERT INTO ${schema}.made_by_session VALUES (1)`);
    await asRole.end();

    const destroyed = await destroyRole(target, id);
    expect(destroyed).toEqual({ username: role, existed: true, connectionsTerminated: 0 });
    expect(await roleRow(role)).toBeUndefined();
    const owner = await admin(async (c) => {
      const { rows } = await c.query<{ owner: string; me: string }>(
        `SELECT tableowner AS owner, current_user AS me FROM pg_tables WHERE schemaname = $1 AND tablename = 'made_by_session'`,
        [schema],
      );
      return rows[0];
    });
    // Never the admin: a SECURITY DEFINER function or view the holder left would run as it.
    expect(owner?.owner).toBe(ORPHAN_ROLE);
    expect(owner?.owner).not.toBe(owner?.me);
  });

  it('refuses to grant a role that leads to a superuser or to the server (checked on the server, at every mint)', async () => {
    // A harmless-looking group that is a member of a server-reaching built-in role.
    const sneaky = await groupRole();
    await admin((c) => c.query(`GRANT pg_read_server_files TO ${pg.escapeIdentifier(sneaky)}`));
    for (const grant of ['postgres', sneaky]) {
      const { id, role } = session();
      await expect(mintRole({ url: PG_URL, grantRoles: [grant] }, id, Date.now() + HOUR)).rejects.toThrow(
        /checking grant roles/,
      );
      expect(await roleRow(role)).toBeUndefined();
    }
  });

  it('destroy revokes the role from a login the holder granted it to, so the grants do not outlive it', async () => {
    const group = await groupRole();
    const alice = `tether_test_alice_${suffix()}`;
    rolesToDrop.add(alice);
    await admin((c) => c.query(`CREATE ROLE ${alice} LOGIN`));
    const { id, role } = session();
    const target = { url: PG_URL, grantRoles: [group] };
    await mintRole(target, id, Date.now() + HOUR);
    // The holder's move: keep the session role's grants through a login of its own.
    await admin((c) => c.query(`GRANT ${pg.escapeIdentifier(role)} TO ${alice}`));
    await destroyRole(target, id);
    const { rows } = await admin((c) =>
      c.query<{ m: boolean }>("SELECT pg_has_role($1, $2, 'MEMBER') AS m", [alice, group]),
    );
    expect(rows[0]?.m).toBe(false);
  });

  it('destroy leaves no SECURITY DEFINER function of the holder running as the admin', async () => {
    const group = await groupRole();
    const schema = `tether_test_s_${suffix()}`;
    schemasToDrop.add(schema);
    await admin((c) =>
      c.query(`CREATE SCHEMA ${schema}; GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${group}`),
    );
    const { id, role } = session();
    const target = { url: PG_URL, grantRoles: [group] };
    const minted = await mintRole(target, id, Date.now() + HOUR);
    const asRole = await connectAs(role, minted.password);
    await asRole.query(
      `CREATE FUNCTION ${schema}.whoami() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text'`,
    );
    await asRole.end();
    await destroyRole(target, id);
    const { rows } = await admin((c) =>
      c.query<{ who: string; me: string }>(`SELECT ${schema}.whoami() AS who, current_user AS me`),
    );
    expect(rows[0]?.who).toBe(ORPHAN_ROLE);
    expect(rows[0]?.who).not.toBe(rows[0]?.me);
  });

  it('destroy is idempotent: a second call (and a call for a never-minted session) answers existed:false', async () => {
    const { id, role } = session();
    const target = { url: PG_URL, grantRoles: [] };
    await mintRole(target, id, Date.now() + HOUR);
    expect(await destroyRole(target, id)).toMatchObject({ existed: true });
    expect(await destroyRole(target, id)).toEqual({
      username: role,
      existed: false,
      connectionsTerminated: 0,
    });
    const never = session();
    expect(await destroyRole(target, never.id)).toEqual({
      username: never.role,
      existed: false,
      connectionsTerminated: 0,
    });
  });

  it('destroy finishes the job after a crash left the role NOLOGIN but not dropped', async () => {
    const { id, role } = session();
    const target = { url: PG_URL, grantRoles: [] };
    await mintRole(target, id, Date.now() + HOUR);
    await admin((c) => c.query(`ALTER ROLE ${role} NOLOGIN`));
    expect(await destroyRole(target, id)).toEqual({
      username: role,
      existed: true,
      connectionsTerminated: 0,
    });
    expect(await roleRow(role)).toBeUndefined();
  });

  it('sends only the verifier: the password is in no statement, catalog row or error message', async () => {
    const { id, role } = session();
    const target = { url: PG_URL, grantRoles: [] };
    await mintRole(target, id, Date.now() + HOUR);

    // Hold the role's catalog row so that the retry's ALTER ROLE waits where it can be watched.
    const blocker = await connectAs(new URL(PG_URL).username || 'postgres');
    clientsToEnd.add(blocker);
    await blocker.query('BEGIN');
    await blocker.query(`ALTER ROLE ${role} CONNECTION LIMIT 5`);
    const retry = mintRole(target, id, Date.now() + HOUR);
    const seen = await admin(async (c) => {
      for (let i = 0; i < 200; i++) {
        const { rows } = await c.query<{ query: string }>(
          "SELECT query FROM pg_stat_activity WHERE application_name = 'tether-broker:session-roles' AND query ILIKE 'alter role%'",
        );
        if (rows[0]) return rows[0].query;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error('the retry never showed up in pg_stat_activity');
    });
    await blocker.query('ROLLBACK');
    const minted = await retry;

    expect(seen).toContain('SCRAM-SHA-256$4096:');
    expect(seen).not.toContain(minted.password);
    const row = await roleRow(role);
    expect(row?.rolpassword).not.toContain(minted.password);
    expect(seen).toContain(row?.rolpassword); // stored verbatim: the server never saw anything else

    // An error at the step whose statement carries the verifier: a retry that times out waiting.
    await blocker.query('BEGIN');
    await blocker.query(`ALTER ROLE ${role} CONNECTION LIMIT 5`);
    const timedOut = await mintRole({ ...target, timeoutMs: 300 }, id, Date.now() + HOUR).catch(
      (e: Error) => e,
    );
    await blocker.query('ROLLBACK');
    expect(timedOut).toBeInstanceOf(Error);
    expect((timedOut as Error).message).toMatch(/resetting role failed \(code 57014\)/);
    expect((timedOut as Error).message).not.toMatch(SECRET_SHAPED);
    expect((timedOut as Error).cause).toBeUndefined();

    // An error after the password exists, at a step that quotes PostgreSQL's message.
    const missing = await mintRole(
      { url: PG_URL, grantRoles: [`tether_test_nope_${suffix()}`] },
      id,
      Date.now(),
    )
      .then(() => undefined)
      .catch((e: Error) => e);
    expect(missing?.message).toMatch(
      /granting roles failed \(code 42704\): role "tether_test_nope_\w+" does not exist/,
    );
    expect(missing?.message).not.toMatch(SECRET_SHAPED);
    // The failed retry rolled back: the password minted just before still works.
    expect(verifierMatches((await roleRow(role))!.rolpassword, minted.password)).toBe(true);
  });

  it('a connection failure names the step and leaks no URL secret', async () => {
    const url = 'postgres://someone:hunter2-secret@127.0.0.1:1/test';
    const err = await mintRole({ url, grantRoles: [], timeoutMs: 1000 }, sessionId(), Date.now()).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/connecting failed \(code ECONNREFUSED\)/);
    expect((err as Error).message).not.toContain('hunter2');
  });
});

describe('assertPostgresTarget', () => {
  const ok = (target: Partial<PostgresTarget>) => () =>
    assertPostgresTarget({ url: 'postgres://db.example/app', grantRoles: [], ...target });

  it('accepts postgres:// and postgresql:// URLs with plain grant names', () => {
    expect(ok({ url: 'postgresql://u:p@db.example:5433/app?sslmode=require' })).not.toThrow();
    expect(ok({ grantRoles: ['app_read', '_x', 'a$b', 'r'.repeat(63)], timeoutMs: 100 })).not.toThrow();
  });

  it.each([
    'mysql://db.example/app',
    'http://db.example/app',
    'postgres:/app',
    'postgres:///app',
    'db.example:5432/app',
    '',
    'not a url',
  ])('refuses the URL %j', (url) => {
    expect(ok({ url })).toThrow(PostgresTargetInvalid);
  });

  it.each(['x; drop table y', '"quoted"', 'Upper', '1st', '', 'r'.repeat(64), 'with space', 'a-b'])(
    'refuses the grant role %j',
    (name) => {
      expect(ok({ grantRoles: ['fine', name] })).toThrow(PostgresTargetInvalid);
    },
  );

  it('never repeats the URL, which may hold a password', () => {
    try {
      ok({ url: 'mysql://admin:s3cret-pw@db.example/app' })();
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PostgresTargetInvalid);
      expect((err as Error).message).not.toContain('s3cret');
    }
  });

  it('refuses a timeout that is not a positive integer', () => {
    for (const timeoutMs of [0, -1, 1.5, Number.NaN])
      expect(ok({ timeoutMs })).toThrow(PostgresTargetInvalid);
  });

  it('is checked before mint or destroy connect anywhere', async () => {
    const bad = { url: 'postgres://127.0.0.1:1/x', grantRoles: ['x; drop table y'] };
    await expect(mintRole(bad, 'ses_x', Date.now())).rejects.toThrow(PostgresTargetInvalid);
    await expect(destroyRole(bad, 'ses_x')).rejects.toThrow(PostgresTargetInvalid);
  });
});

describe('roleNameFor', () => {
  const IDENTIFIER = /^[a-z_][a-z0-9_$]{0,62}$/;
  const anyId = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9_-]{0,120}$/),
    fc.stringMatching(/^ses_[0-9a-z]{26}$/),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
  );

  it('spells a real session id as it is', () => {
    expect(roleNameFor('ses_01hzy3k9m2q8w7e5r4t6y1u0pa')).toBe('tether_ses_01hzy3k9m2q8w7e5r4t6y1u0pa');
  });

  it('is deterministic and always a valid identifier of at most 63 bytes', () => {
    fc.assert(
      fc.property(anyId, (id) => {
        const name = roleNameFor(id);
        expect(roleNameFor(id)).toBe(name);
        expect(name).toMatch(IDENTIFIER);
        expect(name.startsWith('tether_')).toBe(true);
        expect(Buffer.byteLength(name, 'utf8')).toBeLessThanOrEqual(63);
      }),
      { numRuns: 2000 },
    );
  });

  it('gives distinct sessions distinct names, including ids that differ only in case, - or length', () => {
    fc.assert(
      fc.property(anyId, anyId, (a, b) => {
        fc.pre(a !== b);
        expect(roleNameFor(a)).not.toBe(roleNameFor(b));
      }),
      { numRuns: 5000 },
    );
    const lookalikes = [
      'ses_abc',
      'ses_ABC',
      'ses-abc',
      'SES_abc',
      `ses_${'a'.repeat(60)}`,
      `ses_${'a'.repeat(61)}`,
    ];
    expect(new Set(lookalikes.map(roleNameFor)).size).toBe(lookalikes.length);
    // A plain id shaped like a hashed name cannot take a hashed name's place.
    const hashed = roleNameFor('ses_ABC');
    const plainTwin = hashed.slice('tether_'.length);
    expect(roleNameFor(plainTwin)).not.toBe(hashed);
  });
});
