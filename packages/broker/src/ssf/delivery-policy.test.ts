import { describe, expect, it } from 'vitest';
import { DELIVERY_POLICY, retryDelay } from './delivery-policy.js';

const policy = { baseDelayMs: 1_000, maxDelayMs: 300_000 };

describe('retryDelay', () => {
  it.each([
    // failures, random, expected delay
    [1, 0, 500],
    [1, 0.999_999, 1_000],
    [2, 0, 1_000],
    [3, 0.5, 3_000],
    [9, 0, 128_000],
    [10, 0, 150_000], // 256 s capped at 300 s, halved by the jitter floor
    [10, 0.999_999, 300_000],
    [1_000, 0.5, 225_000],
  ])('after %i failure(s) with jitter %d waits %i ms', (failures, random, expected) => {
    expect(retryDelay(failures, policy, () => random)).toBe(expected);
  });

  it('never waits less than half, nor more than all, of the capped exponential step', () => {
    for (let failures = 1; failures <= 40; failures++) {
      const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failures - 1));
      for (const random of [0, 0.25, 0.5, 0.75, 0.999]) {
        const delay = retryDelay(failures, policy, () => random);
        expect(delay).toBeGreaterThanOrEqual(step / 2);
        expect(delay).toBeLessThanOrEqual(step);
      }
    }
  });

  it('keeps the lease longer than a push may take, so a slow push is not sent twice by two replicas', () => {
    expect(DELIVERY_POLICY.leaseMs).toBeGreaterThan(DELIVERY_POLICY.pushTimeoutMs * 2);
  });
});
