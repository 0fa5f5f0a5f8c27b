// Connectors under kill -9: every session of the trial's privilege gets a PostgreSQL login role
// on this machine's PostgreSQL (the downstream database); the broker is killed at random points
// of its lifecycles, including between a session's end and the role's cleanup. Once the broker
// has had time to resume its jobs (a killed runner's lease runs out), no role of the trial's
// sessions may be left, and the audit trail shows the jobs that were resumed or retried.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { pgAdmin } from './lib/fault-broker.mjs';
import { queryStore } from './lib/ledger.mjs';
import { crashes, lifecycleTrial } from './lifecycle-trial.mjs';

const DOWNSTREAM = new URL(
  process.env.TETHER_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
);
/** The longest a killed runner's lease holds a job (CONNECTOR_LIMITS.leaseMs), plus margin. */
const DRAIN_MS = 90_000;

/** Roles of the trial's sessions still in the downstream database. */
async function rolesLeft(sessionIds) {
  if (sessionIds.length === 0) return [];
  const patterns = sessionIds.map((id) => `tether_${id}_%`);
  const rows = await pgAdmin('select rolname from pg_roles where rolname like any($1)', [patterns]);
  return rows.map((r) => r.rolname);
}

/** Polls `sql` (a count) until it answers 0 or `ms` passes; answers the last count. */
async function untilNone(broker, sql, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const [{ n }] = await queryStore(broker, sql);
    if (Number(n) === 0 || Date.now() > deadline) return Number(n);
    await sleep(500);
  }
}

/** @param {{ dialect: 'sqlite'|'postgres', lifecycles: number, maxFaults?: number }} options */
export async function connectorCrashTrial({ dialect, lifecycles, maxFaults }) {
  const group = `tether_fault_grp_${randomBytes(4).toString('hex')}`;
  await pgAdmin(`create role ${group} nologin`);
  try {
    return await lifecycleTrial({
      name: 'kill -9 with a PostgreSQL connector',
      dialect,
      lifecycles,
      // A kill every 1–4 s: a restarted broker needs about a second before it serves, so the
      // crash trial's 0.2–1.2 s would leave it down most of the time and few lifecycles done.
      chaos: crashes({ everyMs: [1000, 4000], ...(maxFaults === undefined ? {} : { maxFaults }) }),
      brokerOptions: { outboundAllowHosts: [DOWNSTREAM.hostname] },
      setup: async (tenant) => {
        await tenant.admin.call('POST', '/v1/connectors', {
          name: 'downstream',
          kind: 'postgres',
          url: DOWNSTREAM.toString(),
          grant_roles: [group],
        });
        await tenant.admin.call('PATCH', '/v1/privileges/bench', { connectors: ['downstream'] });
      },
      afterwards: async (broker, ledger) => {
        // Sessions the ledger saw, and any the broker created without our hearing (a kill between
        // its commit and its answer): every one of them must be cleaned up.
        // Sessions activated by a broker killed before it answered were never ended by the
        // workers: they end at their hard expiry (a minute), and their roles with them.
        const stillActive = await untilNone(
          broker,
          "select count(*) as n from sessions where state = 'active'",
          DRAIN_MS,
        );
        const sessions = (await queryStore(broker, 'select id from sessions')).map((r) => r.id);
        const pendingJobs = await untilNone(
          broker,
          "select count(*) as n from connector_jobs where state = 'pending'",
          DRAIN_MS,
        );
        const left = await rolesLeft(sessions);
        const records = await queryStore(
          broker,
          "select action, details from audit_records where action like 'connector.%'",
        );
        const count = (action) => records.filter((r) => r.action === action).length;
        const resumed = records.filter((r) =>
          String(r.details).includes('resumed_after_lease_expiry'),
        ).length;
        for (const role of left) await pgAdmin(`drop role if exists ${role}`).catch(() => undefined);
        return {
          credentialsMinted: count('connector.credential_minted'),
          credentialsDestroyed: count('connector.credential_destroyed'),
          jobsResumed: resumed,
          attemptsFailed: count('connector.job_failed') + count('connector.job_failing'),
          pendingJobs: pendingJobs + stillActive,
          rolesLeft: left.length,
          activated: ledger.activated.size,
        };
      },
    });
  } finally {
    const members = await pgAdmin(
      'select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.member join pg_roles g on g.oid = m.roleid where g.rolname = $1',
      [group],
    );
    for (const { rolname } of members) await pgAdmin(`drop role if exists ${rolname}`).catch(() => undefined);
    await pgAdmin(`drop role if exists ${group}`);
  }
}
