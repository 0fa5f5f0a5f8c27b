import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { cutoffBody, describeCutoff, parseReason } from './tenant.js';

describe('tenant cutoff: what is asked of the broker', () => {
  it('sends the reason, and ends sessions only when asked', () => {
    expect(cutoffBody({ reason: 'key leak' })).toEqual({ reason: 'key leak', end_sessions: false });
    expect(cutoffBody({ reason: 'key leak', endSessions: true })).toEqual({
      reason: 'key leak',
      end_sessions: true,
    });
  });

  it('takes a reason of 1 to 200 characters, and refuses a blank or longer one before any call', () => {
    expect(parseReason('x')).toBe('x');
    expect(parseReason('x'.repeat(200))).toBe('x'.repeat(200));
    for (const text of ['', '   ', 'x'.repeat(201)])
      expect(() => parseReason(text)).toThrow(InvalidArgumentError);
  });

  it('says when the cut-off falls, its event, and the sessions it ended', () => {
    const text = describeCutoff({ seq: 7, before: 1_767_607_201, ended_sessions: ['ses_a', 'ses_b'] });
    expect(text).toContain('2026-01-05T10:00:01Z');
    expect(text).toContain('#7 of the revocation log');
    expect(text).toContain('2 session(s)');
    expect(text).toContain('  ses_b');
    expect(describeCutoff({ seq: 1, before: 0, ended_sessions: [] })).toContain('by refreshing');
  });
});
