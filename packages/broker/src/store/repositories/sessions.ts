import { sql } from 'kysely';
import type { ActClaim } from '../../domain/delegation.js';
import type { EndReason, Session, SessionGrant } from '../../domain/session.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { SessionRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toSession(row: SessionRow): Session {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    requestId: row.request_id,
    principalId: row.principal_id,
    privilegeId: row.privilege_id,
    ticket: row.ticket,
    jkt: row.jkt,
    state: row.state as Session['state'],
    endReason: row.end_reason as EndReason | null,
    endedBy: row.ended_by,
    activatedAt: row.activated_at,
    hardExpiresAt: row.hard_expires_at,
    endedAt: row.ended_at,
    statusListId: row.status_list_id,
    statusIdx: row.status_idx,
    grant: fromJson<SessionGrant>(row.grant),
    lastActivityAt: row.last_activity_at,
    idleTimeoutSeconds: row.idle_timeout_s,
    narrowedBefore: row.narrowed_before,
    delegation:
      row.parent_session_id === null
        ? null
        : {
            parentSessionId: row.parent_session_id,
            depth: row.delegation_depth,
            act: fromJson<ActClaim>(row.act ?? '{}'),
            callBudget: row.call_budget === null ? null : fromJson<Record<string, number>>(row.call_budget),
            callsMade: row.calls_made === null ? {} : fromJson<Record<string, number>>(row.calls_made),
          },
    ...(row.relationship_id ? { relationshipId: row.relationship_id } : {}),
  };
}

export async function insertSession(tx: TxHandle, s: Session): Promise<void> {
  await tx.db
    .insertInto('sessions')
    .values({
      id: s.id,
      tenant_id: s.tenantId,
      request_id: s.requestId,
      principal_id: s.principalId,
      privilege_id: s.privilegeId,
      ticket: s.ticket,
      jkt: s.jkt,
      state: s.state,
      end_reason: s.endReason,
      ended_by: s.endedBy,
      activated_at: s.activatedAt,
      hard_expires_at: s.hardExpiresAt,
      ended_at: s.endedAt,
      status_list_id: s.statusListId,
      status_idx: s.statusIdx,
      grant: toJson(s.grant),
      last_activity_at: s.lastActivityAt,
      idle_timeout_s: s.idleTimeoutSeconds,
      narrowed_before: s.narrowedBefore,
      parent_session_id: s.delegation?.parentSessionId ?? null,
      delegation_depth: s.delegation?.depth ?? 0,
      act: s.delegation ? toJson(s.delegation.act) : null,
      call_budget: s.delegation?.callBudget ? toJson(s.delegation.callBudget) : null,
      calls_made: s.delegation?.callBudget ? toJson(s.delegation.callsMade) : null,
      relationship_id: s.relationshipId ?? null,
    })
    .execute();
}

