import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { writeExpiry } from '../core/expire-requests.js';
import { cancel, expire } from '../domain/request.js';
import { closedByHand, type Ticket } from '../domain/ticket.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { lockRequest, updateRequestState } from '../store/repositories/requests.js';
import { lockSession } from '../store/repositories/sessions.js';
import {
  liveSessionIdsForTicket,
  lockTicket,
  pendingRequestIdsForTicket,
  saveTicket,
} from '../store/repositories/tickets.js';

/** What ended with a ticket. */
export interface TicketEnd {
  endedSessions: string[];
  cancelledRequests: string[];
}

/**
 * The task is over: inside the caller's transaction, which has just written the ticket as
 * closed (and holds its row lock), every live session bound to the ticket ends
 * (`ticket_closed`, through the revocation log) and every pending request naming it is
 * cancelled. `trigger` says what closed it (the delivery, or the person); it is recorded with
 * each change.
 */
export async function endWorkOfClosedTicket(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  ticket: Ticket,
  at: number,
  by: string,
  trigger: Record<string, unknown>,
): Promise<TicketEnd> {
  const endedSessions: string[] = [];
  for (const id of await liveSessionIdsForTicket(tx, ticket.tenantId, ticket.ref)) {
    const session = await lockSession(tx, id);
    const done = session ? await endSessionIn(ctx, tx, session, at, 'ticket_closed', by, trigger) : null;
    if (done) endedSessions.push(done.id);
  }
  const cancelledRequests: string[] = [];
  for (const id of await pendingRequestIdsForTicket(tx, ticket.tenantId, ticket.ref)) {
    const request = await lockRequest(tx, ticket.tenantId, id);
    if (request?.state !== 'pending') continue;
    // A request already past its deadline expired; that is what the record should say.
    const expired = expire(request, at);
    if (expired) {
      await writeExpiry(tx, expired, at);
      continue;
    }
    const cancelled = cancel(request, at, by);
    if (!(await updateRequestState(tx, cancelled, 'pending'))) continue;
    await recordAudit(tx, ticket.tenantId, at, {
      actor: by,
      action: 'request.cancelled',
      target: request.id,
      outcome: 'success',
      requestId: request.id,
      ticket: request.ticket,
      principalId: request.principalId,
      details: { reason: 'ticket_closed', ...trigger },
    });
    cancelledRequests.push(request.id);
  }
  return { endedSessions, cancelledRequests };
}

/**
 * `POST /v1/tickets/:ref/close`, for ticket systems without webhooks: an admin closes a ticket
 * by hand. A ticket the register does not know is recorded as closed (source `manual`), so
 * that no new request can name it. Closing a closed ticket is refused (`ticket_closed`).
 */
export async function closeTicket(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
  note: string,
): Promise<{ ticket: Ticket } & TicketEnd> {
  requireRole(caller, 'admin');
  const tenantId = caller.tenant.id;
  return inTransaction(ctx.store, async (tx) => {
    const current = await lockTicket(tx, tenantId, ref);
    const now = ctx.clock.now();
    const ticket = closedByHand(current, tenantId, ref, now);
    await saveTicket(tx, ticket, current !== undefined);
    const trigger = { source: ticket.source, event: 'manual_close', ...(note ? { note } : {}) };
    await recordAudit(tx, tenantId, now, {
      actor: caller.principal.id,
      action: 'ticket.closed',
      target: ref,
      outcome: 'success',
      ticket: ref,
      details: { ...trigger, previous_state: current?.state ?? null },
    });
    const end = await endWorkOfClosedTicket(ctx, tx, ticket, now, caller.principal.id, trigger);
    return { ticket, ...end };
  });
}
