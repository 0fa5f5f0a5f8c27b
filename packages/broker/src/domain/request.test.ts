import { type ErrorCode, isTetherError } from '@tether-broker/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Privilege } from './privilege.js';
import {
  type AccessRequest,
  applyReview,
  assertRequestFitsPrivilege,
  cancel,
  expire,
  type RequestTimings,
  type Review,
  type ReviewDecision,
} from './request.js';

// Time is a plain number here: every function under test takes `now` (or a review's createdAt).
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const TIMINGS: RequestTimings = { requestTtlSeconds: 3600, activationWindowSeconds: 1800 };
const EXPIRES_AT = T0 + TIMINGS.requestTtlSeconds * 1000;
const REQUESTER = 'prn_requester';

function pendingRequest(overrides: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id: 'req_1',
    tenantId: 'ten_1',
    kind: 'access',
    sessionId: null,
    principalId: REQUESTER,
    privilegeId: 'prv_1',
    ticket: 'NET-42',
    justification: 'rotate edge rules',
    durationSeconds: 1800,
    state: 'pending',
    approvalsRequired: 1,
    createdAt: T0,
    expiresAt: EXPIRES_AT,
    resolvedAt: null,
    resolvedBy: null,
    activationExpiresAt: null,
    policies: ['operators-request'],
    ...overrides,
  };
}

function review(reviewerId: string, decision: ReviewDecision, createdAt = T0 + 60_000): Review {
  return { reviewerId, decision, comment: '', policies: ['approvers-approve'], createdAt };
}