/** The live sub-sessions delegated from a session (not their own children). */
export async function listLiveChildIds(h: StoreHandle, parentSessionId: string): Promise<string[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .select('id')
    .where('parent_session_id', '=', parentSessionId)
    .where('state', '=', 'active')
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Writes the calls a sub-session made against its budget (the caller holds its row lock). */
export async function writeSessionCalls(
  tx: TxHandle,
  id: string,
  callsMade: Record<string, number>,
): Promise<void> {
  await tx.db
    .updateTable('sessions')
    .set({ calls_made: toJson(callsMade) })
    .where('id', '=', id)
    .execute();
}

/** Writes the end of a session, only if it is still active. Returns false if someone ended it first. */
export async function writeSessionEnd(tx: TxHandle, s: Session): Promise<boolean> {
  const result = await tx.db
    .updateTable('sessions')
    .set({ state: 'ended', end_reason: s.endReason, ended_by: s.endedBy, ended_at: s.endedAt })
    .where('id', '=', s.id)
    .where('state', '=', 'active')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Writes narrowed grants of sessions the caller has locked and knows active, one statement per
 * distinct (grant, cutoff): a batch narrowed by one change mostly shares both.
 */
export async function writeSessionNarrowings(tx: TxHandle, sessions: readonly Session[]): Promise<void> {
  const groups = new Map<string, { grant: string; before: number | null; ids: string[] }>();
  for (const s of sessions) {
    const grant = toJson(s.grant);
    const key = `${s.narrowedBefore}:${grant}`;
    const group = groups.get(key) ?? { grant, before: s.narrowedBefore, ids: [] };
    group.ids.push(s.id);
    groups.set(key, group);
  }
  for (const g of groups.values())
    await tx.db
      .updateTable('sessions')
      .set({ grant: g.grant, narrowed_before: g.before })
      .where('id', 'in', g.ids)
      .where('state', '=', 'active')
      .execute();
}

export async function touchSession(tx: TxHandle, id: string, at: number): Promise<void> {
  await tx.db.updateTable('sessions').set({ last_activity_at: at }).where('id', '=', id).execute();
}

/**
 * Moves a live session's last activity forward to `at` (never back: reports arrive late and
 * out of order). Returns whether it moved.
 */
export async function recordSessionActivity(
  tx: TxHandle,
  tenantId: string,
  id: string,
  at: number,
): Promise<boolean> {
  const result = await tx.db
    .updateTable('sessions')
    .set({ last_activity_at: at })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('state', '=', 'active')
    .where('last_activity_at', '<', at)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Writes an extended hard expiry, only if the session is still active. Returns false if it has ended. */
export async function writeSessionExpiry(tx: TxHandle, id: string, hardExpiresAt: number): Promise<boolean> {
  const result = await tx.db
    .updateTable('sessions')
    .set({ hard_expires_at: hardExpiresAt })
    .where('id', '=', id)
    .where('state', '=', 'active')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function findSession(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<Session | undefined> {
  const row = await h.db
    .selectFrom('sessions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toSession(row);
}

/** Any tenant: for token-driven paths where the token names the session. */
export async function findSessionById(h: StoreHandle, id: string): Promise<Session | undefined> {
  const row = await h.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toSession(row);
}

export async function lockSession(tx: TxHandle, id: string): Promise<Session | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('sessions').selectAll().where('id', '=', id),
  ).executeTakeFirst();
  return row && toSession(row);
}

/** Locks several sessions in one statement, in id order (the order every multi-session lock takes). */
export async function lockSessions(tx: TxHandle, ids: readonly string[]): Promise<Session[]> {
  if (ids.length === 0) return [];
  const rows = await forUpdate(
    tx,
    // Parents before their sub-sessions, the order ending a parent takes them in.
    tx.db.selectFrom('sessions').selectAll().where('id', 'in', ids).orderBy('delegation_depth').orderBy('id'),
  ).execute();
  return rows.map(toSession);
}

export async function findSessionByRequest(h: StoreHandle, requestId: string): Promise<Session | undefined> {
  const row = await h.db
    .selectFrom('sessions')
    .selectAll()
    .where('request_id', '=', requestId)
    .executeTakeFirst();
  return row && toSession(row);
}

export interface SessionFilter {
  state?: 'active' | 'ended';
  principalId?: string;
  privilegeId?: string;
  ticket?: string;
  limit: number;
}

export async function listSessions(h: StoreHandle, tenantId: string, f: SessionFilter): Promise<Session[]> {
  let q = h.db.selectFrom('sessions').selectAll().where('tenant_id', '=', tenantId);
  if (f.state) q = q.where('state', '=', f.state);
  if (f.principalId) q = q.where('principal_id', '=', f.principalId);
  if (f.privilegeId) q = q.where('privilege_id', '=', f.privilegeId);
  if (f.ticket) q = q.where('ticket', '=', f.ticket);
  const rows = await q.orderBy('activated_at', 'desc').orderBy('id').limit(f.limit).execute();
  return rows.map(toSession);
}

/** Active sessions whose hard expiry has passed, across tenants (for the sweeper). */
export async function listOverdueSessions(h: StoreHandle, now: number, limit: number): Promise<Session[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .selectAll()
    .where('state', '=', 'active')
    .where('hard_expires_at', '<=', now)
    .orderBy('hard_expires_at')
    .limit(limit)
    .execute();
  return rows.map(toSession);
}

/** When a session with an idle timeout goes idle; the very expression `sessions_idle_deadline` (0031) indexes. */
const idleDeadline = sql<number>`last_activity_at + idle_timeout_s * cast(1000 as bigint)`;

/**
 * Active sessions, across tenants, that have gone idle by `now` (last activity plus idle
 * timeout) and have not passed their hard expiry (those end as `expired`), the earliest gone
 * idle first. Found through `sessions_idle_deadline`: the sweep costs what the idle sessions
 * cost, not a read of every live one.
 */
export async function listIdleSessions(h: StoreHandle, now: number, limit: number): Promise<Session[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .selectAll()
    .where('state', '=', 'active')
    .where('idle_timeout_s', 'is not', null)
    .where('hard_expires_at', '>', now)
    // Cast: the product of two integer columns would be a 32-bit integer on PostgreSQL.
    .where(sql<boolean>`${idleDeadline} <= ${now}`)
    .orderBy(idleDeadline)
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map(toSession);
}

/** Which live sessions a re-evaluation concerns; no member set means every one of the tenant. */
export interface SessionSelector {
  principalId?: string;
  privilegeId?: string;
  ticket?: string;
  sessionId?: string;
}

/**
 * Ids of the tenant's live sessions that `selector` picks, after `afterId` in id order: a
 * re-evaluation walks them page by page and resumes where it stopped.
 */
export async function listLiveSessionIdsAfter(
  h: StoreHandle,
  tenantId: string,
  selector: SessionSelector,
  s: { afterId: string; now: number; limit: number },
): Promise<string[]> {
  let q = h.db
    .selectFrom('sessions')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('state', '=', 'active')
    .where('hard_expires_at', '>', s.now)
    .where('id', '>', s.afterId);
  if (selector.principalId !== undefined) q = q.where('principal_id', '=', selector.principalId);
  if (selector.privilegeId !== undefined) q = q.where('privilege_id', '=', selector.privilegeId);
  if (selector.ticket !== undefined) q = q.where('ticket', '=', selector.ticket);
  if (selector.sessionId !== undefined) q = q.where('id', '=', selector.sessionId);
  const rows = await q.orderBy('id').limit(s.limit).execute();
  return rows.map((r) => r.id);
}
