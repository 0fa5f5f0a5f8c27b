import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TcpProxy } from '../../faults/lib/tcp-proxy.mjs';
import {
  collect,
  type Finished,
  freePort,
  isolatedEnv,
  MAIN,
  ROOT,
  type Spawned,
  waitForHealth,
} from '../support/processes.js';

/**
 * Issue #12's recorded sessions with real processes: the demo's `support-shell` privilege
 * requires recording. Olivia asks for it, Avery approves, `tether exec` runs a shell command on
 * a pseudo-terminal and streams it to the broker; Avery (an auditor) replays it, and the audit
 * chain names a chunk edited in the store. The CLI reaches the broker through a TCP proxy, so
 * the test can make the broker unreachable: the recorded command is then stopped.
 */

/** The lapse the broker gives a recording here: the CLI gives up after half of it (2 s). */
const LAPSE_SECONDS = 4;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('tether exec on a recorded privilege', () => {
  let home: string;
  let data: string;
  let env: NodeJS.ProcessEnv;
  let proxy: TcpProxy;
  const spawned: Spawned[] = [];

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
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
    return run.exited.finally(() => clearTimeout(timer));
  }

  /** An approved support-shell request of Olivia's for `ticket`. */
  async function approvedRequest(ticket: string): Promise<string> {
    const asked = await tether(
      'request',
      'support-shell',
      '--ticket',
      ticket,
      '--reason',
      'restart the stuck mail queue',
      '--duration',
      '30m',
      '--json',
      '--as',
      'olivia',
    );
    expect(asked.code, asked.stderr).toBe(0);
    const request = JSON.parse(asked.stdout) as { id: string };
    const approved = await tether('approve', request.id, '--as', 'avery');
    expect(approved.code, approved.stderr).toBe(0);
    return request.id;
  }

  async function sessionOf(
    requestId: string,
  ): Promise<{ id: string; state: string; end_reason: string | null }> {
    const listed = await tether('session', 'list', '--all', '--json', '--as', 'admin');
    expect(listed.code, listed.stderr).toBe(0);
    const sessions = (
      JSON.parse(listed.stdout) as {
        sessions: { id: string; request: string; state: string; end_reason: string | null }[];
      }
    ).sessions;
    const found = sessions.find((s) => s.request === requestId);
    if (!found) throw new Error(`no session for ${requestId}: ${listed.stdout}`);
    return found;
  }

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
    home = mkdtempSync(join(tmpdir(), 'tether-rec-home-'));
    data = mkdtempSync(join(tmpdir(), 'tether-rec-data-'));
    const port = await freePort();
    proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    env = isolatedEnv({ TETHER_HOME: home, TETHER_LIMITS_RECORDING_LAPSE_SECONDS: String(LAPSE_SECONDS) });
    // The broker's public URL is the proxy: every identity the demo writes reaches it through there.
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'server',
        '--demo',
        '--port',
        String(port),
        '--data',
        data,
        '--public-url',
        `http://127.0.0.1:${proxy.port}`,
      ],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const broker = { child, ...collect(child) };
    spawned.push(broker);
    await waitForHealth(`http://127.0.0.1:${port}`, 20_000, broker);
  }, 60_000);

  afterAll(async () => {
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(spawned.map((p) => p.exited));
    await proxy?.close?.();
    rmSync(home, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  });

  it('records the command, an auditor replays it (terminal attacks removed), and an edited chunk is named by audit verify', async () => {
    const requestId = await approvedRequest('INC-1');
    // The command also tries to write to the auditor's clipboard (OSC 52) when replayed.
    const ran = await tether(
      'exec',
      '--request',
      requestId,
      '--as',
      'olivia',
      '--',
      'sh',
      '-c',
      'echo "queue restarted"; printf "\\033]52;c;ZXZpbA==\\007"; echo "all good"',
    );
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toContain('this session is recorded (output)');
    expect(ran.stdout).toContain('queue restarted');
    const session = await sessionOf(requestId);
    expect(session.state).toBe('ended');

    const played = await tether('recording', 'play', session.id, '--instant', '--as', 'avery');
    expect(played.code, played.stderr).toBe(0);
    expect(played.stdout).toContain('queue restarted');
    expect(played.stdout).toContain('all good');
    expect(played.stdout).not.toContain('\u001b]52');
    expect(played.stderr).toContain(session.id);
    // Olivia ran it; reading it is for auditors and admins.
    expect((await tether('recording', 'play', session.id, '--instant', '--as', 'olivia')).code).toBe(1);

    const verified = await tether('audit', 'verify', '--as', 'admin');
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    // Someone with write access to the store rewrites what the command printed.
    const db = new Database(join(data, 'tether.db'));
    try {
      const changed = db
        .prepare(
          "update recording_chunks set data = replace(data, 'queue restarted', 'nothing happened') where session_id = ?",
        )
        .run(session.id);
      expect(changed.changes).toBeGreaterThan(0);
    } finally {
      db.close();
    }
    const tampered = await tether('audit', 'verify', '--as', 'admin');
    expect(tampered.code).toBe(1);
    expect(tampered.stdout + tampered.stderr).toMatch(new RegExp(`chunk \\d+ of session ${session.id}`));
  }, 90_000);

  it('stops the command when the broker cannot take the recording, and the broker ends the session', async () => {
    const requestId = await approvedRequest('INC-2');
    const pidFile = join(home, 'shell.pid');
    const run = start(
      'exec',
      '--request',
      requestId,
      '--as',
      'olivia',
      '--',
      'sh',
      '-c',
      `echo $$ > ${pidFile}; echo started; exec sleep 600`,
    );
    for (let i = 0; i < 200 && !/started/.test(run.stdout()); i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(run.stdout(), run.stderr()).toContain('started');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(pid)).toBe(true);

    // The broker is cut off: connections reset, new ones refused.
    await proxy.refuse();
    const finished = await run.exited;
    expect(finished.code).toBe(1);
    expect(finished.stderr).toMatch(/recording of session \S+ could not be delivered/);
    expect(alive(pid)).toBe(false);

    // Back again: the session the CLI could not end has ended by itself, its recording lapsed.
    await proxy.allow();
    let session = await sessionOf(requestId);
    for (let i = 0; i < 100 && session.state !== 'ended'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      session = await sessionOf(requestId);
    }
    expect(session).toMatchObject({ state: 'ended', end_reason: 'recording_lapsed' });
  }, 90_000);
});
