import { BrokerError, IdentityError } from '@tether-broker/client';
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { CliError, describeFailure, EXIT, isConnectionFailure } from './errors.js';

const refused = (code: string, detail: string, body: unknown = { code, detail }) =>
  new BrokerError(403, code, detail, body);

describe('what a failed command prints and exits with', () => {
  it('prints a refusal as `error <code>: <detail>` with a hint, exit 1', () => {
    const failure = describeFailure(refused('self_approval_forbidden', 'a requester may not review'));
    expect(failure.exitCode).toBe(EXIT.refused);
    expect(failure.lines[0]).toBe('error self_approval_forbidden: a requester may not review');
    expect(failure.lines[1]).toMatch(/^hint: /);
  });

  it('points an authentication failure at the identity file used', () => {
    const failure = describeFailure(refused('invalid_client', 'no registered key has that kid'), {
      identityPath: '/h/demo/olivia.json',
      brokerUrl: 'http://127.0.0.1:8700',
    });
    expect(failure.lines.join('\n')).toContain('/h/demo/olivia.json');
  });

  it('lists each policy error once', () => {
    const errors = ['policy "a": bad', 'policy "b": worse'];
    const failure = describeFailure(
      new BrokerError(422, 'policy_invalid', errors.join('\n'), { code: 'policy_invalid', errors }),
    );
    expect(failure.lines).toEqual([
      'error policy_invalid: the policy set is invalid',
      '  policy "a": bad',
      '  policy "b": worse',
    ]);
  });

  it('exits 3 for an unusable identity and for an unreachable broker, with the URL and how to start it', () => {
    expect(describeFailure(new IdentityError('cannot read identity /x: ENOENT')).exitCode).toBe(
      EXIT.unreachable,
    );
    const refusedConnection = new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    expect(isConnectionFailure(refusedConnection)).toBe(true);
    const failure = describeFailure(refusedConnection, { brokerUrl: 'http://127.0.0.1:8700' });
    expect(failure.exitCode).toBe(EXIT.unreachable);
    expect(failure.lines.join('\n')).toContain('is the broker running at http://127.0.0.1:8700?');
    expect(failure.lines.join('\n')).toContain('tether server');
  });

  it('exits 2 for usage errors, 0 for help and version', () => {
    expect(describeFailure(new CommanderError(1, 'commander.unknownOption', 'x')).exitCode).toBe(EXIT.usage);
    expect(describeFailure(new CommanderError(0, 'commander.helpDisplayed', '')).exitCode).toBe(EXIT.ok);
    expect(describeFailure(new CliError('invalid_argument', 'bad', EXIT.usage)).exitCode).toBe(EXIT.usage);
  });

  it('never prints a private key that happens to be in an error body', () => {
    const body = { code: 'invalid_key', detail: 'that is a private key', key: { d: 'SECRET-D' } };
    const failure = describeFailure(new BrokerError(400, 'invalid_key', 'that is a private key', body));
    expect(failure.lines.join('\n')).not.toContain('SECRET-D');
  });
});
