// CLI start-up: how long `tether <verb>` takes from spawn to exit, for client verbs (which must
// not load the broker or the gateway's stack) against a server verb (which loads the broker)
// and `node -e 0` (Node's own start). Each command is spawned RUNS times, one process at a time
// and the commands interleaved, after one unmeasured warm-up each (the file cache); median and
// p95 of the wall time from spawn to exit.
//
// Run alone with `node bench/cli-startup.mjs`, or as `npm run bench -- cli`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ms, percentile, times } from './lib/stats.mjs';

export const title = 'CLI start-up: client verbs vs a server verb vs bare Node';

/** What `tether` runs: the bundle (packages/cli/scripts/bundle.mjs). */
const MAIN = fileURLToPath(new URL('../packages/cli/bundle/tether.js', import.meta.url));
/** The same program unbundled, as tsc builds it: about sixty modules for a client verb. */
const UNBUNDLED = fileURLToPath(new URL('../packages/cli/dist/main.js', import.meta.url));
const RUNS = Number(process.env.TETHER_BENCH_CLI_RUNS ?? 30);
/** The target for a client verb's median start-up on the benchmark machine. */
const TARGET_MS = 150;
/** Packages a client verb must not load: the server's and the gateway's stacks. */
const HEAVY =
  /^(fastify|@fastify\/|better-sqlite3|pg|kysely|@cedar-policy\/|pino|prom-client|ora|yaml|@tether-broker\/(broker|pep))(\/|$)/;

/** Spawns `args` once; answers the wall time in ms, the exit code and stderr. */
function once(args, env) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: performance.now() - t0, code, stderr }));
  });
}

/**
 * Each command RUNS times, interleaved (one of each per round), so that a change in the
 * machine's load weighs on every command alike and the ratios stay fair.
 */
async function timeCommands(commands, env) {
  for (const [, args] of commands) await once(args, env);
  const samples = commands.map(() => []);
  for (let round = 0; round < RUNS; round++)
    for (const [i, [, args]] of commands.entries()) samples[i].push((await once(args, env)).ms);
  return Object.fromEntries(
    commands.map(([name], i) => [name, { p50: percentile(samples[i], 50), p95: percentile(samples[i], 95) }]),
  );
}

/** The packages from HEAVY that running `args` loads, seen by a module resolve hook. */
async function heavyLoaded(args, env, dir) {
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `const HEAVY = ${HEAVY};\nexport async function resolve(specifier, context, next) {\n` +
      `  if (HEAVY.test(specifier)) process.stderr.write('LOADED ' + specifier + '\\n');\n` +
      '  return next(specifier, context);\n}\n',
  );
  const register = join(dir, 'register.mjs');
  writeFileSync(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  const { stderr } = await once(['--import', pathToFileURL(register).href, ...args], env);
  const names = stderr
    .split('\n')
    .filter((line) => line.startsWith('LOADED '))
    .map((line) => line.slice('LOADED '.length))
    .map((name) =>
      name
        .split('/')
        .slice(0, name.startsWith('@') ? 2 : 1)
        .join('/'),
    );
  return [...new Set(names)].sort();
}

export async function run({ log = console.log } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tether-bench-cli-'));
  try {
    // An empty TETHER_HOME: `requests` stops at the missing identity, before any network call,
    // having loaded all it loads. `keys list` on an empty data directory loads the broker,
    // resolves its configuration, and stops at the missing store.
    const env = { PATH: process.env.PATH, TETHER_HOME: join(dir, 'home'), NO_COLOR: '1' };
    const commands = [
      ['node -e 0 (baseline)', ['-e', '0']],
      ['tether --help', [MAIN, '--help']],
      ['tether requests (client verb)', [MAIN, 'requests']],
      ['tether requests, unbundled (dist/main.js)', [UNBUNDLED, 'requests']],
      ['tether session list (client verb)', [MAIN, 'session', 'list']],
      [
        'tether keys list (server verb: loads the broker)',
        [MAIN, 'keys', 'list', '--data', join(dir, 'data')],
      ],
    ];
    log(`${commands.length} commands × ${RUNS} runs, interleaved`);
    const results = await timeCommands(commands, env);
    const [baseline, help, requests, unbundled, sessions, server] = commands.map(([name]) => results[name]);
    const clientHeavy = await heavyLoaded([MAIN, 'requests'], env, dir);
    const serverHeavy = await heavyLoaded([MAIN, 'keys', 'list', '--data', join(dir, 'data')], env, dir);
    return {
      rows: commands.flatMap(([name]) => [
        [`${name}: median`, ms(results[name].p50)],
        [`${name}: p95`, ms(results[name].p95)],
      ]),
      verdicts: [
        {
          figure: '`tether requests` median start-up',
          value: ms(requests.p50),
          target: `≤ ${TARGET_MS} ms`,
          met: requests.p50 <= TARGET_MS,
        },
        { figure: '`tether requests` ÷ `node -e 0` (median)', value: times(requests.p50 / baseline.p50) },
        {
          figure: 'unbundled ÷ bundled `tether requests` (median)',
          value: times(unbundled.p50 / requests.p50),
        },
        { figure: '`tether --help` ÷ `node -e 0` (median)', value: times(help.p50 / baseline.p50) },
        { figure: '`tether session list` ÷ `node -e 0` (median)', value: times(sessions.p50 / baseline.p50) },
        { figure: 'server verb ÷ client verb (median)', value: times(server.p50 / requests.p50) },
      ],
      notes: [
        `${RUNS} runs per command, one process at a time, the commands interleaved, after one warm-up run each; wall time from spawn to exit.`,
        `server and gateway packages loaded by \`tether requests\`: ${clientHeavy.length > 0 ? clientHeavy.join(', ') : 'none'}.`,
        `…by \`tether keys list\`: ${serverHeavy.length > 0 ? serverHeavy.join(', ') : 'none'}.`,
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await run();
  console.log(
    ['', '| measure | value |', '| --- | ---: |', ...result.rows.map(([k, v]) => `| ${k} | ${v} |`)].join(
      '\n',
    ),
  );
  for (const v of result.verdicts)
    console.log(
      `- ${v.figure}: ${v.value}${v.target ? ` (target ${v.target}: ${v.met ? 'met' : 'not met'})` : ''}`,
    );
  for (const note of result.notes) console.log(`- ${note}`);
}
