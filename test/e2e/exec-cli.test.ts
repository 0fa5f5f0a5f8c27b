import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

/**
 * `tether exec`, with real processes: the built CLI runs the demo broker; the demo's
 * deploy-pipeline asks for `deploy` with a CHG- ticket (auto-approved for 30 minutes at most)
 * and runs a command inside the session; the admin revokes from another process.
 */

/** The demo policy approves the pipeline's deploy requests at once up to 30 minutes. */
const AUTO = [
  '--as',
  'deploy-pipeline',
  '--privilege',
  'deploy',
  '--duration',
  '30m',
  '--justification',
  'e2e',
];

interface SessionState {
  id: string;
  state: string;
  end_reason: string | null;
  activated_at: string;
  last_activity_at: string;
}

describe('tether exec: a command inside a session of its own', () => {
  let home: string;
  let data: string;
  let env: NodeJS.ProcessEnv;
  const spawned: Spawned[] = [];

  /** Starts the CLI without waiting for it. */
  function start(...args: string[]): Spawned {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run = { child, ...collect(child) };
    spawned.push(run);
    return run;
  }

  async function tether(...args: string[]): Promise<Finished> {
    const run = start(...args);
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 20_000);
    return run.exited.finally(() => clearTimeout(timer));
  }

  async function sessionAsAdmin(id: string): Promise<SessionState> {
    const shown = await tether('session', 'show', id, '--json', '--as', 'admin');
    expect(shown.code, shown.stderr).toBe(0);
    return JSON.parse(shown.stdout) as SessionState;
  }

  /** Until `run` has printed a line matching `pattern` on stdout; answers the match. */
  async function printed(run: Spawned, pattern: RegExp, withinMs = 15_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + withinMs;
    while (Date.now() < deadline) {
      const match = pattern.exec(run.stdout());
      if (match) return match;
      if (run.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`no ${pattern} on stdout:\n${run.stdout()}\nstderr:\n${run.stderr()}`);
  }

  /** The session key stays in memory: nothing is stored under $TETHER_HOME/sessions. */
  function storedSessions(): string[] {
    const dir = join(home, 'sessions');
    return existsSync(dir) ? readdirSync(dir) : [];
  }

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
    home = mkdtempSync(join(tmpdir(), 'tether-exec-home-'));
    data = mkdtempSync(join(tmpdir(), 'tether-exec-data-'));
    const port = await freePort();
    env = isolatedEnv({ TETHER_HOME: home });
    const broker = spawnDemoBroker(port, data, env);
    spawned.push(broker);
    await waitForHealth(`http://127.0.0.1:${port}`, 15_000, broker);
  });

  afterAll(async () => {
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(spawned.map((p) => p.exited));
    rmSync(home, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  });

  it("a: runs the command in an auto-approved session, exits with the command's code, ends the session", async () => {
    const ran = await tether(
      'exec',
      ...AUTO,
      '--ticket',
      'CHG-1',
      '--',
      process.execPath,
      '-e',
      'console.log("session=" + process.env.TETHER_SESSION_ID); process.exit(7)',
    );
    expect(ran.code, ran.stderr).toBe(7);
    const id = /^session=(ses_[0-9a-z]{26})$/m.exec(ran.stdout)?.[1];
    expect(id, ran.stdout).toBeDefined();
    expect(ran.stderr).toContain(`tether: session ${id} started`);
    expect(await sessionAsAdmin(id!)).toMatchObject({ id, state: 'ended', end_reason: 'completed' });
    expect(storedSessions()).toEqual([]);
  });

  it('b: a session revoked elsewhere stops the command within the poll interval; exit 1, the reason on stderr', async () => {
    const run = start(
      'exec',
      ...AUTO,
      '--ticket',
      'CHG-2',
      '--poll',
      '200ms',
      '--',
      process.execPath,
      '-e',
      'console.log("session=" + process.env.TETHER_SESSION_ID + " pid=" + process.pid); setTimeout(() => {}, 600000)',
    );
    const [, id, pid] = await printed(run, /session=(ses_[0-9a-z]{26}) pid=(\d+)/);
    // `close`: the exec process has exited and nothing holds its output open (the command neither).
    const stoppedAt = run.exited.then(() => Date.now());
    const issued = Date.now();
    const revoked = await tether('revoke', '--session', id!, '--as', 'admin');
    const returned = Date.now();
    expect(revoked.code, revoked.stderr).toBe(0);
    const finished = await run.exited;
    const stopped = await stoppedAt;
    console.log(
      `revoke issued → command stopped and tether exec exited: ${stopped - issued} ms; ` +
        `after the revoke CLI returned (${returned - issued} ms, its own start-up included): ${stopped - returned} ms (--poll 200ms)`,
    );
    expect(stopped - issued).toBeLessThan(5_000);
    expect(finished.code, finished.stderr).toBe(1);
    expect(finished.stderr).toContain(`tether: session ${id} ended (revoked); the command was stopped`);
    expect(() => process.kill(Number(pid), 0)).toThrow(/ESRCH/);
    expect(await sessionAsAdmin(id!)).toMatchObject({ state: 'ended', end_reason: 'revoked' });
  });

  it('c: --credentials file: a 0600 file in a 0700 directory, named in TETHER_CREDENTIALS_FILE, gone after the exit', async () => {
    const script = `
      const fs = require('node:fs'), path = require('node:path');
      const file = process.env.TETHER_CREDENTIALS_FILE;
      console.log(JSON.stringify({
        file,
        session: process.env.TETHER_SESSION_ID,
        fileMode: fs.statSync(file).mode & 0o777,
        dirMode: fs.statSync(path.dirname(file)).mode & 0o777,
        content: JSON.parse(fs.readFileSync(file, 'utf8')),
      }));`;
    const ran = await tether(
      'exec',
      ...AUTO,
      '--ticket',
      'CHG-3',
      '--credentials',
      'file',
      '--',
      process.execPath,
      '-e',
      script,
    );
    expect(ran.code, ran.stderr).toBe(0);
    const seen = JSON.parse(ran.stdout) as {
      file: string;
      session: string;
      fileMode: number;
      dirMode: number;
      content: unknown;
    };
    expect(seen.fileMode).toBe(0o600);
    expect(seen.dirMode).toBe(0o700);
    // The demo has no connectors: the session carries no downstream credentials.
    expect(seen.content).toEqual({ session: seen.session, credentials: [] });
    expect(existsSync(seen.file)).toBe(false);
    expect(existsSync(dirname(seen.file))).toBe(false);
    expect(await sessionAsAdmin(seen.session)).toMatchObject({ state: 'ended', end_reason: 'completed' });
  });

  it('d: a bad command line is a usage error (exit 2) that says why, and asks nothing of the broker', async () => {
    const noCommand = await tether('exec', ...AUTO, '--ticket', 'CHG-404', '--');
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain('error invalid_argument: name the command to run after --');

    const both = await tether('exec', ...AUTO, '--request', 'req_00000000000000000000000000', '--', 'true');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('error invalid_argument: give --request or --privilege, not both');

    const tooFast = await tether('exec', ...AUTO, '--ticket', 'CHG-404', '--poll', '10ms', '--', 'true');
    expect(tooFast.code).toBe(2);
    expect(tooFast.stderr).toContain('the minimum is 100ms');

    const requests = await tether('requests', '--ticket', 'CHG-404', '--json', '--as', 'admin');
    expect(requests.code, requests.stderr).toBe(0);
    expect((JSON.parse(requests.stdout) as { requests: unknown[] }).requests).toEqual([]);
  });

  it('a request that is not approved at once: exit 1 naming the request, which awaits approval; nothing runs', async () => {
    // An hour is more than the pipeline's auto-approval allows: the request waits for a review.
    const ran = await tether(
      'exec',
      '--as',
      'deploy-pipeline',
      '--privilege',
      'deploy',
      '--duration',
      '1h',
      '--justification',
      'e2e',
      '--ticket',
      'CHG-5',
      '--',
      process.execPath,
      '-e',
      'console.log("ran")',
    );
    expect(ran.code).toBe(1);
    expect(ran.stdout).toBe('');
    const id = /error request_pending: request (req_[0-9a-z]{26}) awaits approval/.exec(ran.stderr)?.[1];
    expect(id, ran.stderr).toBeDefined();

    // Once approved, the same request runs by id.
    const approved = await tether('approve', id!, '--as', 'avery');
    expect(approved.code, approved.stderr).toBe(0);
    const byId = await tether(
      'exec',
      '--as',
      'deploy-pipeline',
      '--request',
      id!,
      '--',
      process.execPath,
      '-e',
      'console.log("ran")',
    );
    expect(byId.code, byId.stderr).toBe(0);
    expect(byId.stdout).toBe('ran\n');
  });

  it('SIGTERM to tether exec reaches the command; the session then ends (completed); exit 128+15', async () => {
    const run = start(
      'exec',
      ...AUTO,
      '--ticket',
      'CHG-6',
      '--',
      process.execPath,
      '-e',
      'console.log("session=" + process.env.TETHER_SESSION_ID); setTimeout(() => {}, 600000)',
    );
    const [, id] = await printed(run, /session=(ses_[0-9a-z]{26})/);
    run.child.kill('SIGTERM');
    const finished = await run.exited;
    expect(finished.code, finished.stderr).toBe(143);
    expect(await sessionAsAdmin(id!)).toMatchObject({ state: 'ended', end_reason: 'completed' });
  });

  it('renews the tokens before they expire while the command runs (30 s tokens: a refresh at about 15 s)', async () => {
    // Last: the shorter token lifetime applies to the deploy sessions activated from now on.
    const updated = await tether('privilege', 'update', 'deploy', '--token-ttl', '30s', '--as', 'admin');
    expect(updated.code, updated.stderr).toBe(0);
    const ran = await tether(
      'exec',
      ...AUTO,
      '--ticket',
      'CHG-7',
      '--',
      process.execPath,
      '-e',
      'console.log("session=" + process.env.TETHER_SESSION_ID); setTimeout(() => {}, 18000)',
    );
    expect(ran.code, ran.stderr).toBe(0);
    const id = /session=(ses_[0-9a-z]{26})/.exec(ran.stdout)?.[1];
    const view = await sessionAsAdmin(id!);
    expect(view).toMatchObject({ state: 'ended', end_reason: 'completed' });
    // A refresh is the session's activity: it moved last_activity_at past the activation.
    const renewedAfter = Date.parse(view.last_activity_at) - Date.parse(view.activated_at);
    expect(renewedAfter).toBeGreaterThan(10_000);
    expect(renewedAfter).toBeLessThan(18_000);
  }, 60_000);
});
