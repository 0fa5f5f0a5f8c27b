import { TetherError } from '@tether-broker/protocol';
import type { TicketRule } from './privilege.js';

/** The ticket systems that can feed the register, each through its own signed webhook. */
export const WEBHOOK_KINDS = ['github', 'jira', 'generic'] as const;
export type WebhookKind = (typeof WEBHOOK_KINDS)[number];

/** Tickets closed by hand (`POST /v1/tickets/:ref/close`) that no webhook reported before. */
export const MANUAL_SOURCE = 'manual';

export type TicketState = 'open' | 'closed';

/** A ticket source: a signed webhook that one ticket system of a tenant delivers to. */
export interface Webhook {
  id: string;
  tenantId: string;
  /** The source's name, unique in the tenant: tickets and ticket rules name their source by it. */
  name: string;
  kind: WebhookKind;
  /** The principal attribute holding a person's identity in this ticket system (login, account id). */
  assigneeAttribute: string;
  createdBy: string;
  createdAt: number;
}

/** A ticket as the register knows it: the latest state its source reported. */
export interface Ticket {
  tenantId: string;
  /** `owner/repo#12` (GitHub), `NET-7` (Jira), or whatever the generic sender names it. */
  ref: string;
  /** The name of the webhook that reports it, or {@link MANUAL_SOURCE}. */
  source: string;
  kind: WebhookKind | typeof MANUAL_SOURCE;
  state: TicketState;
  title: string;
  url: string | null;
  /** Who the ticket system says it is assigned to (lower-cased logins, account ids or e-mails). */
  assignees: string[];
  /** When the ticket system made the change this state is from (epoch ms): orders deliveries. */
  eventAt: number;
  /** Broker time of the transition to closed, or null while open. */
  closedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** One ticket-system event, read from a verified delivery. */
export interface TicketEvent {
  ref: string;
  state: TicketState;
  /** Undefined: the event does not say (the ticket keeps what it had). */
  title?: string | undefined;
  url?: string | undefined;
  assignees?: string[] | undefined;
  /** The event's own timestamp (epoch ms), as the ticket system stamped it. */
  at: number;
}

/** What an applied event did to the ticket, as recorded in the audit chain. */
export type TicketChange = 'created' | 'closed' | 'reopened' | 'updated';

export interface AppliedTicketEvent {
  ticket: Ticket;
  /** Null when the event moved the ticket's clock but changed nothing anyone can see. */
  change: TicketChange | null;
}

/** Identifiers are compared the way ticket systems treat them: logins and e-mails ignore case. */
export function normalizeIdentity(value: string): string {
  return value.trim().toLowerCase();
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/**
 * Applies `event` from `source` to the ticket as the register holds it (`current`), or
 * answers null when the event is older than what the register has (deliveries arrive out of
 * order; the event's own timestamp decides). An event with the same timestamp as the
 * register's state merges towards less access: closed wins over open, and only the assignees
 * both agree on remain. A ticket belongs to the source that first reported it; only a ticket
 * closed by hand may be taken over by a webhook.
 */
export function applyTicketEvent(
  current: Ticket | undefined,
  event: TicketEvent,
  source: { tenantId: string; name: string; kind: WebhookKind | typeof MANUAL_SOURCE },
  now: number,
): AppliedTicketEvent | null {
  const assignees = event.assignees && [...new Set(event.assignees.map(normalizeIdentity))].sort();
  if (!current) {
    return {
      change: 'created',
      ticket: {
        tenantId: source.tenantId,
        ref: event.ref,
        source: source.name,
        kind: source.kind,
        state: event.state,
        title: event.title ?? '',
        url: event.url ?? null,
        assignees: assignees ?? [],
        eventAt: event.at,
        closedAt: event.state === 'closed' ? now : null,
        createdAt: now,
        updatedAt: now,
      },
    };
  }
  if (current.source !== source.name && current.kind !== MANUAL_SOURCE) {
    throw new TetherError(
      'already_exists',
      `ticket ${JSON.stringify(event.ref)} is reported by source ${current.source}, not ${source.name}`,
    );
  }
  if (event.at < current.eventAt) return null;
  const tie = event.at === current.eventAt;
  const state: TicketState = tie && current.state === 'closed' ? 'closed' : event.state;
  const nextAssignees = !assignees
    ? current.assignees
    : tie
      ? current.assignees.filter((a) => assignees.includes(a))
      : assignees;
  const next: Ticket = {
    ...current,
    source: source.name,
    kind: source.kind,
    state,
    title: tie ? current.title : (event.title ?? current.title),
    url: tie ? current.url : (event.url ?? current.url),
    assignees: nextAssignees,
    eventAt: event.at,
    closedAt: state === 'closed' ? (current.closedAt ?? now) : null,
  };
  const change = changeBetween(current, next);
  if (change === null && tie) return null;
  return { change, ticket: change === null ? next : { ...next, updatedAt: now } };
}

function changeBetween(before: Ticket, after: Ticket): TicketChange | null {
  if (before.state !== after.state) return after.state === 'closed' ? 'closed' : 'reopened';
  const same =
    before.source === after.source &&
    before.title === after.title &&
    before.url === after.url &&
    sameMembers(before.assignees, after.assignees);
  return same ? null : 'updated';
}

/** A ticket closed by hand: now, by the broker's clock, whatever the ticket system said before. */
export function closedByHand(
  current: Ticket | undefined,
  tenantId: string,
  ref: string,
  now: number,
): Ticket {
  if (current?.state === 'closed') {
    throw new TetherError('ticket_closed', `ticket ${JSON.stringify(ref)} is already closed`);
  }
  const base: Ticket = current ?? {
    tenantId,
    ref,
    source: MANUAL_SOURCE,
    kind: MANUAL_SOURCE,
    state: 'open',
    title: '',
    url: null,
    assignees: [],
    eventAt: now,
    closedAt: null,
    createdAt: now,
    updatedAt: now,
  };
  // A later event from the ticket system still wins if it is newer than this close.
  return { ...base, state: 'closed', eventAt: Math.max(base.eventAt, now), closedAt: now, updatedAt: now };
}

/** Whether the requester, known to the ticket's source as `identity`, is an assignee. */
export function isAssignedTo(ticket: Pick<Ticket, 'assignees'>, identity: string | undefined): boolean {
  return (
    identity !== undefined && identity.trim() !== '' && ticket.assignees.includes(normalizeIdentity(identity))
  );
}

/**
 * What a privilege's ticket rule demands of the ticket a request names, beyond its shape
 * (`required`, `pattern`: see assertRequestFitsPrivilege). A ticket the register knows to be
 * closed is refused whatever the rule: its task is over. Throws `ticket_closed`,
 * `ticket_not_found` or `ticket_not_assigned`.
 */
export function assertTicketSatisfiesRule(
  rule: TicketRule,
  ref: string,
  ticket: Ticket | undefined,
  assigned: boolean,
): void {
  if (ticket?.state === 'closed') {
    throw new TetherError('ticket_closed', `ticket ${JSON.stringify(ref)} is closed`, {
      extra: { ticket: ref },
    });
  }
  const verified = rule.source !== undefined || rule.open === true || rule.assigned === true;
  if (!verified) return;
  if (!ticket) {
    throw new TetherError(
      'ticket_not_found',
      `ticket ${JSON.stringify(ref)} is not in the ticket register${rule.source ? ` (source ${rule.source})` : ''}`,
      { extra: { ticket: ref } },
    );
  }
  if (rule.source !== undefined && ticket.source !== rule.source) {
    throw new TetherError(
      'ticket_not_found',
      `ticket ${JSON.stringify(ref)} is reported by ${ticket.source}, not by ${rule.source}`,
      { extra: { ticket: ref, source: rule.source } },
    );
  }
  if (rule.assigned === true && !assigned) {
    throw new TetherError(
      'ticket_not_assigned',
      `ticket ${JSON.stringify(ref)} is not assigned to the requester`,
      {
        extra: { ticket: ref },
      },
    );
  }
}
