import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT } from './errors.js';
import type { CliIo } from './io.js';
import { buildProgram, run, verbOf } from './program.js';

/** I/O that collects what the CLI writes, for one run. */
function collecting(overrides: Partial<CliIo> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Partial<CliIo> = {
    stdout: { write: (chunk) => out.push(String(chunk)) },
    stderr: { write: (chunk) => err.push(String(chunk)) },
    ...overrides,
  };
  return { io, stdout: () => out.join(''), stderr: () => err.join('') };
}

describe('the verb a command line names', () => {
  it('skips options and the values of --as and --identity', () => {
    expect(verbOf(['requests', '--mine'])).toBe('requests');
    expect(verbOf(['--json', '--as', 'olivia', 'session', 'list'])).toBe('session');
    expect(verbOf(['--identity', 'requests', 'whoami'])).toBe('whoami');
    expect(verbOf(['--identity=x.json', 'approve', 'req_1'])).toBe('approve');
    expect(verbOf(['--help'])).toBeUndefined();
    expect(verbOf([])).toBeUndefined();
  });

  it('declares that verb alone, or every verb when it names none or an unknown one', async () => {
    const names = async (verb?: string) => (await buildProgram(verb)).commands.map((c) => c.name());
    expect(await names('requests')).toEqual(['requests']);
    expect(await names('deny')).toEqual(['approve', 'deny', 'cancel']);
    const all = await names();
    expect(all).toEqual(expect.arrayContaining(['server', 'session', 'gateway', 'demo', 'approve']));
    expect(await names('no-such-verb')).toEqual(all);
  });
});

describe('runCli with injected I/O', () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'tether-program-'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('writes help and version to the given stdout', async () => {
    const version = collecting();
    expect(await run(['node', 'tether', '--version'], version.io)).toBe(EXIT.ok);
    expect(version.stdout()).toMatch(/^\d+\.\d+\.\d+\n$/);
    const help = collecting();
    expect(await run(['node', 'tether', '--help'], help.io)).toBe(EXIT.ok);
    expect(help.stdout()).toContain('Usage: tether');
    expect(help.stdout()).toContain('4 a package the verb needs is not installed');
    const verbHelp = collecting();
    expect(await run(['node', 'tether', '--json', 'requests', '--help'], verbHelp.io)).toBe(EXIT.ok);
    expect(verbHelp.stdout()).toContain('Usage: tether requests');
  });

  it('suggests a verb for a misspelt one, as with every verb declared', async () => {
    const cli = collecting();
    expect(await run(['node', 'tether', 'requets'], cli.io)).toBe(EXIT.usage);
    expect(cli.stderr()).toContain("unknown command 'requets'");
    expect(cli.stderr()).toContain('(Did you mean one of request, requests?)');
  });

  it('reads TETHER_HOME from the given environment, and fails on the given stderr', async () => {
    const cli = collecting({ env: { TETHER_HOME: home } });
    expect(await run(['node', 'tether', 'requests'], cli.io)).toBe(EXIT.unreachable);
    expect(cli.stdout()).toBe('');
    expect(cli.stderr()).toContain(`cannot read identity ${join(home, 'identity.json')}`);
  });

  it('keeps concurrent runs apart', async () => {
    const other = mkdtempSync(join(tmpdir(), 'tether-program-'));
    try {
      const a = collecting({ env: { TETHER_HOME: home } });
      const b = collecting({ env: { TETHER_HOME: other } });
      await Promise.all([run(['node', 'tether', 'whoami'], a.io), run(['node', 'tether', 'whoami'], b.io)]);
      expect(a.stderr()).toContain(home);
      expect(a.stderr()).not.toContain(other);
      expect(b.stderr()).toContain(other);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('sends the API calls to the given fetch', async () => {
    const cli = collecting({
      env: { TETHER_HOME: home },
      fetch: async () => {
        throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      },
    });
    const { generateKeyPair, exportJWK } = await import('jose');
    const { writeIdentity } = await import('@tether-broker/client');
    const { privateKey } = await generateKeyPair('EdDSA', { extractable: true });
    writeIdentity(join(home, 'identity.json'), {
      broker: 'http://broker.invalid',
      tenant: 'ten_1',
      principal: 'prn_1',
      key: { ...(await exportJWK(privateKey)), kid: 'k1' },
    } as Parameters<typeof writeIdentity>[1]);
    expect(await run(['node', 'tether', 'requests'], cli.io)).toBe(EXIT.unreachable);
    expect(cli.stderr()).toContain(
      'error broker_unreachable: cannot reach the broker at http://broker.invalid',
    );
  });
});
