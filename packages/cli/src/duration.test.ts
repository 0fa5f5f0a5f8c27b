import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['90s', 90],
    ['30m', 1800],
    ['2h', 7200],
    ['1h30m', 5400],
    ['1h0m30s', 3630],
    ['1d', 86_400],
    ['900', 900],
    [' 15m ', 900],
  ])('reads %j as %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', 'm', '30x', '1.5h', '-5m', '30m1h', '2 h', 'h30', '1h30'])(
    'refuses %j as a usage error',
    (text) => {
      expect(() => parseDuration(text)).toThrow(InvalidArgumentError);
    },
  );

  it('round-trips through formatDuration', () => {
    for (const seconds of [59, 60, 3600, 5400, 90_061]) {
      expect(parseDuration(formatDuration(seconds))).toBe(seconds);
    }
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(5400)).toBe('1h30m');
  });
});
