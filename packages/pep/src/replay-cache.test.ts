import { describe, expect, it } from 'vitest';
import { ReplayCache, ReplayCacheFullError } from './replay-cache.js';

function cacheAt(start: number, maxEntries = 10) {
  const clock = { now: start };
  const cache = new ReplayCache({ maxEntries, now: () => clock.now });
  return { clock, cache };
}

describe('ReplayCache', () => {
  it('accepts a key once and refuses it again before it expires', () => {
    const { cache } = cacheAt(1_000);
    expect(cache.checkAndRemember('a', 2_000)).toBe(true);
    expect(cache.checkAndRemember('a', 2_000)).toBe(false);
    expect(cache.checkAndRemember('b', 2_000)).toBe(true);
  });

  it('keeps a key up to and including its expiry instant, then forgets it', () => {
    const { clock, cache } = cacheAt(1_000);
    cache.checkAndRemember('a', 2_000);
    clock.now = 2_000;
    expect(cache.checkAndRemember('a', 3_000)).toBe(false);
    clock.now = 2_001;
    expect(cache.checkAndRemember('a', 3_000)).toBe(true);
    expect(cache.checkAndRemember('a', 3_000)).toBe(false);
  });

  it('fails closed when full of unexpired keys: refuses new ones and still remembers the old', () => {
    const { cache } = cacheAt(1_000, 3);
    for (const key of ['a', 'b', 'c']) expect(cache.checkAndRemember(key, 5_000)).toBe(true);
    expect(() => cache.checkAndRemember('d', 5_000)).toThrow(ReplayCacheFullError);
    expect(() => cache.checkAndRemember('d', 5_000)).toThrow('replay cache is full');
    // A replay of a remembered key is still a replay, not a "full" error.
    expect(cache.checkAndRemember('a', 5_000)).toBe(false);
    expect(cache.size).toBe(3);
  });

  it('makes room by evicting expired keys only', () => {
    const { clock, cache } = cacheAt(1_000, 3);
    cache.checkAndRemember('short-1', 2_000);
    cache.checkAndRemember('short-2', 2_000);
    cache.checkAndRemember('long', 9_000);
    clock.now = 2_001;
    expect(cache.checkAndRemember('new', 9_000)).toBe(true);
    expect(cache.size).toBe(2);
    expect(cache.checkAndRemember('long', 9_000)).toBe(false);
    expect(cache.checkAndRemember('new', 9_000)).toBe(false);
  });

  it('never holds more than maxEntries', () => {
    const { clock, cache } = cacheAt(0, 5);
    for (let i = 0; i < 50; i += 1) {
      clock.now = i * 10;
      try {
        cache.checkAndRemember(`k${i}`, clock.now + 25);
      } catch (error) {
        expect(error).toBeInstanceOf(ReplayCacheFullError);
      }
      expect(cache.size).toBeLessThanOrEqual(5);
    }
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses maxEntries %s', (maxEntries) => {
    expect(() => new ReplayCache({ maxEntries, now: () => 0 })).toThrow(RangeError);
  });

  it('refuses a non-finite expiry, which would otherwise never match as a replay', () => {
    const { cache } = cacheAt(0);
    expect(() => cache.checkAndRemember('a', Number.NaN)).toThrow(RangeError);
  });
});
