import { isTetherError, type TetherError } from '@tether/protocol';
import { describe, expect, it } from 'vitest';
import {
  assertPrivilegeIsCoherent,
  compileTicketPattern,
  PRIVILEGE_DEFAULTS,
  PRIVILEGE_LIMITS,
  type Privilege,
} from './privilege.js';

type Coherence = Parameters<typeof assertPrivilegeIsCoherent>[0];

const base: Coherence = {
  maxDurationSeconds: PRIVILEGE_DEFAULTS.maxDurationSeconds,
  tokenTtlSeconds: PRIVILEGE_DEFAULTS.tokenTtlSeconds,
  approval: { approvals: 1, approvers: { principals: [], groups: [] } },
  ticket: { required: false },
};

function with_(changes: {
  maxDurationSeconds?: number;
  tokenTtlSeconds?: number;
  approvals?: number;
  ticket?: Privilege['ticket'];
}): Coherence {
  return {
    maxDurationSeconds: changes.maxDurationSeconds ?? base.maxDurationSeconds,
    tokenTtlSeconds: changes.tokenTtlSeconds ?? base.tokenTtlSeconds,
    approval: { ...base.approval, approvals: changes.approvals ?? base.approval.approvals },
    ticket: changes.ticket ?? base.ticket,
  };
}

function refusal(run: () => unknown): TetherError {
  try {
    run();
  } catch (err) {
    if (isTetherError(err)) return err;
    throw err;
  }
  throw new Error('expected a TetherError, got none');
}

describe('assertPrivilegeIsCoherent', () => {
  const rows: { name: string; input: Coherence; refused?: RegExp }[] = [
    { name: 'the defaults are coherent', input: base },
    { name: 'max_duration at the 60 s floor', input: with_({ maxDurationSeconds: 60, tokenTtlSeconds: 60 }) },
    {
      name: 'max_duration below 60 s',
      input: with_({ maxDurationSeconds: 59, tokenTtlSeconds: 30 }),
      refused: /max_duration/,
    },
    {
      name: 'max_duration at the 7-day ceiling',
      input: with_({ maxDurationSeconds: PRIVILEGE_LIMITS.maxDurationSeconds }),
    },
    {
      name: 'max_duration past the 7-day ceiling',
      input: with_({ maxDurationSeconds: PRIVILEGE_LIMITS.maxDurationSeconds + 1 }),
      refused: /max_duration/,
    },
    {
      name: 'token_ttl at the 30 s floor',
      input: with_({ tokenTtlSeconds: PRIVILEGE_LIMITS.minTokenTtlSeconds }),
    },
    { name: 'token_ttl below 30 s', input: with_({ tokenTtlSeconds: 29 }), refused: /token_ttl/ },
    {
      name: 'token_ttl at the 1 h ceiling',
      input: with_({ tokenTtlSeconds: PRIVILEGE_LIMITS.maxTokenTtlSeconds }),
    },
    { name: 'token_ttl past the 1 h ceiling', input: with_({ tokenTtlSeconds: 3601 }), refused: /token_ttl/ },
    {
      name: 'token_ttl equal to max_duration',
      input: with_({ maxDurationSeconds: 120, tokenTtlSeconds: 120 }),
    },
    {
      name: 'token_ttl longer than max_duration',
      input: with_({ maxDurationSeconds: 120, tokenTtlSeconds: 121 }),
      refused: /token_ttl may not exceed max_duration/,
    },
    { name: 'zero approvals', input: with_({ approvals: 0 }), refused: /approval\.approvals/ },
    { name: 'negative approvals', input: with_({ approvals: -1 }), refused: /approval\.approvals/ },
    { name: 'fractional approvals', input: with_({ approvals: 1.5 }), refused: /approval\.approvals/ },
    { name: 'the most approvals allowed', input: with_({ approvals: PRIVILEGE_LIMITS.maxApprovals }) },
    {
      name: 'one approval too many',
      input: with_({ approvals: PRIVILEGE_LIMITS.maxApprovals + 1 }),
      refused: /approval\.approvals/,
    },
    {
      name: 'a valid ticket pattern',
      input: with_({ ticket: { required: true, pattern: '(NET|CHG)-[0-9]+' } }),
    },
    {
      name: 'an invalid ticket pattern',
      input: with_({ ticket: { required: true, pattern: '(NET' } }),
      refused: /ticket\.pattern/,
    },
  ];
  for (const row of rows) {
    it(`${row.refused ? 'refuses' : 'accepts'} ${row.name}`, () => {
      if (!row.refused) {
        expect(() => assertPrivilegeIsCoherent(row.input)).not.toThrow();
        return;
      }
      const err = refusal(() => assertPrivilegeIsCoherent(row.input));
      expect(err.code).toBe('invalid_request');
      expect(err.status).toBe(400);
      expect(err.detail).toMatch(row.refused);
    });
  }
});

describe('compileTicketPattern', () => {
  it.each(['(NET', '[0-9', 'a{2,1}', '*x', '(?<n>a)(?<n>b)', '\\'])(
    'refuses the invalid regular expression %j with invalid_request',
    (pattern) => {
      const err = refusal(() => compileTicketPattern(pattern));
      expect(err.code).toBe('invalid_request');
      expect(err.detail).toBe('ticket.pattern is not a valid regular expression');
    },
  );

  it('refuses a pattern that only the non-unicode syntax accepts', () => {
    // Without the `u` flag `\-` outside a class is a harmless identity escape; with it, an error.
    expect(refusal(() => compileTicketPattern('NET\\-1')).code).toBe('invalid_request');
  });

  it('anchors the whole pattern, alternations included', () => {
    const re = compileTicketPattern('NET|CHG-[0-9]+');
    expect(re.test('NET')).toBe(true);
    expect(re.test('CHG-7')).toBe(true);
    expect(re.test('NET-1')).toBe(false); // unanchored, `NET` alone would match inside it
    expect(re.test('xCHG-7')).toBe(false);
    expect(compileTicketPattern('NET-[0-9]+').test('NET-1x')).toBe(false);
  });

  it.each(['a)|(?:b', 'NET-[0-9]+)|(?:.*', '.*)|(?:x'])(
    'refuses %j, which would close the anchoring group and match a reference only partly',
    (pattern) => {
      // Wrapped naively this is `^(?:a)|(?:b)$`: anchored at the start for one branch only.
      expect(refusal(() => compileTicketPattern(pattern)).code).toBe('invalid_request');
    },
  );
});

describe('ticket patterns that could backtrack badly are refused', () => {
  it.each([
    ['(A|A0?)+-[0-9]+', 'repeated group'],
    ['(a+)+b', 'repeated group'],
    ['(a|ab)*c', 'repeated group'],
    ['(?:a+)+', 'repeated group'],
    ['(x|y){2,5}', 'repeated group'],
    ['a*a*a*a*b', 'unbounded quantifiers'],
    ['(?=CHG)CHG-[0-9]+', 'lookahead'],
    ['(?<!X)CHG', 'lookahead and lookbehind'],
    ['(CHG)-\\1', 'backreferences'],
  ])('%s', (pattern, reason) => {
    expect(() => compileTicketPattern(pattern)).toThrow(reason);
  });

  it.each([
    '(NET|CHG)-[0-9]+',
    'CHG-[0-9]+',
    '[A-Z]+-[0-9]+',
    '(\\d+-)?CHG',
    '(?:NET|CHG)-[0-9]{1,8}',
    '[(]+x',
    '(ab){2}',
  ])('accepts %s', (pattern) => {
    expect(() => compileTicketPattern(pattern)).not.toThrow();
  });
});
