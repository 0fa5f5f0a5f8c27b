import { type Static, Type } from '@sinclair/typebox';
import { Name, NullableTimestamp, Ref, Strict, Timestamp } from './common.js';

/** The events a notification channel may get. */
export const NotificationEventName = Type.Union([
  Type.Literal('request.pending'),
  Type.Literal('request.approved'),
  Type.Literal('request.denied'),
  Type.Literal('request.expired'),
  Type.Literal('session.ended'),
]);
export type NotificationEventName = Static<typeof NotificationEventName>;

const Events = Type.Array(NotificationEventName, {
  minItems: 1,
  maxItems: 5,
  uniqueItems: true,
  description: 'the events this channel gets',
});

const HttpsUrl = (description: string) => Type.String({ minLength: 1, maxLength: 2048, description });

/** An email address as a recipient or sender: no display name, no CR/LF, no list. */
const EmailAddress = Type.String({
  minLength: 3,
  maxLength: 254,
  pattern:
    "^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
});

/** What a Teams channel posts: an Adaptive Card (Workflows webhooks; the default) or a legacy Office 365 connector MessageCard. */
export const TeamsFormat = Type.Union([Type.Literal('adaptive_card'), Type.Literal('message_card')], {
  description:
    'adaptive_card (default): a message with an Adaptive Card attachment, as Teams Workflows webhooks take; message_card: the retired Office 365 connector format',
});
export type TeamsFormat = Static<typeof TeamsFormat>;

const NewSlackChannel = Type.Object(
  {
    name: Name,
    kind: Type.Literal('slack'),
    events: Events,
    url: HttpsUrl('the Slack-compatible incoming-webhook URL (a credential: sealed at rest, never answered)'),
  },
  Strict,
);
const NewTeamsChannel = Type.Object(
  {
    name: Name,
    kind: Type.Literal('teams'),
    events: Events,
    url: HttpsUrl(
      'the Microsoft Teams webhook URL, a Workflows "post to a channel when a webhook request is received" URL for adaptive_card (a credential: sealed at rest, never answered)',
    ),
    format: Type.Optional(TeamsFormat),
  },
  Strict,
);
const NewWebhookChannel = Type.Object(
  {
    name: Name,
    kind: Type.Literal('webhook'),
    events: Events,
    url: HttpsUrl('the https URL Tether POSTs signed JSON notifications to'),
  },
  Strict,
);
const NewEmailChannel = Type.Object(
  {
    name: Name,
    kind: Type.Literal('email'),
    events: Events,
    host: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: '^[A-Za-z0-9.:\\[\\]-]+$',
      description: 'the SMTP server',
    }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    tls: Type.Union([Type.Literal('implicit'), Type.Literal('starttls'), Type.Literal('none')], {
      description:
        'implicit TLS (465), required STARTTLS (587), or none (only to hosts the operator allows plain text for)',
    }),
    from: EmailAddress,
    to: Type.Optional(
      Type.Array(EmailAddress, {
        maxItems: 20,
        uniqueItems: true,
        description: 'fixed addresses that get every message too (a shared mailbox)',
      }),
    ),
    to_people: Type.Optional(
      Type.Boolean({
        description:
          'default true: a waiting request goes to the approvers who may decide it, a decision or a session end to the requester, each at the `email` attribute of their principal',
      }),
    ),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[\\x21-\\x7e]+$' })),
    password: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        pattern: '^[^\\r\\n]+$',
        description: 'sealed at rest, never answered',
      }),
    ),
  },
  Strict,
);

/** The body of `POST /v1/notification-channels`. */
export const NewNotificationChannelBody = Type.Union([
  NewSlackChannel,
  NewTeamsChannel,
  NewWebhookChannel,
  NewEmailChannel,
]);
export type NewNotificationChannelBody = Static<typeof NewNotificationChannelBody>;

/**
 * A notification channel (`/v1/notification-channels`): never its secret (a Slack or Teams URL
 * shows its host only; an SMTP password and a webhook's signing key are never answered).
 */
export const NotificationChannelView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.Union([
    Type.Literal('slack'),
    Type.Literal('teams'),
    Type.Literal('webhook'),
    Type.Literal('email'),
  ]),
  events: Type.Array(NotificationEventName),
  target: Type.String({ description: 'where it delivers, without credentials' }),
  email: Type.Optional(
    Type.Object({
      host: Type.String(),
      port: Type.Integer(),
      tls: Type.String(),
      from: Type.String(),
      to: Type.Array(Type.String()),
      to_people: Type.Boolean(),
      username: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
  teams: Type.Optional(Type.Object({ format: TeamsFormat })),
  last_success_at: NullableTimestamp,
  last_failure_at: NullableTimestamp,
  last_error: Type.Union([Type.String(), Type.Null()], {
    description: 'why the latest failed attempt failed ("unreachable", …)',
  }),
  created_by: Type.String(),
  created_at: Timestamp,
});
export type NotificationChannelView = Static<typeof NotificationChannelView>;

export const CreatedNotificationChannelView = Type.Object({
  ...NotificationChannelView.properties,
  signing_secret: Type.Optional(
    Type.String({
      description: 'webhook channels: the HMAC key of X-Tether-Signature, shown once, never again',
    }),
  ),
});
export type CreatedNotificationChannelView = Static<typeof CreatedNotificationChannelView>;

export const NotificationChannelList = Type.Object({ channels: Type.Array(NotificationChannelView) });
export type NotificationChannelList = Static<typeof NotificationChannelList>;

export const NotificationChannelRefParams = Type.Object({ ref: Ref }, Strict);
export type NotificationChannelRefParams = Static<typeof NotificationChannelRefParams>;