/** The code of the TetherError `run` throws; fails the test if it throws anything else or nothing. */
function codeOf(run: () => unknown): ErrorCode {
  try {
    run();
  } catch (err) {
    if (isTetherError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a TetherError, got none');
}

describe('applyReview', () => {
  interface Row {
    name: string;
    request?: Partial<AccessRequest>;
    previous?: Review[];
    review: Review;
    expect:
      | { transition: 'approved' | 'denied' | null; state: AccessRequest['state'] }
      | { error: ErrorCode };
  }
  const rows: Row[] = [
    {
      name: 'one approval below a threshold of two leaves the request pending',
      request: { approvalsRequired: 2 },
      review: review('prn_a', 'approve'),
      expect: { transition: null, state: 'pending' },
    },
    {
      name: 'the approval that reaches a threshold of one approves',
      review: review('prn_a', 'approve'),
      expect: { transition: 'approved', state: 'approved' },
    },
    {
      name: 'the second distinct approval reaches a threshold of two',
      request: { approvalsRequired: 2 },
      previous: [review('prn_a', 'approve')],
      review: review('prn_b', 'approve'),
      expect: { transition: 'approved', state: 'approved' },
    },
    {
      name: 'a deny is final even with approvals still missing',
      request: { approvalsRequired: 3 },
      previous: [review('prn_a', 'approve')],
      review: review('prn_b', 'deny'),
      expect: { transition: 'denied', state: 'denied' },
    },
    {
      name: 'a deny with no approvals yet denies',
      review: review('prn_a', 'deny'),
      expect: { transition: 'denied', state: 'denied' },
    },
    {
      name: 'the requester may not approve their own request',
      review: review(REQUESTER, 'approve'),
      expect: { error: 'self_approval_forbidden' },
    },
    {
      name: 'the requester may not deny their own request either',
      review: review(REQUESTER, 'deny'),
      expect: { error: 'self_approval_forbidden' },
    },
    {
      name: 'a reviewer may not approve twice',
      request: { approvalsRequired: 2 },
      previous: [review('prn_a', 'approve')],
      review: review('prn_a', 'approve'),
      expect: { error: 'duplicate_review' },
    },
    {
      name: 'a reviewer who approved may not come back and deny',
      request: { approvalsRequired: 2 },
      previous: [review('prn_a', 'approve')],
      review: review('prn_a', 'deny'),
      expect: { error: 'duplicate_review' },
    },
    {
      name: 'an approved request takes no more reviews',
      request: { state: 'approved', resolvedAt: T0, resolvedBy: 'prn_a' },
      previous: [review('prn_a', 'approve')],
      review: review('prn_b', 'deny'),
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'a denied request takes no more reviews',
      request: { state: 'denied', resolvedAt: T0, resolvedBy: 'prn_a' },
      review: review('prn_b', 'approve'),
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'a cancelled request takes no more reviews',
      request: { state: 'cancelled', resolvedAt: T0, resolvedBy: REQUESTER },
      review: review('prn_b', 'approve'),
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'an expired request takes no more reviews',
      request: { state: 'expired', resolvedAt: EXPIRES_AT },
      review: review('prn_b', 'approve', T0),
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'a terminal request past its deadline is still "not pending", not "expired"',
      request: { state: 'denied', resolvedAt: T0, resolvedBy: 'prn_a' },
      review: review('prn_b', 'approve', EXPIRES_AT + 1),
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'a review one millisecond before expiresAt is accepted',
      review: review('prn_a', 'approve', EXPIRES_AT - 1),
      expect: { transition: 'approved', state: 'approved' },
    },
    {
      name: 'a review at expiresAt is refused as expired',
      review: review('prn_a', 'approve', EXPIRES_AT),
      expect: { error: 'request_expired' },
    },
    {
      name: 'a deny at expiresAt is refused as expired',
      review: review('prn_a', 'deny', EXPIRES_AT),
      expect: { error: 'request_expired' },
    },
    {
      name: 'a review after expiresAt is refused as expired',
      review: review('prn_a', 'approve', EXPIRES_AT + 1),
      expect: { error: 'request_expired' },
    },
  ];

  for (const row of rows) {
    it(row.name, () => {
      const request = pendingRequest(row.request);
      const frozen = structuredClone(request);
      const previous = row.previous ?? [];
      if ('error' in row.expect) {
        expect(codeOf(() => applyReview(request, previous, row.review, TIMINGS))).toBe(row.expect.error);
      } else {
        const outcome = applyReview(request, previous, row.review, TIMINGS);
        expect(outcome.transition).toBe(row.expect.transition);
        expect(outcome.request.state).toBe(row.expect.state);
        expect(outcome.review).toEqual(row.review);
        if (row.expect.state === 'pending') {
          expect(outcome.request).toEqual(request);
        } else {
          expect(outcome.request.resolvedAt).toBe(row.review.createdAt);
          expect(outcome.request.resolvedBy).toBe(row.review.reviewerId);
        }
        if (row.expect.state === 'approved') {
          expect(outcome.request.activationExpiresAt).toBe(
            row.review.createdAt + TIMINGS.activationWindowSeconds * 1000,
          );
        } else {
          expect(outcome.request.activationExpiresAt).toBeNull();
        }
      }
      // Pure: the input is never mutated, whatever the outcome.
      expect(request).toEqual(frozen);
    });
  }
});

describe('applyReview with both sides of a relationship (N of M per side)', () => {
  const provider = (id: string, decision: ReviewDecision = 'approve') => ({
    ...review(id, decision),
    side: 'provider' as const,
  });
  const request = pendingRequest({ approvalsRequired: 1 });

  it("waits for the provider's approvals after the customer's are in, and the other way round", () => {
    expect(applyReview(request, [], review('prn_anna', 'approve'), TIMINGS, 1).transition).toBeNull();
    expect(applyReview(request, [], provider('prn_seat_lee'), TIMINGS, 1).transition).toBeNull();
    expect(
      applyReview(request, [review('prn_anna', 'approve')], provider('prn_seat_lee'), TIMINGS, 1).transition,
    ).toBe('approved');
  });

  it("never counts one side's approvals for the other", () => {
    const two = pendingRequest({ approvalsRequired: 2 });
    const previous = [provider('prn_seat_a'), provider('prn_seat_b')];
    expect(applyReview(two, previous, review('prn_anna', 'approve'), TIMINGS, 1).transition).toBeNull();
    const none = pendingRequest({ approvalsRequired: 0 });
    expect(
      applyReview(none, [review('prn_anna', 'approve')], review('prn_bob', 'approve'), TIMINGS, 1).transition,
    ).toBeNull();
    expect(applyReview(none, [provider('prn_seat_a')], provider('prn_seat_b'), TIMINGS, 2).transition).toBe(
      'approved',
    );
  });

  it("a denial from the provider's side is final too", () => {
    expect(
      applyReview(request, [review('prn_anna', 'approve')], provider('prn_seat_lee', 'deny'), TIMINGS, 1),
    ).toMatchObject({ transition: 'denied', request: { state: 'denied' } });
  });
});

describe('expire', () => {
  const rows: {
    name: string;
    request?: Partial<AccessRequest>;
    now: number;
    expect: AccessRequest['state'] | null;
  }[] = [
    { name: 'a pending request before its deadline is not due', now: EXPIRES_AT - 1, expect: null },
    { name: 'a pending request at its deadline expires', now: EXPIRES_AT, expect: 'expired' },
    {
      name: 'a pending request long after its deadline expires',
      now: EXPIRES_AT + 86_400_000,
      expect: 'expired',
    },
    {
      name: 'an approved request is never expired by the request TTL',
      request: { state: 'approved', resolvedAt: T0, resolvedBy: 'prn_a', activationExpiresAt: T0 + 1 },
      now: EXPIRES_AT + 1,
      expect: null,
    },
    {
      name: 'a denied request stays denied',
      request: { state: 'denied', resolvedAt: T0, resolvedBy: 'prn_a' },
      now: EXPIRES_AT + 1,
      expect: null,
    },
    {
      name: 'a cancelled request stays cancelled',
      request: { state: 'cancelled', resolvedAt: T0, resolvedBy: REQUESTER },
      now: EXPIRES_AT + 1,
      expect: null,
    },
    {
      name: 'an expired request is not expired twice',
      request: { state: 'expired', resolvedAt: EXPIRES_AT },
      now: EXPIRES_AT + 1,
      expect: null,
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const request = pendingRequest(row.request);
      const next = expire(request, row.now);
      if (row.expect === null) {
        expect(next).toBeNull();
      } else {
        expect(next).toEqual({ ...request, state: 'expired', resolvedAt: EXPIRES_AT, resolvedBy: null });
      }
    });
  }

  it('records the deadline as the resolution time, however late the sweeper runs', () => {
    expect(expire(pendingRequest(), EXPIRES_AT + 3_600_000)?.resolvedAt).toBe(EXPIRES_AT);
  });
});

describe('cancel', () => {
  const rows: {
    name: string;
    request?: Partial<AccessRequest>;
    now: number;
    expect: { error: ErrorCode } | 'cancelled';
  }[] = [
    { name: 'a pending request can be cancelled', now: T0 + 1, expect: 'cancelled' },
    { name: 'up to one millisecond before its deadline', now: EXPIRES_AT - 1, expect: 'cancelled' },
    { name: 'not at its deadline: it has expired', now: EXPIRES_AT, expect: { error: 'request_expired' } },
    {
      name: 'not once approved',
      request: { state: 'approved', resolvedAt: T0, resolvedBy: 'prn_a' },
      now: T0 + 1,
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'not once denied',
      request: { state: 'denied', resolvedAt: T0, resolvedBy: 'prn_a' },
      now: T0 + 1,
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'not twice',
      request: { state: 'cancelled', resolvedAt: T0, resolvedBy: REQUESTER },
      now: T0 + 1,
      expect: { error: 'request_not_pending' },
    },
    {
      name: 'not once expired',
      request: { state: 'expired', resolvedAt: EXPIRES_AT },
      now: T0 + 1,
      expect: { error: 'request_not_pending' },
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const request = pendingRequest(row.request);
      if (row.expect === 'cancelled') {
        expect(cancel(request, row.now, REQUESTER)).toEqual({
          ...request,
          state: 'cancelled',
          resolvedAt: row.now,
          resolvedBy: REQUESTER,
        });
      } else {
        expect(codeOf(() => cancel(request, row.now, REQUESTER))).toBe(row.expect.error);
      }
    });
  }
});

