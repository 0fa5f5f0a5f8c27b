/**
 * Reads the deliveries of each ticket system into one {@link TicketEvent}. Only the fields the
 * register uses are checked; the rest of a real payload (GitHub and Jira send hundreds of
 * fields) is left alone. Called only after the delivery's signature has been verified.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TetherError } from '@tether-broker/protocol';
import type { TicketEvent, TicketState, WebhookKind } from '../domain/ticket.js';

/** A verified delivery: a ticket event to apply, or something the register has no use for. */
export type TicketDelivery =
  | { type: 'event'; deliveryId: string; eventName: string; event: TicketEvent }
  | { type: 'ignored'; eventName: string };

type Headers = Record<string, string | string[] | undefined>;

const REF_MAX = 256;
const DELIVERY_ID = /^[\x21-\x7e]{1,128}$/;
/** RFC 3339 with a zone, as GitHub and the generic webhook stamp events. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

const Text = (max: number) => Type.String({ maxLength: max });
const Login = Type.Object({ login: Text(256) });

const GitHubIssues = Type.Object({
  action: Text(64),
  issue: Type.Object({
    number: Type.Integer({ minimum: 1 }),
    state: Text(32),
    title: Type.Optional(Text(4096)),
    html_url: Type.Optional(Text(2048)),
    assignees: Type.Optional(Type.Array(Login, { maxItems: 100 })),
    assignee: Type.Optional(Type.Union([Login, Type.Null()])),
    updated_at: Text(64),
  }),
  repository: Type.Object({ full_name: Type.String({ minLength: 3, maxLength: 200 }) }),
});

const JiraUser = Type.Object({ accountId: Type.Optional(Text(256)), emailAddress: Type.Optional(Text(320)) });
const JiraIssue = Type.Object({
  webhookEvent: Text(64),
  timestamp: Type.Integer({ minimum: 0, maximum: 8.64e15 }),
  issue: Type.Object({
    key: Type.String({ minLength: 1, maxLength: REF_MAX }),
    self: Type.Optional(Text(2048)),
    fields: Type.Object({
      summary: Type.Optional(Text(4096)),
      status: Type.Optional(Type.Object({ statusCategory: Type.Object({ key: Text(64) }) })),
      assignee: Type.Optional(Type.Union([JiraUser, Type.Null()])),
    }),
  }),
});

const GenericEvent = Type.Object(
  {
    delivery_id: Type.String({ pattern: DELIVERY_ID.source }),
    ref: Type.String({ minLength: 1, maxLength: REF_MAX }),
    state: Type.Union([Type.Literal('open'), Type.Literal('closed')]),
    assignee: Type.Optional(Type.Union([Text(320), Type.Null()])),
    assignees: Type.Optional(Type.Array(Text(320), { maxItems: 100 })),
    title: Type.Optional(Text(4096)),
    url: Type.Optional(Text(2048)),
    updated_at: Text(64),
  },
  { additionalProperties: false },
);

/** The JSON body, or `invalid_request`. */
function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new TetherError('invalid_request', 'the delivery body is not JSON');
  }
}

function checked<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const first = Value.Errors(schema, value).First();
  const where = first ? ` (${first.path || '/'}: ${first.message})` : '';
  throw new TetherError('invalid_request', `the delivery is not a ${what} payload${where}`);
}

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

function deliveryId(value: string | undefined, where: string): string {
  if (value === undefined || !DELIVERY_ID.test(value)) {
    throw new TetherError('invalid_request', `the delivery has no usable delivery id (${where})`);
  }
  return value;
}

function eventTime(text: string, field: string): number {
  const at = RFC3339.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(at)) throw new TetherError('invalid_request', `${field} is not an RFC 3339 timestamp`);
  return at;
}

/** A reference as the register stores it: no control characters, bounded. */
function ticketRef(ref: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (ref.length === 0 || ref.length > REF_MAX || /[\u0000-\u001f\u007f]/.test(ref)) {
    throw new TetherError(
      'invalid_request',
      'the ticket reference is empty, too long or has control characters',
    );
  }
  return ref;
}

