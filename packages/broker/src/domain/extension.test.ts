import { isTetherError, type TetherError } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import { assertMayExtend, extensionBounds } from './extension.js';
import { idleDeadline, isIdle } from './idle.js';
import type { Session } from './session.js';

const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const HOUR = 3_600_000;

function session(overrides: Partial<Session> = {}): Session {
  return {
    id: 'ses_1',
    tenantId: 'ten_1',
    requestId: 'req_1',
    principalId: 'prn_holder',
    privilegeId: 'prv_1',
    ticket: null,
    jkt: 'jkt',
    state: 'active',
    endReason: null,
    endedBy: null,
    activatedAt: T0,
    hardExpiresAt: T0 + HOUR,
    endedAt: null,
    statusListId: 1,
    statusIdx: 1,
    grant: { privilege: 'p', actions: ['a'], resources: ['r'], audiences: ['x'], tokenTtlSeconds: 300 },
    lastActivityAt: T0,
    idleTimeoutSeconds: null,
    narrowedBefore: null,
    delegation: null,
    ...overrides,
  };
}

function refusal(run: () => unknown): TetherError {
  try {
    run();
  } catch (err) {
    if (isTetherError(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

const privilege = { name: 'fw', maxDurationSeconds: 2 * 3600 };

describe('extension bounds: the whole session length is capped at max_duration', () => {
  it.each([
    { name: 'within the cap', current: HOUR, by: 1800, total: 5400 },
    { name: 'exactly to the cap', current: HOUR, by: 3600, total: 7200 },
    { name: 'a session already extended once', current: 1.5 * HOUR, by: 1800, total: 7200 },
  ])('$name', ({ current, by, total }) => {
    const s = session({ hardExpiresAt: T0 + current });
    expect(extensionBounds(s, privilege, by)).toEqual({
      totalSeconds: total,
      hardExpiresAt: T0 + current + by * 1000,
    });
  });

  it.each([
    { name: 'one second past the cap', current: HOUR, by: 3601, left: 3600 },
    { name: 'a session at the cap', current: 2 * HOUR, by: 60, left: 0 },
  ])('refuses $name with duration_exceeds_max and what is left', ({ current, by, left }) => {
    const err = refusal(() => extensionBounds(session({ hardExpiresAt: T0 + current }), privilege, by));
    expect(err.code).toBe('duration_exceeds_max');
    expect(err.extra).toEqual({ max_duration: 7200, max_extension: left });
  });
});

describe('who may extend', () => {
  it.each([
    { name: 'another principal', s: session(), by: 'prn_other', now: T0, code: 'forbidden' },
    {
      name: 'an ended session',
      s: session({ state: 'ended', endReason: 'completed' }),
      by: 'prn_holder',
      now: T0,
      code: 'session_not_live',
    },
    {
      name: 'a session past its hard expiry',
      s: session(),
      by: 'prn_holder',
      now: T0 + HOUR,
      code: 'session_not_live',
    },
  ])('refuses $name', ({ s, by, now, code }) => {
    expect(refusal(() => assertMayExtend(s, by, now)).code).toBe(code);
  });

  it('lets the holder extend a live session', () => {
    expect(() => assertMayExtend(session(), 'prn_holder', T0 + HOUR - 1)).not.toThrow();
  });
});

describe('idle timeout', () => {
  it('has no deadline without a timeout', () => {
    expect(idleDeadline(session())).toBeNull();
    expect(isIdle(session(), T0 + 100 * HOUR)).toBe(false);
  });

  it('is idle from the last activity plus the timeout on', () => {
    const s = session({ idleTimeoutSeconds: 900, lastActivityAt: T0 + 60_000 });
    expect(idleDeadline(s)).toBe(T0 + 60_000 + 900_000);
    expect(isIdle(s, T0 + 60_000 + 899_999)).toBe(false);
    expect(isIdle(s, T0 + 60_000 + 900_000)).toBe(true);
  });
});