describe('assertRequestFitsPrivilege', () => {
  type Rule = Pick<Privilege, 'ticket' | 'maxDurationSeconds' | 'name'>;
  const firewall: Rule = {
    name: 'firewall-admin',
    maxDurationSeconds: 7200,
    ticket: { required: true, pattern: 'NET-[0-9]+' },
  };
  const optional: Rule = { name: 'deploy', maxDurationSeconds: 3600, ticket: { required: false } };
  const optionalWithPattern: Rule = {
    name: 'deploy',
    maxDurationSeconds: 3600,
    ticket: { required: false, pattern: '(NET|CHG)-[0-9]+' },
  };
  const rows: {
    name: string;
    privilege: Rule;
    ask: { ticket: string | null; durationSeconds: number };
    expect: ErrorCode | 'fits';
  }[] = [
    {
      name: 'a matching ticket within the maximum fits',
      privilege: firewall,
      ask: { ticket: 'NET-42', durationSeconds: 1800 },
      expect: 'fits',
    },
    {
      name: 'exactly the maximum duration fits',
      privilege: firewall,
      ask: { ticket: 'NET-1', durationSeconds: 7200 },
      expect: 'fits',
    },
    {
      name: 'one second over the maximum is refused',
      privilege: firewall,
      ask: { ticket: 'NET-1', durationSeconds: 7201 },
      expect: 'duration_exceeds_max',
    },
    {
      name: 'a required ticket that is absent is refused',
      privilege: firewall,
      ask: { ticket: null, durationSeconds: 600 },
      expect: 'ticket_required',
    },
    {
      name: 'an optional ticket may be absent',
      privilege: optional,
      ask: { ticket: null, durationSeconds: 600 },
      expect: 'fits',
    },
    {
      name: 'an optional ticket with a pattern may be absent',
      privilege: optionalWithPattern,
      ask: { ticket: null, durationSeconds: 600 },
      expect: 'fits',
    },
    {
      name: 'any ticket fits a rule without a pattern',
      privilege: optional,
      ask: { ticket: 'whatever-7', durationSeconds: 600 },
      expect: 'fits',
    },
    {
      name: 'an optional ticket that is given must match the pattern',
      privilege: optionalWithPattern,
      ask: { ticket: 'JIRA-1', durationSeconds: 600 },
      expect: 'ticket_pattern_mismatch',
    },
    {
      name: 'the pattern is anchored at the end: NET-1x does not match NET-[0-9]+',
      privilege: firewall,
      ask: { ticket: 'NET-1x', durationSeconds: 600 },
      expect: 'ticket_pattern_mismatch',
    },
    {
      name: 'the pattern is anchored at the start: xNET-1 does not match',
      privilege: firewall,
      ask: { ticket: 'xNET-1', durationSeconds: 600 },
      expect: 'ticket_pattern_mismatch',
    },
    {
      name: 'a match buried inside a longer reference does not count',
      privilege: firewall,
      ask: { ticket: 'CHG-9/NET-1/x', durationSeconds: 600 },
      expect: 'ticket_pattern_mismatch',
    },
    {
      name: 'an alternation is anchored as a whole: NET-1 matches (NET|CHG)-[0-9]+',
      privilege: optionalWithPattern,
      ask: { ticket: 'NET-1', durationSeconds: 600 },
      expect: 'fits',
    },
    {
      name: 'an alternation is anchored as a whole: NET-1x does not match',
      privilege: optionalWithPattern,
      ask: { ticket: 'NET-1x', durationSeconds: 600 },
      expect: 'ticket_pattern_mismatch',
    },
    {
      name: 'the duration is checked before the ticket',
      privilege: firewall,
      ask: { ticket: null, durationSeconds: 7201 },
      expect: 'duration_exceeds_max',
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      if (row.expect === 'fits') {
        expect(() => assertRequestFitsPrivilege(row.privilege, row.ask)).not.toThrow();
      } else {
        expect(codeOf(() => assertRequestFitsPrivilege(row.privilege, row.ask))).toBe(row.expect);
      }
    });
  }
});

