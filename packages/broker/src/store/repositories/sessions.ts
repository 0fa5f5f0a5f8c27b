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
    })
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

export async function touchSession(tx: TxHandle, id: string, at: number): Promise<void> {
  await tx.db.updateTable('sessions').set({ last_activity_at: at }).where('id', '=', id).execute();
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
