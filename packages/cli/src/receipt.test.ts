import type { SessionReceipt } from '@tether-broker/protocol';
import { describe, expect, it } from 'vitest';
import { receiptDetails, waitForEnforcement } from './receipt.js';

const T = Date.UTC(2026, 0, 5, 10, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();

function receipt(overrides: Partial<SessionReceipt> = {}): SessionReceipt {
  return {
    session: 'ses_0123456789abcdefghjkmnpqrs',
    state: 'ended',
    ended_at: iso(T),
    reason: 'revoked',
    seq: 4,
    enforced: false,
    peps: [
      {
        id: 'prn_a',
        name: 'core-pep',
        applied: 3,
        last_seen_at: iso(T + 900),
        live: true,
        enforced_at: null,
        // Two replicas sharing the identity: one has applied the end, one has not.
        instances: [
          { id: 'i-1', applied: 4, last_seen_at: iso(T + 30), enforced_at: iso(T + 30) },
          { id: 'i-2', applied: 3, last_seen_at: iso(T + 900), enforced_at: null },
        ],
      },
      {
        id: 'prn_b',
        name: 'edge-pep',
        applied: 4,
        last_seen_at: iso(T + 40),
        live: true,
        enforced_at: iso(T + 40),
        instances: [{ id: 'i-3', applied: 4, last_seen_at: iso(T + 40), enforced_at: iso(T + 40) }],
      },
      {
        id: 'prn_c',
        name: 'old-pep',
        applied: 1,
        last_seen_at: iso(T - 90_000),
        live: false,
        enforced_at: null,
        instances: [],
      },
    ],
    pending: ['core-pep'],
    ...overrides,
  };
}

/** A clock that moves only when the wait sleeps. */
function fakeTime() {
  let now = T;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
  };
}

describe('waitForEnforcement', () => {
  it('answers as soon as a receipt says the end is enforced', async () => {
    const time = fakeTime();
    const answers = [receipt(), receipt(), receipt({ enforced: true, pending: [] })];
    const pending: string[][] = [];
    const final = await waitForEnforcement(async () => answers.shift()!, {
      timeoutMs: 30_000,
      pollMs: 200,
      ...time,
      onPending: (r) => pending.push(r.pending),
    });
    expect(final.enforced).toBe(true);
    expect(time.sleeps).toEqual([200, 200]);
    expect(pending).toEqual([['core-pep'], ['core-pep']]);
  });

  it('gives up at the timeout with the last receipt, never sleeping past it', async () => {
    const time = fakeTime();
    let reads = 0;
    const final = await waitForEnforcement(
      async () => {
        reads++;
        return receipt();
      },
      { timeoutMs: 1000, pollMs: 300, ...time },
    );
    expect(final).toMatchObject({ enforced: false, pending: ['core-pep'] });
    expect(time.sleeps).toEqual([300, 300, 300, 100]);
    expect(reads).toBe(5);
    expect(time.now()).toBe(T + 1000);
  });

  it('reads once with a zero timeout', async () => {
    const time = fakeTime();
    const final = await waitForEnforcement(async () => receipt(), { timeoutMs: 0, ...time });
    expect(final.enforced).toBe(false);
    expect(time.sleeps).toEqual([]);
  });
});

describe('receiptDetails', () => {
  it('says who is pending, when each PEP enforced the end and how long after it', () => {
    const text = receiptDetails(receipt());
    expect(text).toContain('state:        ended (revoked) at 2026-01-05 10:00:00Z');
    expect(text).toContain('log position: 4');
    expect(text).toContain('enforced:     not yet: waiting for core-pep');
    expect(text.split('\n').slice(-4)).toEqual([
      'PEP       LIVE  APPLIED  ENFORCED                      LAST SEEN             INSTANCES',
      'core-pep  yes   3        pending                       2026-01-05 10:00:00Z  2 (1 pending)',
      'edge-pep  yes   4        2026-01-05 10:00:00Z (+40ms)  2026-01-05 10:00:00Z  1',
      'old-pep   no    1        -                             2026-01-05 09:58:30Z  -',
    ]);
  });

  it('tells a live session, an enforced end and no PEPs apart', () => {
    expect(
      receiptDetails(receipt({ state: 'active', ended_at: null, reason: null, seq: null, pending: [] })),
    ).toContain('enforced:     no: the session is live');
    expect(receiptDetails(receipt({ enforced: true, pending: [] }))).toContain(
      'yes, by every live enforcement point',
    );
    expect(receiptDetails(receipt({ enforced: true, pending: [], peps: [] }))).toContain(
      'enforcement points: none has reported to the broker',
    );
  });
});
