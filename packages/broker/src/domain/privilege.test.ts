import { isTetherError, type TetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import {
  assertPrivilegeIsCoherent,
  compileTicketPattern,
  PRIVILEGE_DEFAULTS,
  PRIVILEGE_LIMITS,
  type Privilege,
  TICKET_PATTERN_LIMITS,
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
  it.each(['(NET', '[0-9', 'a{2,1}', '*x', '(?<n>a)(?<n>b)', '\\', 'a{1001}'])(
    'refuses the invalid regular expression %j with invalid_request',
    (pattern) => {
      const err = refusal(() => compileTicketPattern(pattern));
      expect(err.code).toBe('invalid_request');
      expect(err.detail).toMatch(/^ticket\.pattern is refused: not a valid RE2 regular expression \(.+\)$/);
    },
  );

  it('reads RE2 syntax: escaped punctuation and inline flags are accepted', () => {
    // Deliberate change: V8's unicode mode refused `\-`; RE2 reads it as a literal `-`.
    expect(compileTicketPattern('NET\\-1').test('NET-1')).toBe(true);
    expect(compileTicketPattern('(?i)net-[0-9]+').test('NET-7')).toBe(true);
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
    'refuses %j, which would close an anchoring group and match a reference only partly',
    (pattern) => {
      expect(refusal(() => compileTicketPattern(pattern)).code).toBe('invalid_request');
    },
  );

  it('never matches a reference longer than the request schemas allow', () => {
    const re = compileTicketPattern('NET-[0-9]+');
    expect(re.test(`NET-${'1'.repeat(TICKET_PATTERN_LIMITS.maxReferenceLength - 4)}`)).toBe(true);
    expect(re.test(`NET-${'1'.repeat(TICKET_PATTERN_LIMITS.maxReferenceLength - 3)}`)).toBe(false);
  });
});

describe('ticket patterns RE2 cannot run, or that are too big, are refused at save time', () => {
  it.each([
    ['(?=CHG)CHG-[0-9]+', 'lookahead and lookbehind are not supported'],
    ['(?!X)CHG', 'lookahead and lookbehind are not supported'],
    ['(?<!X)CHG', 'lookahead and lookbehind are not supported'],
    ['(?<=X)CHG', 'lookahead and lookbehind are not supported'],
    ['(CHG)-\\1', 'backreferences are not supported'],
    ['(?<t>CHG)-\\k<t>', 'backreferences are not supported'],
    ['(a{0,40}){5}'.repeat(2), 'too complex'],
    [
      'x'.repeat(TICKET_PATTERN_LIMITS.maxPatternLength + 1),
      `at most ${TICKET_PATTERN_LIMITS.maxPatternLength} characters`,
    ],
  ])('%s', (pattern, reason) => {
    const err = refusal(() => assertPrivilegeIsCoherent(with_({ ticket: { required: true, pattern } })));
    expect(err.code).toBe('invalid_request');
    expect(err.detail).toContain(reason);
  });

  it.each([
    '(NET|CHG)-[0-9]+',
    'CHG-[0-9]+',
    '[A-Z]+-[0-9]+',
    '(\\d+-)?CHG',
    '(?:NET|CHG)-[0-9]{1,8}',
    '[(]+x',
    '(ab){2}',
    '(?<project>[A-Z]+)-[0-9]+',
    // Refused by the old heuristic guard, harmless on a linear-time engine.
    '(A|A0?)+-[0-9]+',
    '(a+)+b',
    'a*a*a*a*b',
    '(a{0,40}){5}',
  ])('accepts %s', (pattern) => {
    expect(() => assertPrivilegeIsCoherent(with_({ ticket: { required: true, pattern } }))).not.toThrow();
  });
});
