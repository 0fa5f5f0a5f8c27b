import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  ClosedTicketView,
  CloseTicketBody,
  TicketList,
  TicketParams,
  TicketQuery,
  TicketView,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import type { Ticket } from '../../domain/ticket.js';
import { closeTicket } from '../../tickets/close-ticket.js';
import { findTickets, getTicket } from '../../tickets/tickets.js';
import { emptyBodyAsObject, withProblems } from '../schemas/common.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** A ticket as the API answers it: snake_case, ISO times. */
export function ticketView(t: Ticket): TicketView {
  return {
    ref: t.ref,
    source: t.source,
    kind: t.kind,
    state: t.state,
    title: t.title,
    url: t.url,
    assignees: t.assignees,
    event_at: iso(t.eventAt),
    closed_at: t.closedAt === null ? null : iso(t.closedAt),
    created_at: iso(t.createdAt),
    updated_at: iso(t.updatedAt),
  };
}

/** `/v1/tickets`: the tenant's ticket register, and closing a ticket by hand. */
export function ticketRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/tickets',
      {
        schema: {
          tags: ['tickets'],
          querystring: TicketQuery,
          response: withProblems({ 200: TicketList }),
        },
      },
      async (request) => ({
        tickets: (await findTickets(ctx, request.caller, request.query)).map(ticketView),
      }),
    );
    app.get(
      '/tickets/:ref',
      { schema: { tags: ['tickets'], params: TicketParams, response: withProblems({ 200: TicketView }) } },
      async (request) => ticketView(await getTicket(ctx, request.caller, request.params.ref)),
    );
    app.post(
      '/tickets/:ref/close',
      {
        preValidation: emptyBodyAsObject,
        schema: {
          tags: ['tickets'],
          params: TicketParams,
          body: CloseTicketBody,
          response: withProblems({ 200: ClosedTicketView }),
        },
      },
      async (request) => {
        const closed = await closeTicket(ctx, request.caller, request.params.ref, request.body.note ?? '');
        return {
          ticket: ticketView(closed.ticket),
          ended_sessions: closed.endedSessions,
          cancelled_requests: closed.cancelledRequests,
        };
      },
    );
  };
}
