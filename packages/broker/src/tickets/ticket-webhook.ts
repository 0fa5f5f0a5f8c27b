import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { openSecret } from '../config/key-encryption.js';
import type { BrokerContext } from '../core/context.js';
import { retryingTicketRace } from '../core/ticket-facts.js';
import { applyTicketEvent, type TicketState, type Webhook, type WebhookKind } from '../domain/ticket.js';
import { enqueueReevaluation } from '../evaluation/jobs.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { lockTicket, saveTicket } from '../store/repositories/tickets.js';
import {
  findWebhookForDelivery,
  recordDelivery,
  setDeliveryOutcome,
} from '../store/repositories/webhooks.js';
import { endWorkOfClosedTicket } from './close-ticket.js';
import { readTicketDelivery, type TicketDelivery } from './ticket-payloads.js';
import { SIGNATURE_HEADER, signatureMatches } from './webhook-signature.js';

/**
 * What became of a delivery. `duplicate`: its delivery id was seen before (a replay or a
 * retry). `stale`: the register holds a newer state. `unchanged`: nothing visible changed.
 * `ignored`: not an event the register uses (a GitHub ping, a Jira comment).
 */
export type DeliveryOutcome = 'applied' | 'unchanged' | 'stale' | 'duplicate' | 'ignored';

export interface DeliveryAnswer {
  outcome: DeliveryOutcome;
  event: string;
  ticket?: string;
  state?: TicketState;
  endedSessions?: string[];
  cancelledRequests?: string[];
}

/**
 * How far ahead of the broker's clock an event may be stamped. A later stamp is taken as this
 * far ahead: a sender with a wrong clock must not freeze a ticket against every later event.
 */
const MAX_EVENT_LEAD_MS = 5 * 60_000;

type Headers = Record<string, string | string[] | undefined>;

/**
 * A ticket system delivers to `POST /v1/webhooks/<kind>/<webhook id>`. The webhook names the
 * tenant and the secret; the body must carry its HMAC under that secret (checked in constant
 * time, before the body is read). A replayed delivery id and an event older than the
 * register's state change nothing. A ticket that closes ends its sessions and cancels its
 * pending requests in the same transaction.
 */
export async function receiveTicketDelivery(
  ctx: BrokerContext,
  kind: WebhookKind,
  webhookId: string,
  headers: Headers,
  body: Buffer,
): Promise<DeliveryAnswer> {
  const found = await findWebhookForDelivery(ctx.store, webhookId);
  if (!found || found.webhook.kind !== kind)
    throw new TetherError('not_found', `no ${kind} webhook ${JSON.stringify(webhookId)}`);
  const { webhook } = found;
  const secret = await openSecret(ctx.kek, found.sealedSecret);
  if (!signatureMatches(secret, body, headers[SIGNATURE_HEADER[kind]])) {
    ctx.logger.warn(
      { webhook: webhook.id, tenant: webhook.tenantId },
      'webhook delivery with a bad signature',
    );
    throw new TetherError(
      'invalid_signature',
      `the ${SIGNATURE_HEADER[kind]} header is missing or is not the HMAC-SHA256 of the body under this webhook's secret`,
    );
  }
  const delivery = readTicketDelivery(kind, headers, body);
  if (delivery.type === 'ignored') return { outcome: 'ignored', event: delivery.eventName };
  return retryingTicketRace(() =>
    inTransaction(ctx.store, (tx) => applyDelivery(ctx, tx, webhook, delivery)),
  );
}

async function applyDelivery(
  ctx: BrokerContext,
  tx: TxHandle,
  webhook: Webhook,
  delivery: Extract<TicketDelivery, { type: 'event' }>,
): Promise<DeliveryAnswer> {
  const now = ctx.clock.now();
  const { deliveryId, eventName } = delivery;
  const claim = {
    webhookId: webhook.id,
    deliveryId,
    tenantId: webhook.tenantId,
    outcome: 'applied',
    at: now,
  };
  if (!(await recordDelivery(tx, claim))) return { outcome: 'duplicate', event: eventName };
  const event = { ...delivery.event, at: Math.min(delivery.event.at, now + MAX_EVENT_LEAD_MS) };
  const source = { tenantId: webhook.tenantId, name: webhook.name, kind: webhook.kind };
  const current = await lockTicket(tx, webhook.tenantId, event.ref);
  const applied = applyTicketEvent(current, event, source, now);
  const answer = { event: eventName, ticket: event.ref };
  if (!applied) {
    await setDeliveryOutcome(tx, webhook.id, deliveryId, 'stale');
    return { ...answer, outcome: 'stale', ...(current ? { state: current.state } : {}) };
  }
  const { ticket, change } = applied;
  await saveTicket(tx, ticket, current !== undefined);
  if (change === null) {
    await setDeliveryOutcome(tx, webhook.id, deliveryId, 'unchanged');
    return { ...answer, outcome: 'unchanged', state: ticket.state };
  }
  const trigger = {
    source: webhook.name,
    kind: webhook.kind,
    webhook: webhook.id,
    delivery_id: deliveryId,
    event: eventName,
    event_at: new Date(event.at).toISOString(),
  };
  await recordAudit(tx, webhook.tenantId, now, {
    actor: webhook.id,
    action: `ticket.${change}`,
    target: ticket.ref,
    outcome: 'success',
    ticket: ticket.ref,
    details: {
      ...trigger,
      state: ticket.state,
      previous_state: current?.state ?? null,
      assignees: ticket.assignees,
      ...(current && current.assignees.join() !== ticket.assignees.join()
        ? { previous_assignees: current.assignees }
        : {}),
    },
  });
  const closedNow = ticket.state === 'closed' && current?.state !== 'closed';
  const end = closedNow
    ? await endWorkOfClosedTicket(ctx, tx, ticket, now, webhook.id, trigger)
    : { endedSessions: [], cancelledRequests: [] };
  // Reassigned (or reopened, retitled): the live sessions bound to it are judged again, with the
  // ticket as Cedar now sees it (`context.ticket_info`), after this delivery commits.
  if (!closedNow && current !== undefined)
    await enqueueReevaluation(
      ctx,
      tx,
      webhook.tenantId,
      { ticket: ticket.ref },
      {
        kind: 'ticket_changed',
        ticket: ticket.ref,
        source: webhook.name,
        event: eventName,
        by: webhook.id,
      },
    );
  return { ...answer, outcome: 'applied', state: ticket.state, ...end };
}
