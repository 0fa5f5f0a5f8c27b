import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  const bounds = { initialMs: 100, maxMs: 10_000 };

  it('doubles from the initial wait for each attempt, up to the cap', () => {
    const full = (attempt: number) => backoffDelay(attempt, bounds, () => 1);
    expect([0, 1, 2, 3, 4].map(full)).toEqual([100, 100, 200, 400, 800]);
    expect(full(8)).toBe(10_000);
    expect(full(10_000)).toBe(10_000);
  });

  it('keeps at least half of the wait and never more than all of it', () => {
    for (const attempt of [1, 3, 7, 40]) {
      const full = backoffDelay(attempt, bounds, () => 1);
      expect(backoffDelay(attempt, bounds, () => 0)).toBe(full / 2);
      for (let i = 0; i < 100; i++) {
        const wait = backoffDelay(attempt, bounds);
        expect(wait).toBeGreaterThanOrEqual(full / 2);
        expect(wait).toBeLessThanOrEqual(full);
      }
    }
  });
});
