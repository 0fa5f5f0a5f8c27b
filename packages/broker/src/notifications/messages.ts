/**
 * The chat messages of notifications as they leave the broker: Slack's hardened against its
 * own auto-parsing, and Teams' as an Adaptive Card (Workflows webhooks) or, on request, the
 * legacy MessageCard. Pure: built here, sent by `send.ts`.
 */
import {
  type ChannelSettings,
  type NotificationFacts,
  oneLine,
  requestLink,
  slackMessage,
  teamsMessage,
} from '../domain/notification.js';

/** What a Teams channel posts. */
export type TeamsFormat = 'adaptive_card' | 'message_card';

/**
 * A Teams channel's format. Channels stored before the option existed were made for an Office
 * 365 connector URL, which takes a MessageCard: they keep it (new channels default to
 * `adaptive_card`, set at creation).
 */
export function teamsFormatOf(settings: ChannelSettings): TeamsFormat {
  const format = (settings as { format?: unknown }).format;
  return format === 'adaptive_card' ? 'adaptive_card' : 'message_card';
}

/**
 * A Slack incoming-webhook message: the domain's Block Kit message (`&`, `<`, `>` escaped in
 * requester text), with every mrkdwn text object `verbatim`, so Slack does not turn a bare
 * `@channel`, `#channel` or URL in a reason into a mention or a link (our own `<url|Details>`
 * link is explicit and still works).
 */
export function slackPayload(f: NotificationFacts, publicUrl: string): Record<string, unknown> {
  const message = slackMessage(f, publicUrl) as { text: string; blocks: Record<string, unknown>[] };
  return {
    ...message,
    blocks: message.blocks.map((block) => {
      const text = block.text as { type?: string } | undefined;
      return text?.type === 'mrkdwn' ? { ...block, text: { ...text, verbatim: true } } : block;
    }),
  };
}

/** The Teams message of a channel's format. */
export function teamsPayload(
  f: NotificationFacts,
  publicUrl: string,
  format: TeamsFormat,
): Record<string, unknown> {
  return format === 'message_card' ? teamsMessage(f, publicUrl) : adaptiveCardMessage(f, publicUrl);
}

/**
 * Text made inert for Adaptive Card markdown (a CommonMark subset: emphasis, lists, `[text](url)`
 * links, and `{{DATE()}}` functions): one bounded line, every character that opens one of them
 * backslash-escaped, and a leading list marker too. Even a renderer that ignores the escapes
 * sees no link: `]` and `(` are never adjacent, nor `{` and `{`.
 */
export function inertCardText(text: string, max?: number): string {
  return oneLine(text, max)
    .replace(/[\\`*_{}[\]()<>#|~!]/g, '\\$&')
    .replace(/^[-+]/, '\\$&')
    .replace(/^(\d+)\./, '$1\\.');
}

const HEADLINES: Record<NotificationFacts['event'], string> = {
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

/** The card's facts, every value made inert (the reason and ticket are the requester's). */
function cardFacts(f: NotificationFacts): { title: string; value: string }[] {
  const facts: [string, string][] = [
    ['Request', inertCardText(f.requestId, 64)],
    ['Privilege', inertCardText(f.privilege, 128)],
    ['Requester', inertCardText(f.requester, 128)],
    ['Ticket', f.ticket === null ? '—' : inertCardText(f.ticket, 256)],
    ['Reason', inertCardText(f.reason) || '—'],
    ['Duration', duration(f.durationSeconds)],
  ];
  if (f.by !== undefined)
    facts.push([f.event === 'request.denied' ? 'Denied by' : 'Approved by', inertCardText(f.by, 128)]);
  if (f.sessionId !== undefined) facts.push(['Session', inertCardText(f.sessionId, 64)]);
  if (f.endReason !== undefined) facts.push(['End reason', inertCardText(f.endReason, 64)]);
  return facts.map(([title, value]) => ({ title, value }));
}

/**
 * A Teams Workflows webhook message: one Adaptive Card (1.4) attachment with the headline, the
 * facts, and links to the console (Approve / Deny on a waiting request, Details otherwise).
 * The buttons only open the console, where the approver signs in and decides.
 *
 * @example
 * ```ts
 * await post(url, JSON.stringify(adaptiveCardMessage(facts, 'https://tether.example.com')));
 * ```
 */
export function adaptiveCardMessage(f: NotificationFacts, publicUrl: string): Record<string, unknown> {
  const link = requestLink(publicUrl, f.requestId);
  const alarming = f.event === 'request.denied' || f.event === 'request.expired';
  const actions =
    f.event === 'request.pending'
      ? [
          { type: 'Action.OpenUrl', title: 'Approve…', url: link, style: 'positive' },
          { type: 'Action.OpenUrl', title: 'Deny…', url: link, style: 'destructive' },
        ]
      : [{ type: 'Action.OpenUrl', title: 'Details', url: link }];
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            {
              type: 'TextBlock',
              text: `${HEADLINES[f.event]}: ${inertCardText(f.privilege, 128)} for ${inertCardText(f.requester, 128)}`,
              weight: 'Bolder',
              size: 'Medium',
              color: alarming ? 'Attention' : 'Default',
              wrap: true,
            },
            { type: 'FactSet', facts: cardFacts(f) },
          ],
          actions,
        },
      },
    ],
  };
}
