// The fault-injection suite: `npm run faults` (every trial, full size) or
// `npm run faults -- --quick` (the short smoke `npm test` also runs), or name trials:
// `npm run faults -- crash-sqlite pg-terminate`. Real processes, real stores, real faults;
// it prints a table of trials, faults, losses (must all be 0) and writes it to bench/FAULTS.md.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { TcpProxy } from './lib/tcp-proxy.mjs';
import { crashes, hungDatabase, lifecycleTrial, terminatedConnections } from './lifecycle-trial.mjs';
import { partitionTrial } from './partition-trial.mjs';

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
  'pep-partition': (quick) => partitionTrial({ rounds: quick ? 3 : 30 }),
};

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
  const lifecycles = rows.filter((r) => !('rounds' in r));
  return [
    ...(lifecycles.length ? [render(COLUMNS, lifecycles)] : []),
    ...(partitions.length ? [render(PARTITION_COLUMNS, partitions)] : []),
  ].join('\n\n');
}

/** A row with a loss, a server error, a broker death or a failed audit. */
export function failing(row) {
  if ('rounds' in row) return row.losses > 0 || row.rounds === 0;
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
  if (!quick) writeFileSync(new URL('../bench/FAULTS.md', import.meta.url), report);
  process.exit(rows.some(failing) ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
