import { type Static, Type } from '@sinclair/typebox';
import { NAME_PATTERN } from '../principals.js';
import { Name, NullableTimestamp, Ref, Strict, Timestamp } from './common.js';

/**
 * A ticket reference in a path (percent-encoded: `acme%2Finfra%2312`). It starts with a letter
 * or digit and holds no control characters; 128 characters at most, as in a request.
 */
export const TicketRef = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9][^\\u0000-\\u001f\\u007f]*$',
  description: 'the ticket reference, e.g. NET-7 or acme/infra#12 (percent-encoded in the path)',
});
export type TicketRef = Static<typeof TicketRef>;
export const TicketParams = Type.Object({ ref: TicketRef }, Strict);
export type TicketParams = Static<typeof TicketParams>;

/** A ticket of the register (`/v1/tickets`), as its source last reported it. */
export const TicketView = Type.Object({
  ref: Type.String(),
  source: Type.String(),
  kind: Type.String(),
  state: Type.String(),
  title: Type.String(),
  url: Type.Union([Type.String(), Type.Null()]),
  assignees: Type.Array(Type.String()),
  event_at: Timestamp,
  closed_at: NullableTimestamp,
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type TicketView = Static<typeof TicketView>;
export const TicketList = Type.Object({ tickets: Type.Array(TicketView) });
export type TicketList = Static<typeof TicketList>;

/** The query of `GET /v1/tickets`. */
export const TicketQuery = Type.Object(
  {
    state: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('closed')])),
    source: Type.Optional(Type.String({ pattern: NAME_PATTERN, maxLength: 128 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  Strict,
);
export type TicketQuery = Static<typeof TicketQuery>;

/** The body of `POST /v1/tickets/:ref/close`. */
export const CloseTicketBody = Type.Object({ note: Type.Optional(Type.String({ maxLength: 2048 })) }, Strict);
export type CloseTicketBody = Static<typeof CloseTicketBody>;
/** The answer of closing a ticket: what its closing ended and cancelled. */
export const ClosedTicketView = Type.Object({
  ticket: TicketView,
  ended_sessions: Type.Array(Type.String()),
  cancelled_requests: Type.Array(Type.String()),
});
export type ClosedTicketView = Static<typeof ClosedTicketView>;

export const WebhookKind = Type.Union([
  Type.Literal('github'),
  Type.Literal('jira'),
  Type.Literal('generic'),
]);
export type WebhookKind = Static<typeof WebhookKind>;

/** The body of `POST /v1/webhooks`. */
export const NewWebhookBody = Type.Object(
  {
    kind: WebhookKind,
    name: Name,
    assignee_attribute: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$',
        description:
          "the principal attribute holding a person's identity in this ticket system (default: the kind)",
      }),
    ),
  },
  Strict,
);
export type NewWebhookBody = Static<typeof NewWebhookBody>;

/** A registered ticket source (`/v1/webhooks`); its secret is never shown again. */
export const WebhookView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  url: Type.String({ description: 'where the ticket system delivers' }),
  assignee_attribute: Type.String(),
  created_by: Type.String(),
  created_at: Timestamp,
});
export type WebhookView = Static<typeof WebhookView>;
export const WebhookList = Type.Object({ webhooks: Type.Array(WebhookView) });
export type WebhookList = Static<typeof WebhookList>;
/** The answer of `POST /v1/webhooks`: the webhook and, once, its secret. */
export const CreatedWebhookView = Type.Object({
  ...WebhookView.properties,
  secret: Type.String({ description: 'the HMAC secret: shown once, never again' }),
});
export type CreatedWebhookView = Static<typeof CreatedWebhookView>;
export const WebhookRefParams = Type.Object({ ref: Ref }, Strict);
export type WebhookRefParams = Static<typeof WebhookRefParams>;

export const DeliveryParams = Type.Object({ id: Type.String({ pattern: '^whk_[0-9a-z]{26}$' }) }, Strict);
export type DeliveryParams = Static<typeof DeliveryParams>;
/** The answer to a ticket system delivering an event (`POST /v1/webhooks/<kind>/:id`). */
export const DeliveryView = Type.Object({
  outcome: Type.Union([
    Type.Literal('applied'),
    Type.Literal('unchanged'),
    Type.Literal('stale'),
    Type.Literal('duplicate'),
    Type.Literal('ignored'),
  ]),
  event: Type.String(),
  ticket: Type.Optional(Type.String()),
  state: Type.Optional(Type.String()),
  ended_sessions: Type.Optional(Type.Array(Type.String())),
  cancelled_requests: Type.Optional(Type.Array(Type.String())),
});
export type DeliveryView = Static<typeof DeliveryView>;
