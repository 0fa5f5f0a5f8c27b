import { describe, expect, it } from 'vitest';
import { DPOP_NONCE_DEFAULTS, PepDpopNonces } from './nonce.js';

const START = Date.UTC(2026, 0, 5, 10, 0, 0);

function setUp(windowSeconds?: number) {
  const clock = { now: START };
  const nonces = new PepDpopNonces({ now: () => clock.now, ...(windowSeconds ? { windowSeconds } : {}) });
  return { clock, nonces };
}

describe('PEP-issued DPoP nonces', () => {
  it('hands out one 128-bit base64url nonce per window and accepts it for one more window', () => {
    const { clock, nonces } = setUp(60);
    const first = nonces.current();
    expect(first).toMatch(/^[A-Za-z0-9_-]{22}$/);
    clock.now += 59_999;
    expect(nonces.current()).toBe(first);
    clock.now += 1;
    const second = nonces.current();
    expect(second).not.toBe(first);
    expect(nonces.accepts(first)).toBe(true);
    expect(nonces.accepts(second)).toBe(true);
    clock.now += 60_000;
    expect(nonces.accepts(first)).toBe(false);
    expect(nonces.accepts(second)).toBe(true);
  });

  it('answers the proof its own nonce when accepted, else the current one (so the check says use_dpop_nonce)', () => {
    const { nonces } = setUp();
    const current = nonces.current();
    expect(nonces.expectedFor(current)).toBe(current);
    for (const bad of [undefined, '', 'forged', 42, { n: current }, `${current}x`]) {
      expect(nonces.expectedFor(bad)).toBe(current);
      expect(nonces.accepts(bad)).toBe(false);
    }
  });

  it('two instances (two gateways, or one before and after a restart) never accept each other’s nonces', () => {
    const clock = { now: START };
    const a = new PepDpopNonces({ now: () => clock.now });
    const b = new PepDpopNonces({ now: () => clock.now });
    expect(a.current()).not.toBe(b.current());
    expect(b.accepts(a.current())).toBe(false);
    expect(a.accepts(b.current())).toBe(false);
  });

  it('computes the previous window after a jump of several windows, not a stale cached one', () => {
    const { clock, nonces } = setUp(60);
    const old = nonces.current();
    clock.now += 10 * 60_000;
    const now = nonces.current();
    clock.now += 60_000;
    expect(nonces.accepts(now)).toBe(true);
    expect(nonces.accepts(old)).toBe(false);
  });

  it.each([0, -1, Number.NaN, DPOP_NONCE_DEFAULTS.maxWindowSeconds + 1])(
    'refuses a window of %s s as a programming error',
    (windowSeconds) => {
      expect(() => new PepDpopNonces({ now: Date.now, windowSeconds })).toThrow(TypeError);
    },
  );
});
