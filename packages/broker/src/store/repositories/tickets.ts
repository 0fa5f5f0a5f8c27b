import type { Ticket, TicketState } from '../../domain/ticket.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { TicketRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toTicket(row: TicketRow): Ticket {
  return {
    tenantId: row.tenant_id,
    ref: row.ref,
    source: row.source,
    kind: row.kind as Ticket['kind'],
    state: row.state as TicketState,
    title: row.title,
    url: row.url,
    assignees: fromJson<string[]>(row.assignees),
    eventAt: row.event_at,
    closedAt: row.closed_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toRow(t: Ticket): TicketRow {
  return {
    tenant_id: t.tenantId,
    ref: t.ref,
    source: t.source,
    kind: t.kind,
    state: t.state,
    title: t.title,
    url: t.url,
    assignees: toJson(t.assignees),
    event_at: t.eventAt,
    closed_at: t.closedAt,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
  };
}

export async function findTicket(h: StoreHandle, tenantId: string, ref: string): Promise<Ticket | undefined> {
  const row = await h.db
    .selectFrom('tickets')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('ref', '=', ref)
    .executeTakeFirst();
  return row && toTicket(row);
}

/** Reads a ticket for a change, holding its row lock until the transaction ends. */
export async function lockTicket(tx: TxHandle, tenantId: string, ref: string): Promise<Ticket | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('tickets').selectAll().where('tenant_id', '=', tenantId).where('ref', '=', ref),
  ).executeTakeFirst();
  return row && toTicket(row);
}

/** Inserts a ticket the register did not know, or overwrites the one it locked. */
export async function saveTicket(tx: TxHandle, t: Ticket, existed: boolean): Promise<void> {
  if (!existed) {
    await tx.db.insertInto('tickets').values(toRow(t)).execute();
    return;
  }
  const { tenant_id, ref, created_at, ...changes } = toRow(t);
  await tx.db
    .updateTable('tickets')
    .set(changes)
    .where('tenant_id', '=', tenant_id)
    .where('ref', '=', ref)
    .execute();
}

export interface TicketFilter {
  state?: TicketState | undefined;
  source?: string | undefined;
  limit: number;
}

/** A tenant's tickets, most recently changed first. */
export async function listTickets(h: StoreHandle, tenantId: string, f: TicketFilter): Promise<Ticket[]> {
  let q = h.db.selectFrom('tickets').selectAll().where('tenant_id', '=', tenantId);
  if (f.state) q = q.where('state', '=', f.state);
  if (f.source) q = q.where('source', '=', f.source);
  const rows = await q.orderBy('updated_at', 'desc').orderBy('ref').limit(f.limit).execute();
  return rows.map(toTicket);
}

/** Ids of the live sessions bound to a ticket, in a stable order (locks are taken one by one). */
export async function liveSessionIdsForTicket(
  h: StoreHandle,
  tenantId: string,
  ref: string,
): Promise<string[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('ticket', '=', ref)
    .where('state', '=', 'active')
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Ids of the pending requests that name a ticket. */
export async function pendingRequestIdsForTicket(
  h: StoreHandle,
  tenantId: string,
  ref: string,
): Promise<string[]> {
  const rows = await h.db
    .selectFrom('access_requests')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('ticket', '=', ref)
    .where('state', '=', 'pending')
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}
