// C1: a session with a PostgreSQL connector is ended while its downstream connection is busy
// inside a transaction; how long from the end call until that connection is cut. Side by side,
// the floor: an administrator terminating the same kind of busy backend directly
// (pg_terminate_backend) and the connection noticing. Goal: end → cut ≤ 100 ms on this machine.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { BoundSession } from '../packages/client/dist/index.js';
import { BenchTenant, PG_URL, startBrokers } from './lib/broker.mjs';
import { ms, percentile, times } from './lib/stats.mjs';

export const title = 'Connector: session end → its busy PostgreSQL connection cut';

const ROUNDS = Number(process.env.TETHER_BENCH_C1_ROUNDS ?? 40);
const GOAL_MS = 100;
const downstream = new URL(PG_URL);

async function admin(text, values = []) {
  const client = new pg.Client({ connectionString: PG_URL });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** A connection as `user`, busy in a transaction; answers it and a promise of when it is cut. */
async function busyConnection(user, password) {
  const client = new pg.Client({
    host: downstream.hostname,
    port: Number(downstream.port || 5432),
    database: downstream.pathname.slice(1),
    user,
    password,
  });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('begin');
  const cut = client.query('select pg_sleep(60)').then(
    () => {
      throw new Error('the busy query finished: the connection was never cut');
    },
    () => performance.now(),
  );
  // The query must be running before the clock starts.
  for (;;) {
    const [row] = await admin(
      "select count(*)::int as n from pg_stat_activity where usename = $1 and state = 'active'",
      [user],
    );
    if (row.n > 0) break;
  }
  return { client, cut };
}

/** One round through Tether: activate (credential minted), busy connection, end, cut. */
async function tetherRound(pipeline) {
  const request = await pipeline.call('POST', '/v1/requests', {
    privilege: 'bench',
    justification: 'c1',
    duration: 900,
  });
  const session = await BoundSession.activate(pipeline, request.id);
  const [credential] = session.info.credentials;
  if (!credential)
    throw new Error(`no credential at activation (pending: ${session.info.credentialsPending})`);
  const { client, cut } = await busyConnection(credential.username, credential.secret);
  const t0 = performance.now();
  await session.end();
  const returned = performance.now();
  const cutAt = await cut;
  await client.end().catch(() => undefined);
  return { cut: cutAt - t0, call: returned - t0 };
}

/** One round of the floor: a role of our own, busy, terminated directly by an administrator. */
async function floorRound(role) {
  const { client, cut } = await busyConnection(role, 'unused');
  const t0 = performance.now();
  await admin('select pg_terminate_backend(pid) from pg_stat_activity where usename = $1', [role]);
  const cutAt = await cut;
  await client.end().catch(() => undefined);
  return cutAt - t0;
}

export async function run({ log }) {
  const group = `tether_bench_grp_${randomBytes(4).toString('hex')}`;
  const floorRole = `tether_bench_floor_${randomBytes(4).toString('hex')}`;
  await admin(`create role ${group} nologin`);
  await admin(`create role ${floorRole} login`);
  const brokers = await startBrokers({ outboundAllowHosts: [downstream.hostname] });
  try {
    const tenant = new BenchTenant(brokers);
    await tenant.grant('https://c1.bench.example');
    await tenant.admin.call('POST', '/v1/connectors', {
      name: 'db',
      kind: 'postgres',
      url: PG_URL,
      grant_roles: [group],
    });
    await tenant.admin.call('PATCH', '/v1/privileges/bench', { connectors: ['db'] });
    const { pipeline } = tenant;
    const tether = [];
    const calls = [];
    const floor = [];
    // Interleaved, so that the machine's load weighs on both alike; 3 warm-up rounds each.
    for (let i = 0; i < ROUNDS + 3; i++) {
      const t = await tetherRound(pipeline);
      const f = await floorRound(floorRole);
      if (i < 3) continue;
      tether.push(t.cut);
      calls.push(t.call);
      floor.push(f);
    }
    log(`end → cut p50 ${ms(percentile(tether, 50))}, floor p50 ${ms(percentile(floor, 50))}`);
    const p99 = percentile(tether, 99);
    return {
      rows: [
        [
          'Tether: end call → busy connection cut, p50 / p99 / max',
          `${ms(percentile(tether, 50))} / ${ms(p99)} / ${ms(Math.max(...tether))}`,
        ],
        [
          'Tether: end call duration, p50 / p99',
          `${ms(percentile(calls, 50))} / ${ms(percentile(calls, 99))}`,
        ],
        [
          'floor: pg_terminate_backend by an admin → cut, p50 / p99',
          `${ms(percentile(floor, 50))} / ${ms(percentile(floor, 99))}`,
        ],
        ['rounds (after 3 warm-up)', String(ROUNDS)],
      ],
      verdicts: [
        {
          figure: 'p99 end → connection cut',
          value: ms(p99),
          target: `≤ ${GOAL_MS} ms`,
          met: p99 <= GOAL_MS,
        },
        {
          figure: 'end → cut p50 ÷ direct terminate p50',
          value: times(percentile(tether, 50) / percentile(floor, 50)),
        },
      ],
      notes: [
        'Each round: a session of a privilege with a PostgreSQL connector (this machine’s PostgreSQL as the downstream database) is activated, its credential used to open a connection that runs `select pg_sleep(60)` inside a transaction; the holder ends the session over HTTP; the figure is from the end call’s start until the busy query fails (the backend terminated by the connector’s destroy job: NOLOGIN, pg_terminate_backend, drop).',
        'Floor: the same busy connection of a plain role, terminated by an administrator’s pg_terminate_backend, interleaved with the rounds above. The broker runs in its own process on SQLite.',
      ],
    };
  } finally {
    await brokers.stop();
    for (const role of await admin(
      'select r.rolname from pg_roles r join pg_auth_members m on m.member = r.oid join pg_roles g on g.oid = m.roleid where g.rolname = $1',
      [group],
    ))
      await admin(`drop role if exists ${role.rolname}`).catch(() => undefined);
    await admin(`drop role if exists ${group}`);
    await admin(`drop role if exists ${floorRole}`);
  }
}
