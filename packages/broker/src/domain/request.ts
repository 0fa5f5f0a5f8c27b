import { type RequestState, TetherError } from '@tether-broker/protocol';
import { compileTicketPattern, type Privilege } from './privilege.js';

/**
 * What a request asks for: `access`, a new session (activated once approved); `extension`,
 * more time for a live session the requester holds (applied to it once approved);
 * `delegation`, a sub-session of a live session the requester holds, approved by its holder
 * as it is made (the record of who delegated what to whom).
 */
export const REQUEST_KINDS = ['access', 'extension', 'delegation'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

/** The task: who asks for which privilege, for how long, under which ticket. */
export interface AccessRequest {
  id: string;
  tenantId: string;
  kind: RequestKind;
  /** The session an `extension` extends, or a `delegation` delegates from; null for `access`. */
  sessionId: string | null;
  principalId: string;
  privilegeId: string;
  ticket: string | null;
  justification: string;
  /** Seconds: the session's length for `access`, the time added to the session for `extension`. */
  durationSeconds: number;
  state: RequestState;
  approvalsRequired: number;
  createdAt: number;
  /** A pending request not resolved by then expires. */
  expiresAt: number;
  resolvedAt: number | null;
  resolvedBy: string | null;
  /** An approved `access` request can be activated until then (the session is the next step); null otherwise. */
  activationExpiresAt: number | null;
  /** Policy ids that decided eligibility and, if so, auto-approval. */
  policies: string[];
  /** Asked by a provider operator's seat under this relationship (the MSP model); absent otherwise. */
  relationshipId?: string | undefined;
}

export type ReviewDecision = 'approve' | 'deny';

export interface Review {
  reviewerId: string;
  decision: ReviewDecision;
  comment: string;
  policies: string[];
  createdAt: number;
  /**
   * `provider` for a provider approver's review (through their seat) of a request made under a
   * relationship; absent for the tenant's own approvers. Not stored: a reviewer that is a seat
   * is on the provider's side.
   */
  side?: 'provider' | undefined;
}

export interface RequestTimings {
  /** How long a request may stay pending. */
  requestTtlSeconds: number;
  /** How long after approval the session may be started. */
  activationWindowSeconds: number;
}

/** What the requester asked for, checked against the privilege's own rules. */
export function assertRequestFitsPrivilege(
  privilege: Pick<Privilege, 'ticket' | 'maxDurationSeconds' | 'name'>,
  ask: { ticket: string | null; durationSeconds: number },
): void {
  if (ask.durationSeconds > privilege.maxDurationSeconds) {
    throw new TetherError(
      'duration_exceeds_max',
      `${privilege.name} allows at most ${privilege.maxDurationSeconds} s; ${ask.durationSeconds} s was requested`,
      { extra: { max_duration: privilege.maxDurationSeconds } },
    );
  }
  if (ask.ticket === null) {
    if (privilege.ticket.required) {
      throw new TetherError('ticket_required', `${privilege.name} needs a ticket reference (--ticket)`);
    }
    return;
  }
  if (
    privilege.ticket.pattern !== undefined &&
    !compileTicketPattern(privilege.ticket.pattern).test(ask.ticket)
  ) {
    throw new TetherError(
      'ticket_pattern_mismatch',
      `ticket ${JSON.stringify(ask.ticket)} does not match ${privilege.name}'s pattern ${privilege.ticket.pattern}`,
      { extra: { pattern: privilege.ticket.pattern } },
    );
  }
}

/** A pending request past its deadline is expired, whether or not a sweeper has written it yet. */
export function isPastDeadline(request: AccessRequest, now: number): boolean {
  return request.state === 'pending' && now >= request.expiresAt;
}

/** The transition to `expired`, or null when the request is not due. */
export function expire(request: AccessRequest, now: number): AccessRequest | null {
  if (!isPastDeadline(request, now)) return null;
  return { ...request, state: 'expired', resolvedAt: request.expiresAt, resolvedBy: null };
}

function assertStillPending(request: AccessRequest, now: number): void {
  if (isPastDeadline(request, now)) {
    throw new TetherError(
      'request_expired',
      `request ${request.id} expired at ${new Date(request.expiresAt).toISOString()}`,
    );
  }
  if (request.state !== 'pending') {
    throw new TetherError('request_not_pending', `request ${request.id} is already ${request.state}`, {
      extra: { state: request.state },
    });
  }
}

export function approvedAt(
  request: AccessRequest,
  now: number,
  timings: RequestTimings,
  by: string | null,
): AccessRequest {
  return {
    ...request,
    state: 'approved',
    resolvedAt: now,
    resolvedBy: by,
    // An extension is applied to its session as it is approved: nothing is left to activate.
    activationExpiresAt: request.kind === 'access' ? now + timings.activationWindowSeconds * 1000 : null,
  };
}

export interface ReviewOutcome {
  request: AccessRequest;
  review: Review;
  /** The state the request moved to, or null if it stays pending (more approvals needed). */
  transition: 'approved' | 'denied' | null;
}

/** The rules that hold whoever the reviewer is: pending, not the requester, not twice. */
export function assertReviewable(
  request: AccessRequest,
  previous: readonly Review[],
  reviewerId: string,
  now: number,
): void {
  assertStillPending(request, now);
  if (reviewerId === request.principalId) {
    throw new TetherError('self_approval_forbidden', 'a requester may not review their own request');
  }
  if (previous.some((r) => r.reviewerId === reviewerId)) {
    throw new TetherError('duplicate_review', `${reviewerId} has already reviewed request ${request.id}`);
  }
}

/**
 * Applies one review. Rules: only a pending, unexpired request; never by the requester; one
 * review per reviewer; a denial is final (from either side); the request is approved when the
 * distinct approvals of the tenant's own approvers reach `approvalsRequired` and those of the
 * provider's approvers reach `providerApprovalsRequired` (a request made under a relationship
 * asking both sides). Eligibility of the reviewer (policy, approver list) is decided before
 * this, by the caller.
 */
export function applyReview(
  request: AccessRequest,
  previous: readonly Review[],
  review: Review,
  timings: RequestTimings,
  providerApprovalsRequired = 0,
): ReviewOutcome {
  const now = review.createdAt;
  assertReviewable(request, previous, review.reviewerId, now);
  if (review.decision === 'deny') {
    return {
      request: { ...request, state: 'denied', resolvedAt: now, resolvedBy: review.reviewerId },
      review,
      transition: 'denied',
    };
  }
  const approvalsOf = (provider: boolean) =>
    new Set(
      [...previous, review]
        .filter((r) => r.decision === 'approve' && (r.side === 'provider') === provider)
        .map((r) => r.reviewerId),
    ).size;
  if (approvalsOf(false) >= request.approvalsRequired && approvalsOf(true) >= providerApprovalsRequired) {
    return { request: approvedAt(request, now, timings, review.reviewerId), review, transition: 'approved' };
  }
  return { request, review, transition: null };
}

/** The requester (or an admin) withdraws a pending request. */
export function cancel(request: AccessRequest, now: number, by: string): AccessRequest {
  assertStillPending(request, now);
  return { ...request, state: 'cancelled', resolvedAt: now, resolvedBy: by };
}
