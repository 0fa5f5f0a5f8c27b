import { TetherError } from '@tether-broker/protocol';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Ticket, TicketState } from '../domain/ticket.js';
import { findTicket, listTickets } from '../store/repositories/tickets.js';

export interface TicketQuery {
  state?: TicketState | undefined;
  source?: string | undefined;
  limit?: number | undefined;
}

/** The tenant's ticket register; for admins and auditors. */
export async function findTickets(ctx: BrokerContext, caller: Caller, q: TicketQuery): Promise<Ticket[]> {
  requireRole(caller, 'admin', 'auditor');
  return listTickets(ctx.store, caller.tenant.id, {
    state: q.state,
    source: q.source,
    limit: q.limit ?? 100,
  });
}

export async function getTicket(ctx: BrokerContext, caller: Caller, ref: string): Promise<Ticket> {
  requireRole(caller, 'admin', 'auditor');
  const ticket = await findTicket(ctx.store, caller.tenant.id, ref);
  if (!ticket)
    throw new TetherError('not_found', `no ticket ${JSON.stringify(ref)} in this tenant's register`);
  return ticket;
}