describe('review thresholds (property)', () => {
  /** Applies reviews in order as the service would: a refused review is not recorded. */
  function replay(request: AccessRequest, reviews: Review[]) {
    let current = request;
    const accepted: Review[] = [];
    const steps: (ErrorCode | 'approved' | 'denied' | null)[] = [];
    for (const r of reviews) {
      try {
        const outcome = applyReview(current, accepted, r, TIMINGS);
        current = outcome.request;
        accepted.push(r);
        steps.push(outcome.transition);
      } catch (err) {
        if (!isTetherError(err)) throw err;
        steps.push(err.code);
      }
    }
    return { final: current, steps };
  }

  it('approves exactly at the N-th distinct approval unless a deny came first; terminal states never change', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.constantFrom<ReviewDecision>('approve', 'deny'), { maxLength: 12 }),
        fc.array(fc.constantFrom<ReviewDecision>('approve', 'deny'), { minLength: 1, maxLength: 4 }),
        (threshold, decisions, lateDecisions) => {
          // Distinct reviewers, none of them the requester, at increasing times before the deadline.
          const reviews = decisions.map((d, i) => review(`prn_r${i}`, d, T0 + (i + 1) * 1000));
          const request = pendingRequest({ approvalsRequired: threshold });
          const { final, steps } = replay(request, reviews);

          const firstDeny = decisions.indexOf('deny');
          let approvals = 0;
          let approvedAt = -1;
          for (let i = 0; i < decisions.length && (firstDeny === -1 || i < firstDeny); i++) {
            if (decisions[i] === 'approve' && ++approvals === threshold) {
              approvedAt = i;
              break;
            }
          }
          const decidedAt = approvedAt !== -1 ? approvedAt : firstDeny;

          steps.forEach((step, i) => {
            if (decidedAt === -1 || i < decidedAt) expect(step).toBeNull();
            else if (i === decidedAt) expect(step).toBe(approvedAt !== -1 ? 'approved' : 'denied');
            else expect(step).toBe('request_not_pending');
          });
          if (approvedAt !== -1) {
            const at = reviews[approvedAt]!.createdAt;
            expect(final).toMatchObject({
              state: 'approved',
              resolvedBy: reviews[approvedAt]!.reviewerId,
              resolvedAt: at,
              activationExpiresAt: at + TIMINGS.activationWindowSeconds * 1000,
            });
          } else if (firstDeny !== -1) {
            expect(final).toMatchObject({ state: 'denied', resolvedBy: reviews[firstDeny]!.reviewerId });
          } else {
            expect(final).toEqual(request);
          }

          // Once terminal, no further review by anyone new changes it.
          if (decidedAt !== -1) {
            const late = lateDecisions.map((d, i) => review(`prn_late${i}`, d, T0 + 100_000 + i));
            const again = replay(final, late);
            expect(again.steps.every((s) => s === 'request_not_pending')).toBe(true);
            expect(again.final).toEqual(final);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
