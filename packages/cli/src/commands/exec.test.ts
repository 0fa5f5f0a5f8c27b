import type { CredentialView } from '@tether-broker/protocol/api';
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { CliError, EXIT } from '../errors.js';
import { checkInvocation, parsePoll } from './exec.js';
import { exitCodeOf } from './exec-child.js';
import { connectorVariable, credentialEnv } from './exec-handoff.js';
import { refreshDelay } from './exec-watch.js';

const credential = (connector: string, kind: string, username: string): CredentialView => ({
  connector,
  kind,
  username,
  secret: `secret-of-${username}`,
  valid_until: '2030-01-01T00:00:00.000Z',
});

describe('exec: credential variables', () => {
  it.each([
    ['prod-db', 'PROD_DB'],
    ['warehouse', 'WAREHOUSE'],
    ['eu.west.pg', 'EU_WEST_PG'],
    ['db_2', 'DB_2'],
    ['café', 'CAF_'],
  ])('connector %j → TETHER_%s_…', (connector, expected) => {
    expect(connectorVariable(connector)).toBe(expected);
  });

  it('names a username and password per connector, and the session id', () => {
    const env = credentialEnv('ses_1', [
      credential('prod-db', 'postgres', 'u1'),
      credential('hooks', 'webhook', 'u2'),
    ]);
    expect(env).toEqual({
      TETHER_SESSION_ID: 'ses_1',
      TETHER_PROD_DB_USERNAME: 'u1',
      TETHER_PROD_DB_PASSWORD: 'secret-of-u1',
      TETHER_HOOKS_USERNAME: 'u2',
      TETHER_HOOKS_PASSWORD: 'secret-of-u2',
      PGUSER: 'u1',
      PGPASSWORD: 'secret-of-u1',
    });
  });

  it('sets PGUSER / PGPASSWORD only for exactly one postgres credential', () => {
    const two = credentialEnv('ses_1', [
      credential('a', 'postgres', 'u1'),
      credential('b', 'postgres', 'u2'),
    ]);
    expect(two).not.toHaveProperty('PGUSER');
    expect(two).not.toHaveProperty('PGPASSWORD');
    expect(credentialEnv('ses_1', [])).toEqual({ TETHER_SESSION_ID: 'ses_1' });
  });

  it('refuses two connectors that would share variables, rather than hide one', () => {
    expect(() =>
      credentialEnv('ses_1', [
        credential('prod-db', 'postgres', 'u1'),
        credential('prod_db', 'postgres', 'u2'),
      ]),
    ).toThrow(/TETHER_PROD_DB_USERNAME/);
  });
});

describe('exec: --poll', () => {
  it('reads milliseconds and durations', () => {
    expect(parsePoll('200ms')).toBe(200);
    expect(parsePoll('1s')).toBe(1000);
    expect(parsePoll('2')).toBe(2000);
    expect(parsePoll('1m')).toBe(60_000);
  });

  it.each(['50ms', '0', '99ms', 'soon'])('refuses %j', (text) => {
    expect(() => parsePoll(text)).toThrow(InvalidArgumentError);
  });
});

describe('exec: the exit code', () => {
  it("is the command's own, or 128+N for signal N", () => {
    expect(exitCodeOf(7, null)).toBe(7);
    expect(exitCodeOf(0, null)).toBe(0);
    expect(exitCodeOf(null, 'SIGTERM')).toBe(143);
    expect(exitCodeOf(null, 'SIGKILL')).toBe(137);
    expect(exitCodeOf(null, 'SIGINT')).toBe(130);
  });
});

describe('exec: when to refresh', () => {
  it('a minute before expiry, or halfway for short-lived tokens, never in less than a second', () => {
    expect(refreshDelay(0, 300_000)).toBe(240_000);
    expect(refreshDelay(0, 30_000)).toBe(15_000);
    expect(refreshDelay(0, 500)).toBe(1_000);
    expect(refreshDelay(10_000, 5_000)).toBe(1_000);
  });
});

describe('exec: the command line', () => {
  const usage = (flags: Parameters<typeof checkInvocation>[0], name: string | undefined) => {
    try {
      checkInvocation(flags, name);
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(EXIT.usage);
      return (err as CliError).detail;
    }
    return undefined;
  };

  it('accepts the three ways to a session', () => {
    expect(usage({ request: 'req_1' }, 'ls')).toBeUndefined();
    expect(usage({ ticket: 'CHG-1' }, 'ls')).toBeUndefined();
    expect(
      usage({ privilege: 'deploy', ticket: 'CHG-1', justification: 'x', duration: 600 }, 'ls'),
    ).toBeUndefined();
  });

  it('refuses what cannot work, saying why', () => {
    expect(usage({ ticket: 'CHG-1' }, undefined)).toMatch(/name the command to run after --/);
    expect(usage({ request: 'req_1', privilege: 'deploy', justification: 'x' }, 'ls')).toMatch(
      /--request or --privilege, not both/,
    );
    expect(usage({ request: 'req_1', ticket: 'CHG-1' }, 'ls')).toMatch(/--request or --ticket, not both/);
    expect(usage({ privilege: 'deploy' }, 'ls')).toMatch(/--justification/);
    expect(usage({ ticket: 'CHG-1', duration: 60 }, 'ls')).toMatch(/go with --privilege/);
    expect(usage({}, 'ls')).toMatch(/say which request to activate/);
  });
});
