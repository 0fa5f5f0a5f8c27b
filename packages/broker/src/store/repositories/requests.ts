import type { RequestState } from '@tether-broker/protocol';
import type { AccessRequest, RequestKind, Review, ReviewDecision } from '../../domain/request.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { AccessRequestRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toRequest(row: AccessRequestRow): AccessRequest {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    kind: row.kind as RequestKind,
    sessionId: row.session_id,
    principalId: row.principal_id,
    privilegeId: row.privilege_id,
    ticket: row.ticket,
    justification: row.justification,
    durationSeconds: row.duration_s,
    state: row.state as RequestState,
    approvalsRequired: row.approvals_required,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    resolvedAt: row.resolved_at,
    resolvedBy: row.resolved_by,
    activationExpiresAt: row.activation_expires_at,
    policies: fromJson<string[]>(row.policies),
    ...(row.relationship_id ? { relationshipId: row.relationship_id } : {}),
  };
}

export async function insertRequest(h: StoreHandle, r: AccessRequest): Promise<void> {
  await h.db
    .insertInto('access_requests')
    .values({
      id: r.id,
      tenant_id: r.tenantId,
      kind: r.kind,
      session_id: r.sessionId,
      principal_id: r.principalId,
      privilege_id: r.privilegeId,
      ticket: r.ticket,
      justification: r.justification,
      duration_s: r.durationSeconds,
      state: r.state,
      approvals_required: r.approvalsRequired,
      created_at: r.createdAt,
      expires_at: r.expiresAt,
      resolved_at: r.resolvedAt,
      resolved_by: r.resolvedBy,
      activation_expires_at: r.activationExpiresAt,
      policies: toJson(r.policies),
      relationship_id: r.relationshipId ?? null,
    })
    .execute();
}

/**
 * Writes a transition, guarded by the state it was computed from, so a transition computed
 * on a stale read can never land. Returns false when the guard failed.
 */
export async function updateRequestState(
  tx: TxHandle,
  r: AccessRequest,
  from: RequestState,
): Promise<boolean> {
  const result = await tx.db
    .updateTable('access_requests')
    .set({
      state: r.state,
      resolved_at: r.resolvedAt,
      resolved_by: r.resolvedBy,
      activation_expires_at: r.activationExpiresAt,
      policies: toJson(r.policies),
    })
    .where('id', '=', r.id)
    .where('tenant_id', '=', r.tenantId)
    .where('state', '=', from)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function findRequest(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<AccessRequest | undefined> {
  const row = await h.db
    .selectFrom('access_requests')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toRequest(row);
}

/** Several requests of the tenant at once (continuous evaluation reads a batch of sessions' requests). */
export async function findRequestsByIds(
  h: StoreHandle,
  tenantId: string,
  ids: readonly string[],
): Promise<AccessRequest[]> {
  if (ids.length === 0) return [];
  const rows = await h.db
    .selectFrom('access_requests')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', ids)
    .execute();
  return rows.map(toRequest);
}

/** Reads a request for a transition, holding its row lock until the transaction ends. */
export async function lockRequest(
  tx: TxHandle,
  tenantId: string,
  id: string,
): Promise<AccessRequest | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('access_requests').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id),
  ).executeTakeFirst();
  return row && toRequest(row);
}

export interface RequestFilter {
  /** Filters on the state a reader sees at `now`: an overdue pending row counts as expired. */
  state?: RequestState;
  now: number;
  principalId?: string;
  privilegeId?: string;
  ticket?: string;
  limit: number;
}

export async function listRequests(
  h: StoreHandle,
  tenantId: string,
  f: RequestFilter,
): Promise<AccessRequest[]> {
  let q = h.db.selectFrom('access_requests').selectAll().where('tenant_id', '=', tenantId);
  if (f.state === 'pending') q = q.where('state', '=', 'pending').where('expires_at', '>', f.now);
  else if (f.state === 'expired')
    q = q.where((eb) =>
      eb.or([
        eb('state', '=', 'expired'),
        eb.and([eb('state', '=', 'pending'), eb('expires_at', '<=', f.now)]),
      ]),
    );
  else if (f.state) q = q.where('state', '=', f.state);
  if (f.principalId) q = q.where('principal_id', '=', f.principalId);
  if (f.privilegeId) q = q.where('privilege_id', '=', f.privilegeId);
  if (f.ticket) q = q.where('ticket', '=', f.ticket);
  const rows = await q.orderBy('created_at', 'desc').orderBy('id').limit(f.limit).execute();
  return rows.map(toRequest);
}

/**
 * The session's pending extension request, if any (at most one: a unique index holds it),
 * whether or not its deadline has passed.
 */
export async function findPendingExtension(
  h: StoreHandle,
  tenantId: string,
  sessionId: string,
): Promise<AccessRequest | undefined> {
  const row = await h.db
    .selectFrom('access_requests')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('session_id', '=', sessionId)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return row && toRequest(row);
}

/** Pending requests whose deadline has passed, oldest first, across tenants (for the sweeper). */
export async function listOverduePending(
  h: StoreHandle,
  now: number,
  limit: number,
): Promise<AccessRequest[]> {
  const rows = await h.db
    .selectFrom('access_requests')
    .selectAll()
    .where('state', '=', 'pending')
    .where('expires_at', '<=', now)
    .orderBy('expires_at')
    .limit(limit)
    .execute();
  return rows.map(toRequest);
}

export async function countRequestsForPrivilege(
  h: StoreHandle,
  tenantId: string,
  privilegeId: string,
): Promise<number> {
  const row = await h.db
    .selectFrom('access_requests')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('tenant_id', '=', tenantId)
    .where('privilege_id', '=', privilegeId)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export async function insertReview(
  tx: TxHandle,
  tenantId: string,
  requestId: string,
  review: Review,
): Promise<void> {
  await tx.db
    .insertInto('request_reviews')
    .values({
      tenant_id: tenantId,
      request_id: requestId,
      reviewer_id: review.reviewerId,
      decision: review.decision,
      comment: review.comment,
      policies: toJson(review.policies),
      created_at: review.createdAt,
    })
    .execute();
}

export async function listReviews(h: StoreHandle, tenantId: string, requestId: string): Promise<Review[]> {
  const rows = await h.db
    .selectFrom('request_reviews')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('request_id', '=', requestId)
    .orderBy('created_at')
    .orderBy('reviewer_id')
    .execute();
  return rows.map((r) => ({
    reviewerId: r.reviewer_id,
    decision: r.decision as ReviewDecision,
    comment: r.comment,
    policies: fromJson<string[]>(r.policies),
    createdAt: r.created_at,
  }));
}
