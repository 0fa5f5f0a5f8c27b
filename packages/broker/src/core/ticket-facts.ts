import { TetherError } from '@tether-broker/protocol';
import type { Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import { assertTicketSatisfiesRule, isAssignedTo, type Ticket } from '../domain/ticket.js';
import type { TicketFacts } from '../policy/cedar.js';
import { isUniqueViolation, type StoreHandle, type TxHandle } from '../store/database.js';
import { findTicket, lockTicket } from '../store/repositories/tickets.js';
import { findWebhookByName } from '../store/repositories/webhooks.js';
import { recordRefusal } from './audit-refusal.js';
import type { BrokerContext } from './context.js';

/** What the register says of a request's ticket, from the requester's side. */
export interface TicketStanding {
  ticket: Ticket | undefined;
  /** Whether the requester is an assignee, matched through the source's assignee attribute. */
  assigned: boolean;
}

/**
 * Looks a ticket up for a request by `principal`. The requester is an assignee when the
 * principal attribute that the ticket's source names (e.g. `github`) holds one of the
 * ticket's assignees. A source since removed matches nobody.
 */
export async function ticketStanding(
  h: StoreHandle,
  tenantId: string,
  ref: string,
  principal: Pick<Principal, 'attributes'>,
): Promise<TicketStanding> {
  const ticket = await findTicket(h, tenantId, ref);
  if (!ticket) return { ticket, assigned: false };
  const source = await findWebhookByName(h, tenantId, ticket.source);
  const identity = source ? principal.attributes[source.assigneeAttribute] : undefined;
  return { ticket, assigned: isAssignedTo(ticket, identity) };
}

/**
 * Checks the request's ticket against the privilege's ticket rule and the register (see
 * assertTicketSatisfiesRule). A refusal is a decision about the task, so it is recorded.
 */
export async function assertTicketAllowsRequest(
  ctx: BrokerContext,
  requester: Principal,
  privilege: Pick<Privilege, 'id' | 'ticket'>,
  ref: string | null,
  auditDetails: Record<string, unknown> = {},
): Promise<void> {
  if (ref === null) return;
  const standing = await ticketStanding(ctx.store, requester.tenantId, ref, requester);
  try {
    assertTicketSatisfiesRule(privilege.ticket, ref, standing.ticket, standing.assigned);
  } catch (err) {
    if (err instanceof TetherError) {
      await recordRefusal(ctx, requester.tenantId, {
        actor: requester.id,
        action: 'request.create',
        target: privilege.id,
        ticket: ref,
        principalId: requester.id,
        details: { reason: err.detail, code: err.code, ...auditDetails },
      });
    }
    throw err;
  }
}

/** The ticket as Cedar sees it (`context.ticket_info`), when the register knows it. */
export function ticketFactsOf(standing: TicketStanding): TicketFacts | undefined {
  const t = standing.ticket;
  if (!t) return undefined;
  return {
    source: t.source,
    state: t.state,
    title: t.title,
    assignees: [...t.assignees],
    assignedToRequester: standing.assigned,
  };
}

/**
 * Refuses to start a session under a ticket the register knows to be closed. Takes the
 * ticket's row lock, so that a close either commits first (and is seen here) or waits for
 * this session to commit (and then ends it). Take it before the request's lock: closing a
 * ticket locks the ticket, then the requests that name it.
 */
export async function assertTicketStillOpen(
  tx: TxHandle,
  tenantId: string,
  ref: string | null,
): Promise<void> {
  if (ref === null) return;
  const ticket = await lockTicket(tx, tenantId, ref);
  if (ticket?.state === 'closed') {
    throw new TetherError(
      'ticket_closed',
      `ticket ${JSON.stringify(ref)} has been closed; its task is over`,
      {
        extra: { ticket: ref },
      },
    );
  }
}

/**
 * Runs `work` (one transaction) again once if it lost a race to create the same ticket row:
 * the second run finds the row and applies its change on top.
 */
export async function retryingTicketRace<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    return work();
  }
}
