// The fault-injection suite: `npm run faults` (every trial, full size) or
// `npm run faults -- --quick` (the short smoke `npm test` also runs), or name trials:
// `npm run faults -- crash-sqlite pg-terminate`. Real processes, real stores, real faults;
// it prints a table of trials, faults, losses (must all be 0) and writes it to bench/FAULTS.md.
import { appendFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { catchUpTrial } from './catch-up-trial.mjs';
import { connectorCrashTrial } from './connector-trial.mjs';
import { diskFullTrial } from './disk-full-trial.mjs';
import { TcpProxy } from './lib/tcp-proxy.mjs';
import { crashes, hungDatabase, lifecycleTrial, terminatedConnections } from './lifecycle-trial.mjs';
import { partitionTrial } from './partition-trial.mjs';
import { soakTrial } from './soak-trial.mjs';

const PG = new URL(process.env.TETHER_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');

/** The trials, by name: each answers a row of the table. `size` is lifecycles (quick / full). */
export const TRIALS = {
  'crash-sqlite': (quick) =>
    lifecycleTrial({
      name: 'kill -9 of the broker',
      dialect: 'sqlite',
      lifecycles: quick ? 40 : 1000,
      chaos: crashes(quick ? { maxFaults: 2 } : {}),
    }),
  'crash-postgres': (quick) =>
    lifecycleTrial({
      name: 'kill -9 of the broker',
      dialect: 'postgres',
      lifecycles: quick ? 40 : 1000,
      chaos: crashes(quick ? { maxFaults: 2 } : {}),
    }),
  'pg-terminate': (quick) =>
    lifecycleTrial({
      name: 'connections terminated',
      dialect: 'postgres',
      lifecycles: quick ? 30 : 300,
      chaos: terminatedConnections({ everyMs: quick ? [300, 1000] : [200, 800] }),
    }),
  'pg-hang': async (quick) => {
    const proxy = await TcpProxy.start({ host: PG.hostname, port: Number(PG.port || 5432) });
    try {
      return await lifecycleTrial({
        name: 'database hung / reset',
        dialect: 'postgres',
        lifecycles: quick ? 40 : 300,
        chaos: hungDatabase(proxy),
        brokerOptions: { viaProxy: proxy, statementTimeoutMs: 500, connectTimeoutMs: 500 },
      });
    } finally {
      await proxy.close();
    }
  },
  // Sessions with a PostgreSQL connector, the broker killed at random: no role left behind.
  'connector-crash': (quick) =>
    connectorCrashTrial({
      dialect: 'sqlite',
      lifecycles: quick ? 20 : 200,
      ...(quick ? { maxFaults: 2 } : {}),
    }),
  'connector-crash-postgres': (quick) =>
    connectorCrashTrial({
      dialect: 'postgres',
      lifecycles: quick ? 20 : 200,
      ...(quick ? { maxFaults: 2 } : {}),
    }),
  // The SQLite store's filesystem (a small tmpfs) filled to the last byte, then freed, `episodes` times.
  // 1,000 PEPs starting together from position 0 against 100,000 ended sessions (full size).
  'catch-up': (quick) =>
    catchUpTrial(
      quick
        ? { peps: 40, endedSessions: 2000, workers: 2, listJudged: false }
        : { peps: 1000, endedSessions: 100_000 },
    ),
  'disk-full': (quick) =>
    diskFullTrial({
      name: 'disk full',
      lifecycles: quick ? 20 : 300,
      episodes: 3,
      fullMs: quick ? 1000 : 5000,
    }),
  'pep-partition': (quick) => partitionTrial({ rounds: quick ? 3 : 30 }),
  // 10,000 live sessions and 10 minutes at full size (TETHER_SOAK_MINUTES to change the length).
  soak: (quick) =>
    soakTrial({
      sessions: quick ? 200 : 10_000,
      durationMs: quick ? 15_000 : Number(process.env.TETHER_SOAK_MINUTES ?? 10) * 60_000,
    }),
};

/** Rows of the soak have columns of their own. */
const SOAK_COLUMNS = [
  ['trial', (r) => r.name],
  ['live sessions', (r) => r.liveSessions],
  ['revocations', (r) => r.revocations],
  ['never refused', (r) => r.lost],
  ['end → PEP refuses p50 / p99 (ms)', (r) => `${r.p50Ms} / ${r.p99Ms}`],
  ['broker RSS first → last third (MiB)', (r) => mib(r.brokerRssMiB)],
  ['PEP heap first → last third (MiB)', (r) => mib(r.pepHeapMiB)],
  ['seconds', (r) => r.seconds],
];

function mib(d) {
  return `${d.first.toFixed(0)} → ${d.last.toFixed(0)} (max ${d.max.toFixed(0)}, ×${d.ratio.toFixed(2)})`;
}

/** Rows of the fleet catch-up trial have columns of their own. */
const FLEET_COLUMNS = [
  ['trial', (r) => r.name],
  ['PEPs', (r) => r.peps],
  ['ended sessions', (r) => r.endedSessions],
  ['budget (ms)', (r) => r.budgetMs],
  ['start → connected p50 / max (ms)', (r) => r.connectedP50MaxMs],
  ['start → fresh p50 / max (ms)', (r) => `${r.freshP50Ms} / ${r.freshMaxMs}`],
  ['never fresh', (r) => r.neverFresh],
  ['fresh past budget', (r) => r.lateFresh],
  ['wrong decisions', (r) => r.wrongDecisions],
  ['end → all refuse (ms)', (r) => r.endRefusedMaxMs],
  ['CPU while starting', (r) => r.cpuDuringStart],
  ['broker RSS max (MiB)', (r) => r.brokerRssMaxMiB],
  ['seconds', (r) => r.seconds],
];

/** Rows of the partition trial have columns of their own. */
const PARTITION_COLUMNS = [
  ['trial', (r) => r.name],
  ['rounds', (r) => r.rounds],
  ['staleness budget (ms)', (r) => r.budgetMs],
  ['allowed past budget after the end', (r) => r.lateAllows],
  ['missed after healing', (r) => r.missed],
  ['heal → refused p50 (ms)', (r) => Math.round(r.healP50Ms)],
  ['heal → refused max (ms)', (r) => Math.round(r.healMaxMs)],
  ['seconds', (r) => r.seconds],
];

const COLUMNS = [
  ['trial', (r) => r.name],
  ['store', (r) => r.store],
  ['lifecycles', (r) => r.lifecycles],
  ['faults', (r) => r.faults],
  ['acked activations', (r) => r.activations],
  ['acked ends', (r) => r.ends],
  ['failed calls', (r) => r.failedCalls],
  ['lost activations', (r) => r.lostActivations],
  ['lost ends', (r) => r.lostEnds],
  ['missing revocation events', (r) => r.missingEvents],
  ['alive past hard expiry', (r) => r.pastExpiry],
  ['5xx other than 503', (r) => r.serverErrors],
  ['broker deaths', (r) => r.brokerDeaths],
  ['audit verify', (r) => (r.auditVerified ? 'ok' : 'FAILED')],
  // Disk-full rows only: 503s answered while full, /readyz full → freed, SQLite's integrity_check.
  ['503s while full', (r) => r.unavailableWhileFull ?? '—'],
  [
    '/readyz full → freed',
    (r) => (r.diskFull === undefined ? '—' : r.diskFull === 'ok' ? '503 → 200' : r.diskFull),
  ],
  ['integrity_check', (r) => r.integrity ?? '—'],
  // Connector rows only: credentials minted / destroyed, jobs resumed after a kill, roles left.
  [
    'credentials minted / destroyed',
    (r) => (r.rolesLeft === undefined ? '—' : `${r.credentialsMinted} / ${r.credentialsDestroyed}`),
  ],
  ['jobs resumed after kill', (r) => r.jobsResumed ?? '—'],
  ['roles left behind', (r) => r.rolesLeft ?? '—'],
  ['seconds', (r) => r.seconds],
];

function render(columns, rows) {
  const head = `| ${columns.map(([h]) => h).join(' | ')} |`;
  const rule = `| ${columns.map(() => '---').join(' | ')} |`;
  return [head, rule, ...rows.map((r) => `| ${columns.map(([, f]) => f(r)).join(' | ')} |`)].join('\n');
}

/** The trials' rows as Markdown tables: lifecycle trials in one, partition trials in another. */
export function table(rows) {
  const partitions = rows.filter((r) => 'rounds' in r);
  const soaks = rows.filter((r) => 'revocations' in r);
  const fleets = rows.filter((r) => 'peps' in r);
  const lifecycles = rows.filter((r) => !('rounds' in r) && !('revocations' in r) && !('peps' in r));
  return [
    ...(lifecycles.length ? [render(COLUMNS, lifecycles)] : []),
    ...(partitions.length ? [render(PARTITION_COLUMNS, partitions)] : []),
    ...(soaks.length ? [render(SOAK_COLUMNS, soaks)] : []),
    ...(fleets.length ? [render(FLEET_COLUMNS, fleets)] : []),
  ].join('\n\n');
}

/** A row with a loss, a server error, a broker death or a failed audit. */
export function failing(row) {
  if ('rounds' in row) return row.losses > 0 || row.rounds === 0;
  // A fleet fails on a PEP never fresh or fresh past its budget, a wrong decision, or a broker
  // past 512 MiB.
  if ('peps' in row) return row.losses > 0 || row.brokerRssMaxMiB >= 512;
  // A soak fails on a revocation never enforced, or on memory that kept growing (last third of
  // the run over 1.5× the first), for the broker or the PEP.
  if ('revocations' in row)
    return (
      row.losses > 0 || row.revocations === 0 || row.brokerRssMiB.ratio > 1.5 || row.pepHeapMiB.ratio > 1.5
    );
  // A disk-full row also fails on a disk never seen full, /readyz not back, or a damaged database.
  if ('diskFull' in row && (row.diskFull !== 'ok' || row.integrity !== 'ok')) return true;
  // A connector row also fails on a downstream role left behind or a job never finished.
  if ('rolesLeft' in row && (row.rolesLeft > 0 || row.pendingJobs > 0)) return true;
  return row.losses > 0 || row.serverErrors > 0 || row.brokerDeaths > 0 || !row.auditVerified;
}

async function main() {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !(n in TRIALS));
  if (unknown.length > 0) {
    console.error(`unknown trial(s): ${unknown.join(', ')}; known: ${Object.keys(TRIALS).join(', ')}`);
    process.exit(2);
  }
  const rows = [];
  for (const name of names.length > 0 ? names : Object.keys(TRIALS)) {
    console.log(`fault trial ${name}${quick ? ' (quick)' : ''} …`);
    const row = await TRIALS[name](quick);
    console.log(`  ${JSON.stringify(row)}`);
    rows.push(row);
  }
  const machine = `${cpus()[0]?.model?.trim()}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; Node ${process.version}; load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
  const report = [
    '# Fault-injection results',
    '',
    `Measured ${new Date().toISOString()} on ${machine}.`,
    `Command: \`npm run faults${quick ? ' -- --quick' : ''}${names.length ? ` ${names.join(' ')}` : ''}\`.`,
    '',
    'Every loss column must be 0: a lost activation or end is one the broker acknowledged (2xx) that',
    'the store does not hold; a missing revocation event is an acknowledged end without its',
    '`session_ended` event; "alive past hard expiry" counts active sessions more than 5 s past it.',
    '',
    table(rows),
    '',
  ].join('\n');
  console.log(`\n${table(rows)}`);
  // A full run rewrites the report; a run of named trials adds its section to it.
  const file = new URL('../bench/FAULTS.md', import.meta.url);
  if (!quick && names.length === 0) writeFileSync(file, report);
  else if (!quick)
    appendFileSync(
      file,
      `\n## Named trials: ${names.join(', ')}\n\n${report.split('\n').slice(2).join('\n')}`,
    );
  process.exit(rows.some(failing) ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
