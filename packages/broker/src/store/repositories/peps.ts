import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { PepRow } from '../schema.js';
import { fromJson } from './json.js';

/** What the broker knows about one enforcement point. */
export interface PepState {
  principalId: string;
  tenantId: string;
  lastAppliedSeq: number;
  lastSeenAt: number;
  decisionsDropped: number;
  createdAt: number;
}

function toPepState(row: PepRow): PepState {
  return {
    principalId: row.principal_id,
    tenantId: row.tenant_id,
    lastAppliedSeq: row.last_applied_seq,
    lastSeenAt: row.last_seen_at,
    decisionsDropped: row.decisions_dropped,
    createdAt: row.created_at,
  };
}

/**
 * Reads a PEP's row and locks it until the transaction ends, creating it first (as having
 * applied nothing, first heard from `now`) when this is the first time the broker hears from
 * it. The insert does nothing when the row exists, so two first reports at once do not collide.
 */
export async function lockOrCreatePep(
  tx: TxHandle,
  tenantId: string,
  principalId: string,
  now: number,
): Promise<PepState> {
  await tx.db
    .insertInto('peps')
    .values({
      principal_id: principalId,
      tenant_id: tenantId,
      last_applied_seq: 0,
      last_seen_at: now,
      decisions_dropped: 0,
      created_at: now,
    })
    .onConflict((oc) => oc.column('principal_id').doNothing())
    .execute();
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('peps').selectAll().where('principal_id', '=', principalId),
  ).executeTakeFirstOrThrow();
  return toPepState(row);
}

/** Records what the PEP reported: its position (already made monotonic by the caller) and when. */
export async function writePepProgress(
  tx: TxHandle,
  principalId: string,
  change: { lastAppliedSeq: number; lastSeenAt: number; decisionsDropped: number },
): Promise<void> {
  await tx.db
    .updateTable('peps')
    .set({
      last_applied_seq: change.lastAppliedSeq,
      last_seen_at: change.lastSeenAt,
      decisions_dropped: change.decisionsDropped,
    })
    .where('principal_id', '=', principalId)
    .execute();
}

export async function insertPepAck(
  tx: TxHandle,
  ack: { tenantId: string; principalId: string; seq: number; at: number },
): Promise<void> {
  await tx.db
    .insertInto('pep_acks')
    .values({ tenant_id: ack.tenantId, principal_id: ack.principalId, seq: ack.seq, at: ack.at })
    .execute();
}

