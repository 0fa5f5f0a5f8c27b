import { describe, expect, it } from 'vitest';
import { narrowingCutoff, tokenIssuedAt } from './session.js';
import { applyTrustUpdate, sessionTrust, trustFacts } from './trust.js';

describe('trust context', () => {
  it('takes a report only when it is at least as recent as the one held', () => {
    const held = { deviceCompliance: { value: 'not-compliant', at: 2000 } };
    expect(applyTrustUpdate(held, { deviceCompliance: { value: 'compliant', at: 1000 } })).toEqual({
      next: held,
      changed: false,
    });
    expect(applyTrustUpdate(held, { deviceCompliance: { value: 'compliant', at: 3000 } })).toEqual({
      next: { deviceCompliance: { value: 'compliant', at: 3000 } },
      changed: true,
    });
    // The same value again is not a change (no re-evaluation needed).
    expect(applyTrustUpdate(held, { deviceCompliance: { value: 'not-compliant', at: 2500 } }).changed).toBe(
      false,
    );
    expect(applyTrustUpdate({}, { credentialChangedAt: 5 }).changed).toBe(true);
    expect(applyTrustUpdate({ credentialChangedAt: 9 }, { credentialChangedAt: 5 }).changed).toBe(false);
  });

  it("lays a session's own reports over its principal's when they are newer", () => {
    const merged = sessionTrust(
      { riskLevel: { value: 'high', at: 10 }, assuranceLevel: { value: 'aal2', at: 10 } },
      { riskLevel: { value: 'low', at: 20 }, assuranceLevel: { value: 'aal1', at: 5 } },
    );
    expect(merged).toEqual({
      riskLevel: { value: 'low', at: 20 },
      assuranceLevel: { value: 'aal2', at: 10 },
    });
  });

  it('reads as Cedar sees it: unknown by default, credential changes only after activation', () => {
    expect(trustFacts({}, 100)).toEqual({
      deviceCompliance: 'unknown',
      assuranceLevel: 'unknown',
      riskLevel: 'unknown',
      credentialChanged: false,
      claims: [],
    });
    expect(trustFacts({ credentialChangedAt: 50 }, 100).credentialChanged).toBe(false);
    expect(trustFacts({ credentialChangedAt: 150 }, 100).credentialChanged).toBe(true);
    expect(trustFacts({ claims: { value: { b: '2', a: '1' }, at: 1 } }, 0).claims).toEqual(['a=1', 'b=2']);
  });
});

describe('narrowing cutoff', () => {
  it('refuses every token issued up to the change, and tokens issued after carry an iat at or past it', () => {
    const change = 1_700_000_000_500; // ms, mid-second
    const before = narrowingCutoff(change, null);
    expect(before).toBe(1_700_000_001);
    expect(Math.floor((change - 400) / 1000)).toBeLessThan(before); // issued earlier in the same second
    expect(tokenIssuedAt({ narrowedBefore: before }, change + 100)).toBe(before);
    expect(tokenIssuedAt({ narrowedBefore: before }, change + 5000)).toBe(1_700_000_005);
  });

  it('moves past an earlier cutoff even within the same second', () => {
    const first = narrowingCutoff(1_700_000_000_100, null);
    // A token issued right after the first narrowing has iat = first; a second narrowing must refuse it.
    const second = narrowingCutoff(1_700_000_000_200, first);
    expect(second).toBeGreaterThan(tokenIssuedAt({ narrowedBefore: first }, 1_700_000_000_150));
  });
});
