import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { TcpProxy } from '../../faults/lib/tcp-proxy.mjs';
import type { Store } from '../../packages/broker/src/store/database.js';
import { BoundSession, createDpopProof, generateSessionKey } from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore, storeTableNames } from '../support/stores.js';

/**
 * The PostgreSQL connector end to end, against this machine's real PostgreSQL as the downstream
 * database: a session gets a login role of its own at activation; its end drops the role and
 * cuts the role's connections, busy ones included; the receipt and the audit trail show it;
 * the credential's value is never kept or logged.
 */
const DOWNSTREAM = process.env.TETHER_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const downstreamHost = new URL(DOWNSTREAM).hostname;

async function admin<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: DOWNSTREAM });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

async function roleExists(name: string): Promise<boolean> {
  return (await admin('select 1 from pg_roles where rolname = $1', [name])).length === 1;
}

/** A connection as the session's role: its own user and password, as the holder would log in. */
async function loginAs(username: string, password: string): Promise<pg.Client> {
  const url = new URL(DOWNSTREAM);
  const client = new pg.Client({
    host: url.hostname,
    port: Number(url.port || 5432),
    database: url.pathname.slice(1),
    user: username,
    password,
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

describeEachStore('PostgreSQL connector', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;
  const group = `tether_test_grp_${randomBytes(4).toString('hex')}`;
  const made: string[] = [];

  beforeAll(async () => {
    await admin(`create role ${group} nologin`);
  });
  afterAll(async () => {
    for (const role of made)
      await admin(`select pg_terminate_backend(pid) from pg_stat_activity where usename = $1`, [role]);
    for (const role of made) await admin(`drop role if exists ${role}`).catch(() => undefined);
    await admin(`drop role if exists ${group}`);
    await fixture.cleanup();
  });
  beforeEach(async () => {
    store = await fixture.open();
    // The downstream database is on loopback: the operator allows it, as a deployment would
    // for a database on its own network.
    b = await startTestBroker(store, { config: { outboundAllowHosts: [downstreamHost] } });
    // Roles are valid until the session's hard expiry: the broker's clock must be the database's.
    b.clock.set(Date.now());
    s = await setUpScenario(b);
  });
  afterEach(async () => {
    await b.ctx.connectors.stop();
    await b.close();
    await store.close();
  });

  async function withConnector(url = DOWNSTREAM): Promise<void> {
    await s.admin.call('POST', '/v1/connectors', {
      name: 'warehouse',
      kind: 'postgres',
      url,
      grant_roles: [group],
    });
    await s.admin.call('PATCH', '/v1/privileges/deploy', { connectors: ['warehouse'] });
  }

  async function activate(): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-1',
      justification: 'rotate the warehouse credentials',
      duration: 900,
    });
    const session = await BoundSession.activate(s.pipeline.client, created.id);
    for (const c of session.info.credentials) made.push(c.username);
    return session;
  }

  it('mints a login role at activation and drops it at the end, cutting a busy connection', async () => {
    await withConnector();
    const session = await activate();
    expect(session.info.credentialsPending).toEqual([]);
    expect(session.info.credentials).toHaveLength(1);
    const [credential] = session.info.credentials;
    expect(credential).toMatchObject({ connector: 'warehouse', kind: 'postgres' });
    const username = credential!.username;
    const secret = credential!.secret;

    // The role works while the session lives, with the privilege's grants.
    const conn = await loginAs(username, secret);
    const [me] = (await conn.query("select current_user as u, pg_has_role($1, 'member') as m", [group])).rows;
    expect(me).toEqual({ u: username, m: true });
    const [role] = await admin<{ rolcanlogin: boolean; rolvaliduntil: Date }>(
      'select rolcanlogin, rolvaliduntil from pg_roles where rolname = $1',
      [username],
    );
    expect(role!.rolcanlogin).toBe(true);
    expect(role!.rolvaliduntil.getTime()).toBe(session.info.hardExpiresAt);

    // Busy inside a transaction when the session ends.
    await conn.query('begin');
    const busy = conn.query('select pg_sleep(30)').then(
      () => 'finished',
      (err: Error) => `cut: ${err.message}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const endedAt = performance.now();
    await session.end();
    await b.ctx.connectors.idle();
    const outcome = await busy;
    const cutAfterMs = performance.now() - endedAt;
    expect(outcome).toMatch(/^cut: /);
    expect(cutAfterMs).toBeLessThan(5000);
    expect(await roleExists(username)).toBe(false);
    await expect(loginAs(username, secret)).rejects.toThrow();

    // The receipt and the audit trail: destroyed, with the connection it cut; never the value.
    const receipt = await s.admin.call<{ credentials: Record<string, unknown>[] }>(
      'GET',
      `/v1/sessions/${session.info.id}/receipt`,
    );
    expect(receipt.credentials).toEqual([
      expect.objectContaining({
        connector: 'warehouse',
        username,
        destroyed_at: expect.any(String),
        connections_terminated: 1,
      }),
    ]);
    const audit = await s.admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      `/v1/audit?session=${session.info.id}`,
    );
    const actions = audit.records.map((r) => r.action);
    expect(actions).toEqual(
      expect.arrayContaining(['connector.credential_minted', 'connector.credential_destroyed']),
    );
    await expectNowhere(secret);
  });

  it('never keeps, logs or answers the value again: a second collection answers nothing', async () => {
    await withConnector();
    const session = await activate();
    const secret = session.info.credentials[0]!.secret;
    expect(await session.collectCredentials()).toEqual({ credentials: [], pending: [] });
    // Nobody else collects it: an admin is refused, as is another principal.
    await expect(
      s.admin.call('POST', `/v1/sessions/${session.info.id}/credentials`, {}),
    ).rejects.toMatchObject({ status: 403 });
    await expect(
      s.operator.client.call('POST', `/v1/sessions/${session.info.id}/credentials`, {}),
    ).rejects.toMatchObject({ status: 404 });
    // Nor the holder's principal without the session key (its API token stolen, say): its own
    // proof, or a proof by any other key, is refused.
    await expect(
      s.pipeline.client.call('POST', `/v1/sessions/${session.info.id}/credentials`, {}),
    ).rejects.toMatchObject({ status: 401, code: 'invalid_dpop_proof' });
    const otherKey = await generateSessionKey();
    const path = `/v1/sessions/${session.info.id}/credentials`;
    const forged = await createDpopProof(otherKey, {
      method: 'POST',
      url: `${PUBLIC_URL}${path}`,
      now: b.clock.now(),
    });
    await expect(
      s.pipeline.client.call('POST', path, {}, { headers: { dpop: forged } }),
    ).rejects.toMatchObject({ status: 401, code: 'invalid_dpop_proof' });
    await expectNowhere(secret);
    await session.end();
    await b.ctx.connectors.idle();
  });

  it('refuses a connector aimed at a non-public host the operator did not allow, storing nothing', async () => {
    const before = await s.admin.call<{ connectors: unknown[] }>('GET', '/v1/connectors');
    for (const url of [
      'postgres://postgres@10.0.0.7:5432/test',
      'postgres://postgres@localhost/test',
      // pg lets a query parameter replace the host, the port, or name a Unix socket or key file.
      'postgres://postgres@db.example.com/test?host=127.0.0.1',
      'postgres://postgres@db.example.com/test?host=/var/run/postgresql',
      'postgres://postgres@db.example.com/test?port=5433',
      'postgres://postgres@db.example.com/test?sslrootcert=/etc/tether/kek',
      'postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test',
      'postgres://postgres@[::1]/test',
      // 127.0.0.1 by other spellings, which the postgres: scheme leaves as written.
      'postgres://postgres@2130706433/test',
      'postgres://postgres@0x7f.1/test',
      'postgres://postgres@127.1/test',
      'postgres://postgres@%31%32%37.0.0.1/test',
      'postgres://postgres@[::ffff:7f00:1]/test',
    ]) {
      await expect(
        s.admin.call('POST', '/v1/connectors', { name: 'inside', kind: 'postgres', url, grant_roles: [] }),
      ).rejects.toMatchObject({ status: 400, code: 'destination_refused' });
    }
    await expect(
      s.admin.call('POST', '/v1/connectors', {
        name: 'bad',
        kind: 'postgres',
        url: 'mysql://x@example.com/db',
        grant_roles: [],
      }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(
      s.admin.call('POST', '/v1/connectors', {
        name: 'bad',
        kind: 'postgres',
        url: DOWNSTREAM,
        grant_roles: ['x; drop table y'],
      }),
    ).rejects.toMatchObject({ status: 400 });
    expect(await s.admin.call('GET', '/v1/connectors')).toEqual(before);
  });

  it('a connector row edited in SQL to point elsewhere does not open: its URL is sealed to the row', async () => {
    await withConnector();
    const [row] = await store.db.selectFrom('connectors').selectAll().execute();
    // A DB writer copies the sealed URL into a new connector of its own making.
    await store.db
      .insertInto('connectors')
      .values({ ...row!, id: 'cnr_00000000000000000000000000', name: 'forged' })
      .execute();
    await s.admin.call('PATCH', '/v1/privileges/deploy', { connectors: ['forged'] });
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-2',
      justification: 'x',
      duration: 900,
    });
    const session = await BoundSession.activate(s.pipeline.client, created.id);
    await b.ctx.connectors.idle();
    expect(session.info.credentials).toEqual([]);
    // The mint is refused and retried (never dropped), and nothing was created downstream.
    const jobs = await store.db.selectFrom('connector_jobs').selectAll().execute();
    expect(jobs).toEqual([expect.objectContaining({ action: 'mint', state: 'pending', attempts: 1 })]);
    expect(
      await admin("select 1 from pg_roles where rolname like 'tether_ses_%' and rolname like $1", [
        `%${session.info.id}%`,
      ]),
    ).toEqual([]);
    await session.end();
  });

  it("a connector's grant roles edited in SQL make its sealed URL refuse to open: nothing is minted", async () => {
    await withConnector();
    // A DB writer (no KEK) hands every session a shell on the database server.
    await store.db
      .updateTable('connectors')
      .set({ settings: JSON.stringify({ grantRoles: ['pg_execute_server_program'], target: 'x' }) })
      .execute();
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-3',
      justification: 'x',
      duration: 900,
    });
    const session = await BoundSession.activate(s.pipeline.client, created.id);
    await b.ctx.connectors.idle();
    expect(session.info.credentials).toEqual([]);
    const jobs = await store.db.selectFrom('connector_jobs').selectAll().execute();
    expect(jobs).toEqual([expect.objectContaining({ action: 'mint', state: 'pending', attempts: 1 })]);
    expect(
      await admin('select 1 from pg_roles where rolname like $1', [`tether_${session.info.id}%`]),
    ).toEqual([]);
    await session.end();
  });

  it('retries a destroy while the database is unreachable, raises the alert metric, and finishes once it returns', async () => {
    const proxy = await TcpProxy.start({
      host: downstreamHost,
      port: Number(new URL(DOWNSTREAM).port || 5432),
    });
    try {
      const via = new URL(DOWNSTREAM);
      via.port = String(proxy.port);
      await withConnector(via.toString());
      const session = await activate();
      const username = session.info.credentials[0]!.username;
      await proxy.refuse();
      await session.end();
      await b.ctx.connectors.idle();
      for (let i = 1; i < 6; i++) {
        // Each retry comes after its backoff, on the broker's clock.
        b.clock.advance(10 * 60_000);
        b.ctx.connectors.wake();
        await b.ctx.connectors.idle();
      }
      const [job] = await store.db
        .selectFrom('connector_jobs')
        .selectAll()
        .where('action', '=', 'destroy')
        .execute();
      expect(job).toMatchObject({ state: 'pending' });
      expect(Number(job!.attempts)).toBeGreaterThanOrEqual(5);
      const metrics = await (await b.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/tether_connector_jobs_failing 1/);
      expect(await roleExists(username)).toBe(true);

      await proxy.allow();
      b.clock.advance(10 * 60_000);
      b.ctx.connectors.wake();
      await b.ctx.connectors.idle();
      expect(await roleExists(username)).toBe(false);
      const audit = await s.admin.call<{ records: { action: string }[] }>(
        'GET',
        `/v1/audit?session=${session.info.id}`,
      );
      const actions = audit.records.map((r) => r.action);
      expect(actions.filter((a) => a === 'connector.job_failed').length).toBeGreaterThanOrEqual(4);
      expect(actions).toContain('connector.job_failing');
      expect(actions).toContain('connector.credential_destroyed');
      b.ctx.connectors.wake();
      await b.ctx.connectors.idle();
      const after = await (await b.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(after).toMatch(/tether_connector_jobs_failing 0/);
    } finally {
      await proxy.close();
    }
  });

  /** The value is in no table of the store, no log line and no audit record. */
  async function expectNowhere(secret: string): Promise<void> {
    for (const table of await storeTableNames(store)) {
      const rows = await store.db
        .selectFrom(table as never)
        .selectAll()
        .execute();
      expect(JSON.stringify(rows), table).not.toContain(secret);
    }
    expect(b.logs.join('\n')).not.toContain(secret);
  }
});
