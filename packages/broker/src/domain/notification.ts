/**
 * Notifications: what the broker tells people when a request waits or is resolved, or a session
 * ends, and how each channel kind says it. Pure: the messages are built here, sent elsewhere.
 */

/** The events a channel may subscribe to. */
export const NOTIFICATION_EVENTS = [
  'request.pending',
  'request.approved',
  'request.denied',
  'request.expired',
  'session.ended',
] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];

export const CHANNEL_KINDS = ['slack', 'teams', 'email', 'webhook'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

/** Every bound of notifications in one place. */
export const NOTIFICATION_LIMITS = {
  /** Channels one tenant may have: each event is one outbox row per channel. */
  channelsPerTenant: 20,
  /** Recipients of one email channel. */
  recipients: 20,
  /** Longest requester-supplied text (reason, ticket) carried into a message. */
  textChars: 1000,
  /** A delivery's claim lasts this long; past it another replica may send it again. */
  leaseMs: 60_000,
  /** First retry delay; doubled each failure, with jitter… */
  baseDelayMs: 1_000,
  /** …up to this. */
  maxDelayMs: 5 * 60_000,
  /** Delivered and failed rows are kept this long (the channel's last success and error stay on it). */
  retentionMs: 7 * 24 * 3600_000,
} as const;

/** A channel as the API shows it: never its secret. */
export interface NotificationChannel {
  id: string;
  tenantId: string;
  name: string;
  kind: ChannelKind;
  events: NotificationEvent[];
  settings: ChannelSettings;
  createdBy: string;
  createdAt: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  /** Why the last delivery attempt failed ("unreachable", …): never a secret or a network detail. */
  lastError: string | null;
}

/** A channel's non-secret settings, per kind. The secret (URL with its token, password, HMAC key) is sealed apart. */
export type ChannelSettings =
  | { kind: 'slack' | 'teams'; target: string }
  | { kind: 'webhook'; url: string }
  | {
      kind: 'email';
      host: string;
      port: number;
      tls: SmtpTls;
      from: string;
      to: string[];
      username: string | null;
    };

/** `implicit`: TLS from the first byte (465); `starttls`: required upgrade (587); `none`: only to hosts the operator allows plain text for. */
export type SmtpTls = 'implicit' | 'starttls' | 'none';

/** The facts one notification carries, captured in the transaction of the event. */
export interface NotificationFacts {
  event: NotificationEvent;
  at: number;
  tenantId: string;
  requestId: string;
  privilege: string;
  requester: string;
  ticket: string | null;
  reason: string;
  durationSeconds: number;
  sessionId?: string;
  endReason?: string;
  /** Who resolved the request (approved/denied), by name. */
  by?: string;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/** One row of the outbox: a notification for one channel. */
export interface Notification {
  id: string;
  tenantId: string;
  channelId: string;
  event: NotificationEvent;
  facts: NotificationFacts;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: number;
  leaseUntil: number | null;
  lastError: string | null;
  createdAt: number;
  doneAt: number | null;
}

/** Whether `attempts` failures, the first made `age` ms ago, are enough to give up. */
export function shouldGiveUp(
  attempts: number,
  age: number,
  limits: { maxAttempts: number; maxAgeMs: number },
): boolean {
  return attempts >= limits.maxAttempts || age >= limits.maxAgeMs;
}

/** Printable, one line, bounded: what requester-supplied text may look like in any message. */
export function oneLine(text: string, max: number = NOTIFICATION_LIMITS.textChars): string {
  // Control characters (CR/LF among them) and bidi overrides become spaces; runs are collapsed.
  const flat = text
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** Slack mrkdwn: `&`, `<` and `>` are its only control characters (links, mentions); escaped, text stays text. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** HTML (Teams renders a subset, Markdown too): entities, plus the Markdown characters that make links or emphasis. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
    .replace(/([\\`*_[\]()#|~])/g, '\\$1');
}

const HEADLINES: Record<NotificationEvent, string> = {
  'request.pending': 'Access request waiting for approval',
  'request.approved': 'Access request approved',
  'request.denied': 'Access request denied',
  'request.expired': 'Access request expired',
  'session.ended': 'Session ended',
};

function duration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** Where the console shows a request (and, for a waiting one, where it is approved or denied). */
export function requestLink(publicUrl: string, requestId: string): string {
  return `${publicUrl}/console/requests/${encodeURIComponent(requestId)}`;
}

/** The message's fields as label → plain text (not yet escaped for any format). */
function fieldsOf(f: NotificationFacts): [string, string][] {
  const out: [string, string][] = [
    ['Request', f.requestId],
    ['Privilege', oneLine(f.privilege, 128)],
    ['Requester', oneLine(f.requester, 128)],
    ['Ticket', f.ticket === null ? '—' : oneLine(f.ticket, 256)],
    ['Reason', oneLine(f.reason) || '—'],
    ['Duration', duration(f.durationSeconds)],
  ];
  if (f.by !== undefined)
    out.push([f.event === 'request.denied' ? 'Denied by' : 'Approved by', oneLine(f.by, 128)]);
  if (f.sessionId !== undefined) out.push(['Session', f.sessionId]);
  if (f.endReason !== undefined) out.push(['End reason', oneLine(f.endReason, 64)]);
  return out;
}

/** The email subject: one line, no CR/LF whatever the privilege's name holds (no header injection). */
export function emailSubject(f: NotificationFacts): string {
  return oneLine(`[Tether] ${HEADLINES[f.event]}: ${f.privilege} for ${f.requester}`, 200);
}

/** The email body: text/plain only. */
export function emailText(f: NotificationFacts, publicUrl: string): string {
  const link = requestLink(publicUrl, f.requestId);
  const lines = [
    `${HEADLINES[f.event]}.`,
    '',
    ...fieldsOf(f).map(([k, v]) => `${k}: ${v}`),
    '',
    f.event === 'request.pending' ? `Approve or deny: ${link}` : `Details: ${link}`,
    '',
    '(Sent by Tether. The reason and ticket above were written by the requester.)',
  ];
  return `${lines.join('\n')}\n`;
}

/** A Slack incoming-webhook message: `text` (fallback) and Block Kit `blocks`, requester text escaped. */
export function slackMessage(f: NotificationFacts, publicUrl: string): Record<string, unknown> {
  const link = requestLink(publicUrl, f.requestId);
  const fields = fieldsOf(f).map(([k, v]) => `*${k}:* ${escapeMrkdwn(v)}`);
  const headline = `${HEADLINES[f.event]}: ${escapeMrkdwn(oneLine(f.privilege, 128))} for ${escapeMrkdwn(
    oneLine(f.requester, 128),
  )}`;
  const blocks: Record<string, unknown>[] = [
    { type: 'section', text: { type: 'mrkdwn', text: `*${headline}*` } },
    { type: 'section', text: { type: 'mrkdwn', text: fields.join('\n') } },
  ];
  if (f.event === 'request.pending') {
    blocks.push({
      type: 'actions',
      elements: [
        { type: 'button', text: { type: 'plain_text', text: 'Approve' }, style: 'primary', url: link },
        { type: 'button', text: { type: 'plain_text', text: 'Deny' }, style: 'danger', url: link },
      ],
    });
  } else {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `<${link}|Details>` } });
  }
  return { text: `${headline} (${link})`, blocks };
}

/**
 * A Teams incoming-webhook message: a MessageCard, with `markdown: false` on its facts and every
 * value HTML-escaped and its Markdown characters escaped too (what renders depends on the client).
 */
export function teamsMessage(f: NotificationFacts, publicUrl: string): Record<string, unknown> {
  const link = requestLink(publicUrl, f.requestId);
  const actions =
    f.event === 'request.pending'
      ? [
          { '@type': 'OpenUri', name: 'Approve', targets: [{ os: 'default', uri: link }] },
          { '@type': 'OpenUri', name: 'Deny', targets: [{ os: 'default', uri: link }] },
        ]
      : [{ '@type': 'OpenUri', name: 'Details', targets: [{ os: 'default', uri: link }] }];
  return {
    '@type': 'MessageCard',
    '@context': 'https://schema.org/extensions',
    summary: escapeHtml(HEADLINES[f.event]),
    themeColor: f.event === 'request.denied' || f.event === 'request.expired' ? 'C4314B' : '0078D7',
    title: escapeHtml(`${HEADLINES[f.event]}: ${oneLine(f.privilege, 128)} for ${oneLine(f.requester, 128)}`),
    sections: [
      { facts: fieldsOf(f).map(([name, value]) => ({ name, value: escapeHtml(value) })), markdown: false },
    ],
    potentialAction: actions,
  };
}

/** The generic webhook's JSON body: the facts as data (the receiver escapes for its own display). */
export function webhookBody(f: NotificationFacts, publicUrl: string, id: string): Record<string, unknown> {
  return {
    id,
    event: f.event,
    at: new Date(f.at).toISOString(),
    tenant: f.tenantId,
    request: {
      id: f.requestId,
      privilege: f.privilege,
      requester: f.requester,
      ticket: f.ticket,
      reason: f.reason,
      duration_s: f.durationSeconds,
      url: requestLink(publicUrl, f.requestId),
    },
    ...(f.by === undefined ? {} : { by: f.by }),
    ...(f.sessionId === undefined ? {} : { session: { id: f.sessionId, end_reason: f.endReason ?? null } }),
  };
}