/** GitHub `issues` events (any action: each carries the whole issue as it now is). */
function readGitHub(headers: Headers, value: unknown): TicketDelivery {
  const eventName = header(headers, 'x-github-event') ?? '';
  if (eventName !== 'issues') return { type: 'ignored', eventName: eventName || 'unknown' };
  const id = deliveryId(header(headers, 'x-github-delivery'), 'X-GitHub-Delivery');
  const p = checked(GitHubIssues, value, 'GitHub issues');
  // A deleted or transferred issue is gone from here: its task is over.
  const gone = p.action === 'deleted' || p.action === 'transferred';
  const state: TicketState = gone || p.issue.state === 'closed' ? 'closed' : 'open';
  const assignees = p.issue.assignees
    ? p.issue.assignees.map((a) => a.login)
    : p.issue.assignee === undefined
      ? undefined
      : p.issue.assignee === null
        ? []
        : [p.issue.assignee.login];
  return {
    type: 'event',
    deliveryId: id,
    eventName: `issues.${p.action}`,
    event: {
      ref: ticketRef(`${p.repository.full_name}#${p.issue.number}`),
      state,
      title: p.issue.title,
      url: p.issue.html_url,
      assignees,
      at: eventTime(p.issue.updated_at, 'issue.updated_at'),
    },
  };
}

const JIRA_EVENTS = new Set(['jira:issue_created', 'jira:issue_updated', 'jira:issue_deleted']);

/** The issue's page, from the REST `self` link Jira sends. */
function jiraBrowseUrl(self: string | undefined, key: string): string | undefined {
  if (!self) return undefined;
  try {
    return `${new URL(self).origin}/browse/${encodeURIComponent(key)}`;
  } catch {
    return undefined;
  }
}

/** Jira issue events: the status category decides open (`new`, `indeterminate`) or closed (`done`). */
function readJira(headers: Headers, value: unknown): TicketDelivery {
  const eventName =
    typeof value === 'object' && value !== null
      ? String((value as { webhookEvent?: unknown }).webhookEvent)
      : '';
  if (!JIRA_EVENTS.has(eventName)) return { type: 'ignored', eventName: eventName.slice(0, 64) || 'unknown' };
  const id = deliveryId(header(headers, 'x-atlassian-webhook-identifier'), 'X-Atlassian-Webhook-Identifier');
  const p = checked(JiraIssue, value, 'Jira issue');
  const category = p.issue.fields.status?.statusCategory.key;
  if (eventName !== 'jira:issue_deleted' && category === undefined) {
    throw new TetherError('invalid_request', 'the Jira issue has no status category');
  }
  const assignee = p.issue.fields.assignee;
  const fields = p.issue.fields as Record<string, unknown>;
  return {
    type: 'event',
    deliveryId: id,
    eventName,
    event: {
      ref: ticketRef(p.issue.key),
      state: eventName === 'jira:issue_deleted' || category === 'done' ? 'closed' : 'open',
      title: p.issue.fields.summary,
      url: jiraBrowseUrl(p.issue.self, p.issue.key),
      // Absent: the payload does not say. Null: nobody.
      assignees: !('assignee' in fields)
        ? undefined
        : assignee
          ? [assignee.accountId, assignee.emailAddress].filter((x): x is string => !!x)
          : [],
      at: p.timestamp,
    },
  };
}

/** Tether's own format, for any system that can sign a JSON body. */
function readGeneric(value: unknown): TicketDelivery {
  const p = checked(GenericEvent, value, 'generic ticket');
  const assignees =
    p.assignees ?? (p.assignee === undefined ? undefined : p.assignee === null ? [] : [p.assignee]);
  return {
    type: 'event',
    deliveryId: p.delivery_id,
    eventName: 'generic',
    event: {
      ref: ticketRef(p.ref),
      state: p.state,
      title: p.title,
      url: p.url,
      assignees,
      at: eventTime(p.updated_at, 'updated_at'),
    },
  };
}

/** Reads a delivery whose signature has been verified. Throws `invalid_request` for a bad payload. */
export function readTicketDelivery(kind: WebhookKind, headers: Headers, body: Buffer): TicketDelivery {
  const value = parseJson(body);
  switch (kind) {
    case 'github':
      return readGitHub(headers, value);
    case 'jira':
      return readJira(headers, value);
    case 'generic':
      return readGeneric(value);
  }
}
