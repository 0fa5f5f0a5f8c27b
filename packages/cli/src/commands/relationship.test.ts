import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { narrowingBody, parseApprovals, parseNames, proposalBody, timeFrom } from './relationship.js';

const NOW = Date.UTC(2026, 0, 5, 10, 0, 0);

describe('relationship: what is asked of the broker', () => {
  it('reads --ends as a time, or as a duration from now', () => {
    expect(timeFrom('90d', NOW)).toBe('2026-04-05T10:00:00.000Z');
    expect(timeFrom('1d12h', NOW)).toBe('2026-01-06T22:00:00.000Z');
    expect(timeFrom('2026-06-30T18:00:00Z', NOW)).toBe('2026-06-30T18:00:00.000Z');
    expect(timeFrom('2026-06-30', NOW)).toBe('2026-06-30T00:00:00.000Z');
    expect(() => timeFrom('soon', NOW)).toThrow(CliError);
  });

  it('takes comma-separated names and 0 to 5 approvals per side, refused before any call otherwise', () => {
    expect(parseNames('operators, night-shift')).toEqual(['operators', 'night-shift']);
    expect(() => parseNames('a,,b')).toThrow(InvalidArgumentError);
    expect(parseApprovals('2')).toBe(2);
    expect(parseApprovals('0')).toBe(0);
    for (const bad of ['-1', '6', 'x', '1.5', ''])
      expect(() => parseApprovals(bad)).toThrow(InvalidArgumentError);
  });

  it('proposes with only the options given', () => {
    const flags = {
      customer: 'acme-corp',
      groups: ['operators'],
      privileges: ['server-maintenance'],
      ends: '30d',
    };
    expect(proposalBody('managed', flags, NOW)).toEqual({
      customer: 'acme-corp',
      name: 'managed',
      groups: ['operators'],
      privileges: ['server-maintenance'],
      ends_at: '2026-02-04T10:00:00.000Z',
    });
    expect(
      proposalBody('managed', { ...flags, starts: '2026-02-01T00:00:00Z', approvals: 2 }, NOW),
    ).toMatchObject({
      starts_at: '2026-02-01T00:00:00.000Z',
      approvals: { customer: 2 },
    });
  });

  it("asks the provider's approvals with its approver groups, N of M per side", () => {
    const flags = { customer: 'acme-corp', groups: ['operators'], privileges: ['db'], ends: '30d' };
    expect(
      proposalBody(
        'managed',
        { ...flags, approvals: 0, providerApprovals: 2, providerApprovers: ['leads'] },
        NOW,
      ).approvals,
    ).toEqual({ customer: 0, provider: 2, provider_approvers: ['leads'] });
    expect(narrowingBody({ providerApprovals: 3 }, NOW)).toEqual({ approvals: { provider: 3 } });
  });

  it('narrows with what is given, and refuses a narrowing that changes nothing', () => {
    expect(narrowingBody({ privileges: ['x'], approvals: 3 }, NOW)).toEqual({
      privileges: ['x'],
      approvals: { customer: 3 },
    });
    expect(narrowingBody({ ends: '7d' }, NOW)).toEqual({ ends_at: '2026-01-12T10:00:00.000Z' });
    expect(() => narrowingBody({}, NOW)).toThrow(/nothing to change/);
  });
});
