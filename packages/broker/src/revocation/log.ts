import { type RevocationEvent, readRevocationEvent } from '@tether-broker/protocol';
import { queueSessionSignals } from '../ssf/outbox.js';
import type { StoreHandle, TxHandle } from '../store/database.js';
import {
  insertRevocationEvent,
  insertRevocationEvents,
  listRevocationEvents,
  listTenantIds,
  readRevocationHead,
  takeRevocationSeq,
  takeRevocationSeqs,
} from '../store/repositories/revocations.js';
import type { RevocationEventRow } from '../store/schema.js';
import type { RevocationFanout } from './fanout.js';
import { notifyOnCommit } from './pg-notify.js';

/** One event of a tenant's revocation log, at its position. */
export interface RevocationLogEntry {
  tenantId: string;
  /** 1, 2, 3, … per tenant, without gaps. */
  seq: number;
  /** When it was written: the time of the state change it reports (epoch milliseconds). */
  at: number;
  event: RevocationEvent;
}

/**
 * Appends `event` to the tenant's log inside the caller's transaction, so that the event
 * exists exactly when the state change it reports does. Takes the tenant's log head lock
 * until the transaction ends. Nothing is sent from here: register the wake-up of this
 * process's streams with {@link announceOnCommit}. On PostgreSQL the transaction also queues
 * a NOTIFY, which PostgreSQL delivers to every replica once (and only if) it commits.
 *
 * @example
 * ```ts
 * const entry = await appendRevocationEvent(tx, session.tenantId, now, {
 *   type: 'session_ended',
 *   data: { sid: session.id, reason: 'revoked', session_exp: Math.floor(session.hardExpiresAt / 1000) },
 * });
 * announceOnCommit(tx, ctx.revocations, [entry]);
 * ```
 */
export async function appendRevocationEvent(
  tx: TxHandle,
  tenantId: string,
  at: number,
  event: RevocationEvent,
): Promise<RevocationLogEntry> {
  const seq = await takeRevocationSeq(tx, tenantId);
  await insertRevocationEvent(tx, {
    tenant_id: tenantId,
    seq,
    type: event.type,
    subject: subjectOf(tenantId, event),
    payload: JSON.stringify(event.data),
    at,
  });
  if (tx.dialect === 'postgres') await notifyOnCommit(tx, tenantId, seq);
  // Downstream receivers (SSF streams) learn of a session's end or narrowing in this same transaction.
  await queueSessionSignals(tx, { tenantId, seq, at, event });
  return { tenantId, seq, at, event };
}

/**
 * Appends several events to the tenant's log at consecutive positions, as
 * {@link appendRevocationEvent} does for one: same transaction, same head lock, one NOTIFY.
 * For work that changes many sessions together (a re-evaluation batch).
 */
export async function appendRevocationEvents(
  tx: TxHandle,
  tenantId: string,
  at: number,
  events: readonly RevocationEvent[],
): Promise<RevocationLogEntry[]> {
  if (events.length === 0) return [];
  const first = await takeRevocationSeqs(tx, tenantId, events.length);
  const entries = events.map((event, i) => ({ tenantId, seq: first + i, at, event }));
  await insertRevocationEvents(
    tx,
    entries.map((e) => ({
      tenant_id: tenantId,
      seq: e.seq,
      type: e.event.type,
      subject: subjectOf(tenantId, e.event),
      payload: JSON.stringify(e.event.data),
      at,
    })),
  );
  if (tx.dialect === 'postgres') await notifyOnCommit(tx, tenantId, first + events.length - 1);
  for (const entry of entries) await queueSessionSignals(tx, entry);
  return entries;
}

/**
 * Appends `event` to the log of every tenant, in one transaction, taking the head locks in
 * tenant-id order (so two such transactions cannot deadlock). For broker-wide facts such as a
 * retired signing key: every tenant's PEPs verify the broker's keys, and no event crosses
 * tenants, so each tenant's log gets its own copy.
 */
export async function appendRevocationEventToEveryTenant(
  tx: TxHandle,
  at: number,
  event: RevocationEvent,
): Promise<RevocationLogEntry[]> {
  const entries: RevocationLogEntry[] = [];
  for (const tenantId of await listTenantIds(tx))
    entries.push(await appendRevocationEvent(tx, tenantId, at, event));
  return entries;
}

/** Wakes this process's streams of the entries' tenants once the transaction has committed. */
export function announceOnCommit(
  tx: TxHandle,
  fanout: RevocationFanout,
  entries: RevocationLogEntry[],
): void {
  if (entries.length === 0) return;
  tx.onCommit(() => {
    const newest = new Map<string, number>();
    for (const e of entries) newest.set(e.tenantId, Math.max(newest.get(e.tenantId) ?? 0, e.seq));
    for (const [tenantId, seq] of newest) fanout.notify(tenantId, seq);
  });
}

/** Up to `limit` committed events of the tenant after `afterSeq`, in order. */
export async function readRevocationLog(
  h: StoreHandle,
  tenantId: string,
  afterSeq: number,
  limit: number,
): Promise<RevocationLogEntry[]> {
  return (await listRevocationEvents(h, tenantId, afterSeq, limit)).map(toEntry);
}

/** The tenant's newest committed sequence number (0 for an empty log). */
export async function revocationHead(h: StoreHandle, tenantId: string): Promise<number> {
  return readRevocationHead(h, tenantId);
}

/** What the event is about, for looking events up by session or key. */
function subjectOf(tenantId: string, event: RevocationEvent): string {
  switch (event.type) {
    case 'session_ended':
    case 'session_narrowed':
      return event.data.sid;
    case 'key_retired':
      return event.data.kid;
    case 'tenant_cutoff':
      return tenantId;
  }
}

function toEntry(row: RevocationEventRow): RevocationLogEntry {
  let data: unknown;
  try {
    data = JSON.parse(row.payload);
  } catch {
    data = undefined;
  }
  const event = readRevocationEvent(row.type, data);
  // Only appendRevocationEvent writes this table; a row it could not have written is corruption.
  if (event === undefined) throw new Error(`revocation event ${row.tenant_id}#${row.seq} is malformed`);
  return { tenantId: row.tenant_id, seq: row.seq, at: row.at, event };
}
