import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  collect,
  type Finished,
  freePort,
  isolatedEnv,
  MAIN,
  ROOT,
  type Spawned,
  spawnDemoBroker,
  waitForHealth,
} from '../support/processes.js';
import { describeOnPostgres } from '../support/stores.js';

/**
 * Issue #12's story with the demo and real processes: the demo, given a database
 * (`TETHER_DEMO_DATABASE_URL`, this machine's PostgreSQL), has a `db-maintenance` privilege with a
 * PostgreSQL connector. Olivia asks for it, Avery approves, and `tether exec` runs a command
 * that logs in with the session's own role (PGUSER/PGPASSWORD); when the command is done the
 * session ends and the role is gone.
 */
const DATABASE = process.env.TETHER_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function roleExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: DATABASE });
  await client.connect();
  try {
    return (await client.query('select 1 from pg_roles where rolname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

describeOnPostgres('the demo with a database', () => {
  let home: string;
  let data: string;
  let env: NodeJS.ProcessEnv;
  const spawned: Spawned[] = [];

  async function tether(...args: string[]): Promise<Finished> {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run = { child, ...collect(child) };
    spawned.push(run);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    return run.exited.finally(() => clearTimeout(timer));
  }

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
    home = mkdtempSync(join(tmpdir(), 'tether-demo-db-home-'));
    data = mkdtempSync(join(tmpdir(), 'tether-demo-db-data-'));
    const port = await freePort();
    env = isolatedEnv({
      TETHER_HOME: home,
      TETHER_DEMO_DATABASE_URL: DATABASE,
      // The demo database is on loopback: the operator allows the broker to connect there.
      TETHER_OUTBOUND_ALLOW_HOSTS: new URL(DATABASE).hostname,
    });
    const broker = spawnDemoBroker(port, data, env);
    spawned.push(broker);
    await waitForHealth(`http://127.0.0.1:${port}`, 20_000, broker);
  }, 60_000);

  afterAll(async () => {
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(spawned.map((p) => p.exited));
    rmSync(home, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  });

  it('a command run with tether exec logs in with its own role, which is gone once the command is done', async () => {
    const asked = await tether(
      'request',
      'db-maintenance',
      '--ticket',
      'CHG-5',
      '--reason',
      'vacuum the demo tables',
      '--duration',
      '30m',
      '--json',
      '--as',
      'olivia',
    );
    expect(asked.code, asked.stderr).toBe(0);
    const request = JSON.parse(asked.stdout) as { id: string; state: string };
    expect(request.state).toBe('pending');
    const approved = await tether('approve', request.id, '--as', 'avery');
    expect(approved.code, approved.stderr).toBe(0);

    // The command connects with what tether exec handed it: PGUSER and PGPASSWORD (pg reads both).
    const database = new URL(DATABASE);
    const script = `const pg = require('pg');
const c = new pg.Client({ host: ${JSON.stringify(database.hostname)}, port: ${Number(database.port || 5432)}, database: ${JSON.stringify(database.pathname.slice(1))} });
c.connect().then(() => c.query('select current_user as u')).then((r) => { console.log('user=' + r.rows[0].u); return c.end(); }).catch((e) => { console.error(e.message); process.exit(9); });`;
    const ran = await tether(
      'exec',
      '--request',
      request.id,
      '--as',
      'olivia',
      '--',
      process.execPath,
      '-e',
      script,
    );
    expect(ran.code, ran.stderr).toBe(0);
    const user = /user=(tether_ses_[a-z0-9_]+)/.exec(ran.stdout)?.[1];
    expect(user, ran.stdout).toBeDefined();
    // The values never reach the terminal; only the user name the command printed itself.
    expect(ran.stderr).not.toMatch(/PGPASSWORD=/);

    // The session ended with the command; the role is dropped by the connector's job.
    for (let i = 0; i < 100 && (await roleExists(user!)); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await roleExists(user!)).toBe(false);
  }, 90_000);
});