/** Deletes acknowledgement history older than `before`. Answers how many rows went. */
export async function deletePepAcksBefore(h: StoreHandle, before: number): Promise<number> {
  const result = await h.db.deleteFrom('pep_acks').where('at', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** One PEP of a tenant, as a session receipt shows it. */
export interface PepEnforcement {
  principalId: string;
  name: string;
  lastAppliedSeq: number;
  lastSeenAt: number;
  /** When its first ack with `seq >= n` arrived; null without `n`, or when none is kept. */
  enforcedAt: number | null;
}

/**
 * Every PEP of the tenant, by name, with the time it first acknowledged position `seq` (when
 * given): one index seek per PEP on `pep_acks (principal_id, seq)`.
 */
export async function listPepEnforcement(
  h: StoreHandle,
  tenantId: string,
  seq: number | null,
): Promise<PepEnforcement[]> {
  const base = h.db
    .selectFrom('peps')
    .innerJoin('principals', 'principals.id', 'peps.principal_id')
    .select(['peps.principal_id', 'principals.name', 'peps.last_applied_seq', 'peps.last_seen_at'])
    .where('peps.tenant_id', '=', tenantId)
    .orderBy('principals.name');
  if (seq === null) {
    const rows = await base.execute();
    return rows.map((r) => ({
      principalId: r.principal_id,
      name: r.name,
      lastAppliedSeq: r.last_applied_seq,
      lastSeenAt: r.last_seen_at,
      enforcedAt: null,
    }));
  }
  const rows = await base
    .select((eb) =>
      eb
        .selectFrom('pep_acks')
        .select('pep_acks.at')
        .whereRef('pep_acks.principal_id', '=', 'peps.principal_id')
        .where('pep_acks.seq', '>=', seq)
        .orderBy('pep_acks.seq')
        .limit(1)
        .as('enforced_at'),
    )
    .execute();
  return rows.map((r) => ({
    principalId: r.principal_id,
    name: r.name,
    lastAppliedSeq: r.last_applied_seq,
    lastSeenAt: r.last_seen_at,
    // The scalar subquery comes back as a string from some drivers.
    enforcedAt: r.enforced_at === null || r.enforced_at === undefined ? null : Number(r.enforced_at),
  }));
}

/** The position of the `session_ended` event of a session in its tenant's log, if there is one. */
export async function findSessionEndSeq(
  h: StoreHandle,
  tenantId: string,
  sessionId: string,
): Promise<number | null> {
  const row = await h.db
    .selectFrom('revocation_events')
    .select('seq')
    .where('tenant_id', '=', tenantId)
    .where('subject', '=', sessionId)
    .where('type', '=', 'session_ended')
    .orderBy('seq')
    .limit(1)
    .executeTakeFirst();
  return row?.seq ?? null;
}

/**
 * When each `session_ended` event in positions `(after, upTo]` happened, skipping those that
 * happened before `since`.
 */
export async function listSessionEndTimes(
  h: StoreHandle,
  tenantId: string,
  range: { after: number; upTo: number; since: number },
): Promise<number[]> {
  const rows = await h.db
    .selectFrom('revocation_events')
    .select('at')
    .where('tenant_id', '=', tenantId)
    .where('seq', '>', range.after)
    .where('seq', '<=', range.upTo)
    .where('type', '=', 'session_ended')
    .where('at', '>=', range.since)
    .execute();
  return rows.map((r) => r.at);
}

/** What a decision record links to: the session's holder, ticket and request, and its audiences. */
export interface SessionLink {
  id: string;
  principalId: string;
  ticket: string | null;
  requestId: string;
  /** The audiences its grant names now (a narrowing may have removed some). */
  audiences: readonly string[];
}

/** The sessions among `ids` that belong to the tenant; ids of other tenants are simply absent. */
export async function findSessionLinks(
  h: StoreHandle,
  tenantId: string,
  ids: readonly string[],
): Promise<Map<string, SessionLink>> {
  if (ids.length === 0) return new Map();
  const rows = await h.db
    .selectFrom('sessions')
    .select(['id', 'principal_id', 'ticket', 'request_id', 'grant'])
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', [...ids])
    .execute();
  return new Map(
    rows.map((r) => [
      r.id,
      {
        id: r.id,
        principalId: r.principal_id,
        ticket: r.ticket,
        requestId: r.request_id,
        audiences: fromJson<{ audiences?: string[] }>(r.grant).audiences ?? [],
      },
    ]),
  );
}

/** The audiences a PEP principal enforces (set by admins), sorted. */
export async function listPepAudiences(h: StoreHandle, principalId: string): Promise<string[]> {
  const rows = await h.db
    .selectFrom('pep_audiences')
    .select('audience')
    .where('principal_id', '=', principalId)
    .orderBy('audience')
    .execute();
  return rows.map((r) => r.audience);
}

/** Replaces the audiences a PEP principal enforces. */
export async function replacePepAudiences(
  tx: TxHandle,
  tenantId: string,
  principalId: string,
  audiences: readonly string[],
  now: number,
): Promise<void> {
  await tx.db.deleteFrom('pep_audiences').where('principal_id', '=', principalId).execute();
  if (audiences.length === 0) return;
  await tx.db
    .insertInto('pep_audiences')
    .values(
      audiences.map((audience) => ({
        tenant_id: tenantId,
        principal_id: principalId,
        audience,
        created_at: now,
      })),
    )
    .execute();
}
