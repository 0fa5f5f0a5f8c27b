import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collect,
  type Finished,
  freePort,
  isolatedEnv,
  MAIN,
  ROOT,
  type Spawned as Server,
  spawnDemoBroker,
  waitForHealth,
} from '../support/processes.js';

/**
 * The quickstart as a user lives it, with real processes: the built CLI starts the demo
 * broker, and the walkthrough in docs/walkthrough.md runs line by line against it.
 */

const WALKTHROUGH = join(ROOT, 'docs/walkthrough.md');
const README = join(ROOT, 'README.md');

/** Runs one shell line as a user would, in the repository root. */
function sh(line: string, env: NodeJS.ProcessEnv, timeoutMs = 15_000): Promise<Finished> {
  const child = spawn('bash', ['-c', line], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return collect(child).exited.finally(() => clearTimeout(timer));
}

/** The ```sh block of a Markdown text (the first one after `after`, if given). */
function shBlock(markdown: string, after = ''): string | undefined {
  const from = after ? markdown.indexOf(after) : 0;
  if (from < 0) return undefined;
  return /```sh\n([\s\S]*?)```/.exec(markdown.slice(from))?.[1];
}

/** Command lines of a block: comments and blank lines dropped. */
function commandLines(block: string): string[] {
  return block
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * The walkthrough says `npx tether` or `node packages/cli/dist/main.js`; the test runs the
 * built file directly, by absolute path, to skip npx's start-up time.
 */
function localized(line: string): string {
  return line.replace(/^(npx tether|node packages\/cli\/dist\/main\.js)\b/, `node ${JSON.stringify(MAIN)}`);
}

describe('quickstart: tether server --demo and the walkthrough, as real processes', () => {
  let home: string;
  let data: string;
  let port: number;
  let url: string;
  let env: NodeJS.ProcessEnv;
  /** Every long-lived process spawned, so that afterAll can kill what is left. */
  const spawned: Server[] = [];
  /** The broker now running. */
  let broker: Server;

  function startServer(): Server {
    broker = spawnDemoBroker(port, data, env);
    spawned.push(broker);
    return broker;
  }

  async function stopServer(server: Server): Promise<{ finished: Finished; ms: number }> {
    const started = Date.now();
    server.child.kill('SIGTERM');
    const finished = await Promise.race([
      server.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('no exit within 5 s of SIGTERM')), 5000),
      ),
    ]);
    return { finished, ms: Date.now() - started };
  }

  const tether = (args: string) => sh(`node ${JSON.stringify(MAIN)} ${args}`, env);
  const identity = (name: string) =>
    JSON.parse(readFileSync(join(home, 'demo', `${name}.json`), 'utf8')) as {
      broker: string;
      tenant: string;
      principal: string;
      key: { kid: string };
    };

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
    home = mkdtempSync(join(tmpdir(), 'tether-e2e-home-'));
    data = mkdtempSync(join(tmpdir(), 'tether-e2e-data-'));
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = isolatedEnv({ TETHER_HOME: home });
  });

  afterAll(async () => {
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(spawned.map((p) => p.exited));
    rmSync(home, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  });

  it('starts the demo broker: /healthz answers 200 within 10 s of spawn, identities written 0600', async () => {
    const spawnedAt = Date.now();
    const server = startServer();
    await waitForHealth(url, 10_000, server);
    expect(Date.now() - spawnedAt).toBeLessThan(10_000);
    for (const name of ['admin', 'olivia', 'avery', 'deploy-pipeline']) {
      const file = join(home, 'demo', `${name}.json`);
      expect(readFileSync(file, 'utf8')).toContain(url);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    expect(existsSync(join(home, 'identity.json'))).toBe(true);
    // The banner names the URL and the demo cast; logs (at warn) stay off stdout.
    await expect.poll(() => server.stdout(), { timeout: 2000 }).toContain(`listening on ${url}`);
    expect(server.stdout()).toMatch(/olivia\s+operator/);
  });

  it('runs every line of the walkthrough successfully, with the outcomes it promises', async () => {
    const block = shBlock(readFileSync(WALKTHROUGH, 'utf8'));
    expect(block, 'docs/walkthrough.md has a ```sh block').toBeDefined();
    const lines = commandLines(block!);
    expect(lines.length).toBeGreaterThan(5);
    const outputs: { line: string; out: string }[] = [];
    for (const line of lines) {
      const result = await sh(localized(line), env);
      const out = result.stdout + result.stderr;
      expect(result.code, `${line}\n${out}`).toBe(0);
      outputs.push({ line, out });
    }
    const outputOf = (pattern: RegExp) => {
      const found = outputs.find((o) => pattern.test(o.line));
      expect(found, `a walkthrough line matching ${pattern}`).toBeDefined();
      return found!.out;
    };
    expect(outputOf(/request firewall-admin .*--as olivia/)).toMatch(/state:\s+pending/);
    expect(outputOf(/approve .*--as olivia/)).toContain('error self_approval_forbidden');
    expect(outputOf(/approve .*--as avery/)).toMatch(/state:\s+approved by avery/);
    expect(outputOf(/requests --mine --as olivia/)).toMatch(
      /olivia\s+firewall-admin\s+NET-1234\s+30m\s+approved/,
    );
    expect(outputOf(/request deploy .*--as deploy-pipeline/)).toMatch(/state:\s+approved automatically/);
    expect(outputOf(/audit verify --as admin/)).toMatch(/audit chain ok: \d+ records verified/);
  });

  it('marks each refused line with `|| true`, and without it the command does fail (exit 1)', async () => {
    const refused = commandLines(shBlock(readFileSync(WALKTHROUGH, 'utf8'))!).filter((l) =>
      l.includes('|| true'),
    );
    expect(refused.length).toBeGreaterThan(0);
    for (const line of refused) {
      expect(line).toMatch(/\|\| true\s+# refused on purpose/);
      const result = await sh(localized(line.slice(0, line.indexOf('||')).trim()), env);
      expect(result.code, result.stderr).toBe(1);
    }
  });

  it('request --wait waits for the approval (plain progress lines without a terminal), then exits 0', async () => {
    const args = [
      'request',
      'firewall-admin',
      '--ticket',
      'NET-77',
      '--reason',
      'wait test',
      '--wait',
      '--as',
      'olivia',
    ];
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const waiting = { child, ...collect(child) };
    spawned.push(waiting);
    await expect.poll(() => waiting.stderr(), { timeout: 10_000 }).toContain('waiting for req_');
    const approved = await tether('approve --ticket NET-77 --as avery');
    expect(approved.code, approved.stderr).toBe(0);
    const done = await waiting.exited;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/state:\s+approved by avery/);
  });

  it('restarts on the same data and TETHER_HOME: same tenant, same keys, identities still work', async () => {
    const before = { admin: identity('admin'), olivia: identity('olivia') };
    const defaultIdentity = readFileSync(join(home, 'identity.json'), 'utf8');
    const { finished, ms } = await stopServer(broker);
    expect(finished.code).toBe(0);
    expect(ms).toBeLessThan(5000);

    const server = startServer();
    await waitForHealth(url, 10_000, server);
    expect(identity('admin').tenant).toBe(before.admin.tenant);
    expect(identity('olivia').key.kid).toBe(before.olivia.key.kid);
    expect(readFileSync(join(home, 'identity.json'), 'utf8')).toBe(defaultIdentity);
    const mine = await tether('requests --mine --ticket NET-1234 --json --as olivia');
    expect(mine.code, mine.stderr).toBe(0);
    const { requests } = JSON.parse(mine.stdout) as { requests: { state: string }[] };
    expect(requests.map((r) => r.state)).toContain('approved');
    const verified = await tether('audit verify --json');
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });
  });

  it('exits 0 within 5 s of SIGTERM', async () => {
    const { finished, ms } = await stopServer(broker);
    expect(finished.code).toBe(0);
    expect(finished.signal).toBeNull();
    expect(ms).toBeLessThan(5000);
  });

  it('README.md carries the same walkthrough block as docs/walkthrough.md', () => {
    if (!existsSync(README)) return;
    const readme = readFileSync(README, 'utf8');
    if (!readme.includes('<!-- walkthrough -->') || !readme.includes('<!-- /walkthrough -->')) return;
    const between = readme.slice(
      readme.indexOf('<!-- walkthrough -->'),
      readme.indexOf('<!-- /walkthrough -->'),
    );
    expect(shBlock(between), 'README.md has a ```sh block between the walkthrough markers').toBe(
      shBlock(readFileSync(WALKTHROUGH, 'utf8')),
    );
  });
});
