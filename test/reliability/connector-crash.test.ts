import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BenchTenant } from '../../bench/lib/broker.mjs';
import { FaultBroker, pgAdmin } from '../../faults/lib/fault-broker.mjs';
import { queryStore } from '../../faults/lib/ledger.mjs';
import { TcpProxy } from '../../faults/lib/tcp-proxy.mjs';
import { BoundSession } from '../../packages/client/src/index.js';
import { describeOnPostgres } from '../support/stores.js';

/**
 * Issue #12: a broker killed (`kill -9`) between a session's end and the cleanup of its
 * downstream credential. The end commits the destroy job with it; the downstream database is
 * unreachable, so the first attempt fails (audited); the broker is killed; once it is back and so
 * is the database, the job runs again and the role is gone — the audit shows the retry. Real
 * processes: the broker as deployed, this machine's PostgreSQL as the downstream database.
 */
const DOWNSTREAM = new URL(process.env.TETHER_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');

describeOnPostgres('connector cleanup across kill -9', () => {
  let broker: FaultBroker;
  let proxy: TcpProxy;
  const group = `tether_crash_grp_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    await pgAdmin(`create role ${group} nologin`);
    proxy = await TcpProxy.start({ host: DOWNSTREAM.hostname, port: Number(DOWNSTREAM.port || 5432) });
    broker = await FaultBroker.create({ dialect: 'sqlite', outboundAllowHosts: [DOWNSTREAM.hostname] });
  }, 120_000);
  afterAll(async () => {
    await broker?.destroy();
    await proxy?.close();
    await pgAdmin(`drop role if exists ${group}`).catch(() => undefined);
  });

  it('drops the role after the restart, and the audit shows the failed attempt and the retry', async () => {
    const tenant = new BenchTenant({
      adminIdentity: broker.adminIdentity,
      publicUrl: broker.publicUrl,
      tenant: broker.tenant,
    });
    await tenant.grant('https://crash.example');
    const via = new URL(DOWNSTREAM);
    via.port = String(proxy.port);
    await tenant.admin.call('POST', '/v1/connectors', {
      name: 'db',
      kind: 'postgres',
      url: via.toString(),
      grant_roles: [group],
    });
    await tenant.admin.call('PATCH', '/v1/privileges/bench', { connectors: ['db'] });
    const request = await tenant.pipeline.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'bench',
      justification: 'crash test',
      duration: 600,
    });
    const session = await BoundSession.activate(tenant.pipeline, request.id);
    const username = session.info.credentials[0]?.username;
    expect(username).toBeDefined();
    const roleExists = async () =>
      (await pgAdmin('select 1 from pg_roles where rolname = $1', [username])).length === 1;
    expect(await roleExists()).toBe(true);

    // The database goes away, the session ends, the cleanup's first attempt fails…
    await proxy.refuse();
    await session.end();
    const failedAttempt = async () =>
      (await queryStore(broker, "select 1 from audit_records where action = 'connector.job_failed'")).length >
      0;
    for (let i = 0; i < 100 && !(await failedAttempt()); i++) await sleep(100);
    expect(await failedAttempt()).toBe(true);
    // … and the broker is killed before any retry.
    await broker.crash();
    await proxy.allow();
    await broker.restart();
    for (let i = 0; i < 200 && (await roleExists()); i++) await sleep(100);
    expect(await roleExists()).toBe(false);
    // The role is dropped first, then the job's completion and its record commit together.
    const destroyedRecorded = async () =>
      (
        await queryStore(
          broker,
          "select 1 from audit_records where action = 'connector.credential_destroyed'",
        )
      ).length > 0;
    for (let i = 0; i < 100 && !(await destroyedRecorded()); i++) await sleep(50);

    const records = await queryStore(
      broker,
      "select action, details from audit_records where action like 'connector.%' order by seq",
    );
    const actions = records.map((r: { action: string }) => r.action);
    expect(actions).toEqual([
      'connector.created',
      'connector.credential_minted',
      // Handed to the holder in the activation answer.
      'connector.credentials_collected',
      'connector.job_failed',
      'connector.credential_destroyed',
    ]);
    const destroyed = JSON.parse(String(records.at(-1)?.details));
    expect(destroyed).toMatchObject({ attempt: 2, existed: true });
  }, 120_000);
});
