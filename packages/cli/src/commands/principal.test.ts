import { describe, expect, it } from 'vitest';
import { contractBody } from './principal.js';

describe('principal contract flags → API body', () => {
  it('sends the sides given, as RFC 3339 times', () => {
    expect(contractBody({ contractEnds: '2026-03-31T18:00:00+02:00' })).toEqual({
      contract: { ends_at: '2026-03-31T16:00:00.000Z' },
    });
    expect(
      contractBody({ contractStarts: '2026-03-01T00:00:00Z', contractEnds: '2026-03-31T00:00:00Z' }),
    ).toEqual({ contract: { starts_at: '2026-03-01T00:00:00.000Z', ends_at: '2026-03-31T00:00:00.000Z' } });
    expect(contractBody({})).toEqual({});
  });

  it('removes the window with --no-contract, and refuses it beside a contract time', () => {
    expect(contractBody({ contract: false })).toEqual({ contract: null });
    expect(() => contractBody({ contract: false, contractEnds: '2026-03-31T00:00:00Z' })).toThrow(
      /cannot be combined/,
    );
  });

  it('refuses a time it cannot read', () => {
    expect(() => contractBody({ contractEnds: 'next friday' })).toThrow(/not a date\/time/);
  });
});
