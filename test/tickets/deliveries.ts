/**
 * Ticket-system deliveries for the ticket tests: the real payload shapes (fixtures/), changed
 * per event, serialised as the sender would (pretty-printed, so a broker that re-serialised the
 * body before checking the HMAC would fail), and signed with the webhook's secret here, in
 * the test, exactly as GitHub, Jira and the generic sender sign them.
 */

import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CreatedWebhookView } from '@tether-broker/protocol/api';
import type { LightMyRequestResponse } from 'fastify';
import type { BrokerClient } from '../../packages/client/src/index.js';
import type { TestBroker } from '../support/broker.js';

// biome-ignore lint/suspicious/noExplicitAny: a fixture is edited field by field, like the sender's JSON
type Payload = Record<string, any>;

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Payload;

export type Kind = 'github' | 'jira' | 'generic';

export interface Delivery {
  kind: Kind;
  headers: Record<string, string>;
  body: string;
}

/** A webhook as `POST /v1/webhooks` answers it: with its secret, shown once. */
export type RegisteredWebhook = CreatedWebhookView;

export const hmac = (secret: string, body: string) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

const SIGNATURE_HEADER: Record<Kind, string> = {
  github: 'x-hub-signature-256',
  jira: 'x-hub-signature',
  generic: 'x-tether-signature',
};

/** `tether webhook add <kind> <name>`, through the API. */
export async function addWebhook(
  admin: BrokerClient,
  kind: Kind,
  name: string,
  assigneeAttribute?: string,
): Promise<RegisteredWebhook> {
  return admin.call<RegisteredWebhook>('POST', '/v1/webhooks', {
    kind,
    name,
    ...(assigneeAttribute ? { assignee_attribute: assigneeAttribute } : {}),
  });
}

function signed(kind: Kind, secret: string, payload: unknown, headers: Record<string, string>): Delivery {
  const body = `${JSON.stringify(payload, null, 2)}\n`;
  return {
    kind,
    body,
    headers: { 'content-type': 'application/json', ...headers, [SIGNATURE_HEADER[kind]]: hmac(secret, body) },
  };
}

export interface GitHubIssueEvent {
  action: 'opened' | 'closed' | 'reopened' | 'assigned' | 'unassigned' | 'edited' | 'deleted';
  /** Epoch ms; GitHub stamps `updated_at` to the second. */
  at: number;
  assignees?: string[];
  state?: 'open' | 'closed';
  number?: number;
  repo?: string;
  deliveryId?: string;
}

/** An `issues` event as GitHub sends it (X-GitHub-Event, X-GitHub-Delivery, X-Hub-Signature-256). */
export function githubIssue(secret: string, e: GitHubIssueEvent): Delivery {
  const p = fixture('github-issues.json');
  const state = e.state ?? (e.action === 'closed' ? 'closed' : 'open');
  const stamp = new Date(Math.floor(e.at / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  const template = p.issue.assignee;
  const assignees = (e.assignees ?? ['olivia-gh']).map((login) => ({ ...template, login }));
  p.action = e.action;
  if (e.repo) {
    p.repository.full_name = e.repo;
    p.repository.name = e.repo.split('/')[1];
  }
  if (e.number) p.issue.number = e.number;
  p.issue.html_url = `https://github.com/${p.repository.full_name}/issues/${p.issue.number}`;
  p.issue.state = state;
  p.issue.state_reason = state === 'closed' ? 'completed' : e.action === 'reopened' ? 'reopened' : null;
  p.issue.assignees = assignees;
  p.issue.assignee = assignees[0] ?? null;
  p.issue.updated_at = stamp;
  p.issue.closed_at = state === 'closed' ? stamp : null;
  if (e.action === 'assigned' || e.action === 'unassigned') p.assignee = assignees[0] ?? template;
  else delete p.assignee;
  return signed('github', secret, p, {
    'user-agent': 'GitHub-Hookshot/2f9e5c1',
    'x-github-event': 'issues',
    'x-github-delivery': e.deliveryId ?? randomUUID(),
    'x-github-hook-id': '512301774',
    'x-github-hook-installation-target-type': 'repository',
  });
}

export interface JiraIssueEvent {
  event: 'jira:issue_created' | 'jira:issue_updated' | 'jira:issue_deleted';
  /** Epoch ms, as Jira's `timestamp`. */
  at: number;
  category: 'new' | 'indeterminate' | 'done';
  /** An account id, or null for unassigned. */
  assignee?: string | null;
  key?: string;
  deliveryId?: string;
}

export const OLIVIA_JIRA = '712020:6f0b9d1e-3c5a-4c1f-9e0d-2b7a1c9e4d21';

/** A Jira Cloud issue event (X-Atlassian-Webhook-Identifier, X-Hub-Signature). */
export function jiraIssue(secret: string, e: JiraIssueEvent): Delivery {
  const p = fixture('jira-issue-updated.json');
  const names = {
    new: ['To Do', 2, 'blue-gray'],
    indeterminate: ['In Progress', 4, 'yellow'],
    done: ['Done', 3, 'green'],
  };
  const [name, id, color] = names[e.category];
  p.webhookEvent = e.event;
  p.issue_event_type_name = e.event === 'jira:issue_created' ? 'issue_created' : 'issue_generic';
  p.timestamp = e.at;
  if (e.key) p.issue.key = e.key;
  const assignee = e.assignee === undefined ? OLIVIA_JIRA : e.assignee;
  const person = { ...p.issue.fields.assignee, accountId: assignee };
  // Jira sends an e-mail address only where the person's profile shows it: here, Olivia's.
  if (assignee !== OLIVIA_JIRA) delete person.emailAddress;
  p.issue.fields.assignee = assignee === null ? null : person;
  p.issue.fields.status.name = name;
  p.issue.fields.status.statusCategory = {
    ...p.issue.fields.status.statusCategory,
    key: e.category,
    id,
    name,
    colorName: color,
  };
  p.issue.fields.updated = new Date(e.at).toISOString().replace('Z', '+0000');
  return signed('jira', secret, p, {
    'user-agent': 'Atlassian Webhook HTTP Client',
    'x-atlassian-webhook-identifier': e.deliveryId ?? String(Math.floor(Math.random() * 1e15)),
  });
}

export interface GenericTicketEvent {
  ref?: string;
  state: 'open' | 'closed';
  at: number;
  assignee?: string | null;
  deliveryId?: string;
}

/** Tether's generic JSON webhook (X-Tether-Signature). */
export function genericTicket(secret: string, e: GenericTicketEvent): Delivery {
  const p = fixture('generic-event.json');
  p.delivery_id = e.deliveryId ?? randomUUID();
  if (e.ref) p.ref = e.ref;
  p.state = e.state;
  p.updated_at = new Date(e.at).toISOString();
  if (e.assignee !== undefined) p.assignee = e.assignee;
  return signed('generic', secret, p, {});
}

/** Posts a delivery to a webhook's URL (no token: the signature is the credential). */
export function deliver(b: TestBroker, webhook: Pick<RegisteredWebhook, 'url'>, d: Delivery) {
  return b.app.inject({
    method: 'POST',
    url: new URL(webhook.url).pathname,
    headers: d.headers,
    payload: d.body,
  }) as Promise<LightMyRequestResponse>;
}
