import type { TicketList, TicketView } from '@tether-broker/protocol/api';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { openSecret } from '../../packages/broker/src/config/key-encryption.js';
import type { BrokerClient } from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { describeEachStore } from '../support/stores.js';
import {
  addWebhook,
  type Delivery,
  deliver,
  genericTicket,
  githubIssue,
  hmac,
  jiraIssue,
  OLIVIA_JIRA,
  type RegisteredWebhook,
} from './deliveries.js';

const MINUTE = 60_000;
const REF = 'acme/infra#12';
const path = (ref: string) => `/v1/tickets/${encodeURIComponent(ref)}`;

describeEachStore('ticket webhooks', (fixture) => {
  let b: TestBroker;
  let admin: BrokerClient;
  let gh: RegisteredWebhook;
  let t0: number;
  afterAll(() => fixture.cleanup());
  afterEach(() => b.close());

  beforeEach(async () => {
    b = await startTestBroker(await fixture.open());
    admin = b.client(b.adminIdentity);
    gh = await addWebhook(admin, 'github', 'gh-infra');
    t0 = b.clock.now() - 10 * MINUTE;
  });

  /** What a delivery may change: every ticket row, every delivery id seen, every tenant's audit head. */
  async function register(): Promise<string> {
    const db = b.ctx.store.db;
    const tickets = await db.selectFrom('tickets').selectAll().orderBy('tenant_id').orderBy('ref').execute();
    const deliveries = await db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .orderBy('webhook_id')
      .orderBy('delivery_id')
      .execute();
    const heads = await db.selectFrom('audit_heads').selectAll().orderBy('tenant_id').execute();
    return JSON.stringify({ tickets, deliveries, heads });
  }

  async function send(webhook: RegisteredWebhook, d: Delivery) {
    const response = await deliver(b, webhook, d);
    return { status: response.statusCode, body: response.json() as Record<string, unknown> };
  }

  const ticket = (ref = REF, client = admin) => client.call<TicketView>('GET', path(ref));

  it('registers a webhook: its URL and secret are answered once; the secret is sealed at rest and shown nowhere else', async () => {
    expect(gh.url).toBe(`${PUBLIC_URL}/v1/webhooks/github/${gh.id}`);
    expect(gh.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const listed = await admin.call<{ webhooks: Record<string, unknown>[] }>('GET', '/v1/webhooks');
    expect(listed.webhooks).toEqual([
      expect.objectContaining({ id: gh.id, name: 'gh-infra', kind: 'github', url: gh.url }),
    ]);
    expect(listed.webhooks[0]).not.toHaveProperty('secret');
    const shown = await admin.call<Record<string, unknown>>('GET', '/v1/webhooks/gh-infra');
    expect(shown).toMatchObject({ id: gh.id, assignee_attribute: 'github' });
    expect(shown).not.toHaveProperty('secret');

    const row = await b.ctx.store.db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', gh.id)
      .executeTakeFirstOrThrow();
    expect(row.secret_enc).not.toContain(gh.secret);
    expect(row.secret_enc.split('.')).toHaveLength(5);
    expect(await openSecret(b.ctx.kek, row.secret_enc)).toBe(gh.secret);
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    const audit = await admin.call<{ records: unknown[] }>('GET', '/v1/audit');
    expect(JSON.stringify(audit)).not.toContain(gh.secret);
    expect(JSON.stringify(audit)).toContain('webhook.created');
    expect(b.logs.join('\n')).not.toContain(gh.secret);

    expect((await refusal(addWebhook(admin, 'jira', 'gh-infra'))).code).toBe('already_exists');
    expect((await refusal(addWebhook(admin, 'generic', 'manual'))).code).toBe('invalid_request');
    const olivia = await b.principal('olivia');
    expect((await refusal(addWebhook(olivia.client, 'github', 'mine'))).code).toBe('forbidden');
    expect((await refusal(olivia.client.call('GET', '/v1/webhooks'))).code).toBe('forbidden');
  });

  it('follows GitHub issues events: opened, assigned, unassigned, closed, reopened', async () => {
    const opened = await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0, assignees: [] }));
    expect(opened).toEqual({
      status: 200,
      body: expect.objectContaining({
        outcome: 'applied',
        event: 'issues.opened',
        ticket: REF,
        state: 'open',
      }),
    });
    expect(await ticket()).toMatchObject({
      ref: REF,
      source: 'gh-infra',
      kind: 'github',
      state: 'open',
      title: 'Open port 8443 on the edge firewall for the payments rollout',
      url: 'https://github.com/acme/infra/issues/12',
      assignees: [],
      event_at: new Date(t0 - (t0 % 1000)).toISOString(),
    });
    await send(
      gh,
      githubIssue(gh.secret, { action: 'assigned', at: t0 + MINUTE, assignees: ['Olivia-GH', 'bob'] }),
    );
    expect((await ticket()).assignees).toEqual(['bob', 'olivia-gh']);
    await send(
      gh,
      githubIssue(gh.secret, { action: 'unassigned', at: t0 + 2 * MINUTE, assignees: ['olivia-gh'] }),
    );
    expect((await ticket()).assignees).toEqual(['olivia-gh']);
    const closed = await send(gh, githubIssue(gh.secret, { action: 'closed', at: t0 + 3 * MINUTE }));
    expect(closed.body).toMatchObject({
      outcome: 'applied',
      state: 'closed',
      ended_sessions: [],
      cancelled_requests: [],
    });
    expect((await ticket()).state).toBe('closed');
    await send(gh, githubIssue(gh.secret, { action: 'reopened', at: t0 + 4 * MINUTE }));
    expect((await ticket()).state).toBe('open');
    // The same state again, later: the clock moves, nothing else does.
    const edited = await send(gh, githubIssue(gh.secret, { action: 'edited', at: t0 + 5 * MINUTE }));
    expect(edited.body).toMatchObject({ outcome: 'unchanged' });

    const audit = await admin.call<{
      records: { action: string; actor: string; details: Record<string, unknown> }[];
    }>('GET', `/v1/audit?ticket=${encodeURIComponent(REF)}`);
    expect(audit.records.map((r) => r.action)).toEqual([
      'ticket.created',
      'ticket.updated',
      'ticket.updated',
      'ticket.closed',
      'ticket.reopened',
    ]);
    expect(audit.records[3]).toMatchObject({
      actor: gh.id,
      details: {
        source: 'gh-infra',
        kind: 'github',
        event: 'issues.closed',
        state: 'closed',
        previous_state: 'open',
      },
    });
    expect(audit.records[3]?.details.delivery_id).toMatch(/^[0-9a-f-]{36}$/);
    const listed = await admin.call<TicketList>('GET', '/v1/tickets?state=open&source=gh-infra');
    expect(listed.tickets.map((t) => t.ref)).toEqual([REF]);
    expect((await admin.call<{ tickets: unknown[] }>('GET', '/v1/tickets?state=closed')).tickets).toEqual([]);
  });

  it('refuses a delivery whose signature is missing, malformed, under another secret or over another body, and changes nothing', async () => {
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    const before = await register();
    const genuine = githubIssue(gh.secret, {
      action: 'closed',
      at: t0 + MINUTE,
      deliveryId: 'f1b7c0de-0000-4000-8000-000000000001',
    });
    const other = githubIssue(gh.secret, { action: 'reopened', at: t0 + 2 * MINUTE });
    const signature = genuine.headers['x-hub-signature-256']!;
    const withSignature = (value: string | undefined, header = 'x-hub-signature-256'): Delivery => {
      const headers = { ...genuine.headers };
      delete headers['x-hub-signature-256'];
      if (value !== undefined) headers[header] = value;
      return { ...genuine, headers };
    };
    const forgeries: [string, Delivery][] = [
      ['no signature', withSignature(undefined)],
      ['an empty signature', withSignature('')],
      ['the SHA-1 header GitHub also sends', withSignature(signature, 'x-hub-signature')],
      ['sha1= instead of sha256=', withSignature(signature.replace('sha256=', 'sha1='))],
      ['a truncated digest', withSignature(signature.slice(0, -2))],
      [
        'a digest with one bit flipped',
        withSignature(`${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`),
      ],
      ['not hex', withSignature(`sha256=${'z'.repeat(64)}`)],
      ['under another secret', withSignature(hmac('not-the-secret', genuine.body))],
      ['over another body', withSignature(other.headers['x-hub-signature-256'])],
      [
        'a signed body with one byte changed',
        { ...genuine, body: genuine.body.replace('"closed"', '"clused"') },
      ],
      ['two signatures', withSignature(`${signature}, ${signature}`)],
    ];
    for (const [name, forged] of forgeries) {
      const answer = await send(gh, forged);
      expect(answer.status, name).toBe(401);
      expect(answer.body.code, name).toBe('invalid_signature');
      expect(await register(), name).toBe(before);
    }
    // A refused delivery burned nothing: the genuine one with the same id still applies.
    expect((await send(gh, genuine)).body).toMatchObject({ outcome: 'applied', state: 'closed' });
  });

  it('ignores a replayed delivery id, even with another body, and changes nothing', async () => {
    const id = '6e1f0a52-9b1c-11f0-8a3c-0242ac120002';
    expect(
      (await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0, deliveryId: id }))).body.outcome,
    ).toBe('applied');
    const before = await register();
    const replay = await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0, deliveryId: id }));
    expect(replay).toEqual({ status: 200, body: expect.objectContaining({ outcome: 'duplicate' }) });
    // Same id, signed, with a newer close: still the delivery already seen.
    const altered = await send(
      gh,
      githubIssue(gh.secret, { action: 'closed', at: t0 + MINUTE, deliveryId: id }),
    );
    expect(altered.body.outcome).toBe('duplicate');
    expect(await register()).toBe(before);
    expect((await ticket()).state).toBe('open');
    // The same event under a fresh delivery id (a body captured and re-sent) changes nothing either.
    const resent = await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    expect(resent.body.outcome).toBe('stale');
    const heads = await b.ctx.store.db.selectFrom('audit_heads').selectAll().execute();
    expect(JSON.stringify(heads)).toBe(JSON.stringify(JSON.parse(before).heads));
  });

  it('resolves out-of-order deliveries by the event’s own timestamp', async () => {
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    await send(gh, githubIssue(gh.secret, { action: 'closed', at: t0 + 2 * MINUTE }));
    const tickets = async () =>
      JSON.stringify(await b.ctx.store.db.selectFrom('tickets').selectAll().execute());
    const heads = async () =>
      JSON.stringify(await b.ctx.store.db.selectFrom('audit_heads').selectAll().execute());
    const [ticketsBefore, headsBefore] = [await tickets(), await heads()];
    // Sent before the close, delivered after it.
    for (const late of [
      githubIssue(gh.secret, { action: 'assigned', at: t0 + MINUTE, assignees: ['mallory'] }),
      githubIssue(gh.secret, { action: 'reopened', at: t0 + MINUTE }),
    ]) {
      expect((await send(gh, late)).body).toMatchObject({ outcome: 'stale', state: 'closed' });
    }
    expect(await tickets()).toBe(ticketsBefore);
    expect(await heads()).toBe(headsBefore);
    expect(await ticket()).toMatchObject({ state: 'closed', assignees: ['olivia-gh'] });
    await send(gh, githubIssue(gh.secret, { action: 'reopened', at: t0 + 3 * MINUTE }));
    expect((await ticket()).state).toBe('open');
  });

  it('follows Jira issue events by status category, with the assignee’s account id', async () => {
    const jira = await addWebhook(admin, 'jira', 'jira-net');
    expect(jira.url).toBe(`${PUBLIC_URL}/v1/webhooks/jira/${jira.id}`);
    const created = await send(
      jira,
      jiraIssue(jira.secret, { event: 'jira:issue_created', at: t0, category: 'new', assignee: null }),
    );
    expect(created.body).toMatchObject({
      outcome: 'applied',
      event: 'jira:issue_created',
      ticket: 'NET-7',
      state: 'open',
    });
    expect(await ticket('NET-7')).toMatchObject({
      source: 'jira-net',
      kind: 'jira',
      state: 'open',
      title: 'Open port 8443 on the edge firewall',
      url: 'https://acme.atlassian.net/browse/NET-7',
      assignees: [],
    });
    await send(
      jira,
      jiraIssue(jira.secret, { event: 'jira:issue_updated', at: t0 + MINUTE, category: 'indeterminate' }),
    );
    expect(await ticket('NET-7')).toMatchObject({
      state: 'open',
      assignees: [OLIVIA_JIRA, 'olivia@acme.example'].sort(),
    });
    await send(
      jira,
      jiraIssue(jira.secret, { event: 'jira:issue_updated', at: t0 + 2 * MINUTE, category: 'done' }),
    );
    expect((await ticket('NET-7')).state).toBe('closed');
    // A Jira delivery without its signature, or signed in GitHub's header, changes nothing.
    const before = await register();
    const unsigned = jiraIssue(jira.secret, {
      event: 'jira:issue_updated',
      at: t0 + 3 * MINUTE,
      category: 'new',
    });
    const sig = unsigned.headers['x-hub-signature']!;
    delete unsigned.headers['x-hub-signature'];
    expect((await send(jira, unsigned)).body.code).toBe('invalid_signature');
    expect(
      (await send(jira, { ...unsigned, headers: { ...unsigned.headers, 'x-hub-signature-256': sig } })).body
        .code,
    ).toBe('invalid_signature');
    expect(await register()).toBe(before);
    // Other Jira events (a comment) are acknowledged and ignored.
    const comment = jiraIssue(jira.secret, {
      event: 'jira:issue_updated',
      at: t0 + 4 * MINUTE,
      category: 'new',
    });
    const body = comment.body.replace('"jira:issue_updated"', '"comment_created"');
    const ignored = await send(jira, {
      ...comment,
      body,
      headers: { ...comment.headers, 'x-hub-signature': hmac(jira.secret, body) },
    });
    expect(ignored.body).toMatchObject({ outcome: 'ignored', event: 'comment_created' });
    expect(await register()).toBe(before);
  });

  it('follows the generic webhook', async () => {
    const generic = await addWebhook(admin, 'generic', 'changes', 'email');
    await send(generic, genericTicket(generic.secret, { state: 'open', at: t0 }));
    expect(await ticket('CHG-4411')).toMatchObject({
      source: 'changes',
      kind: 'generic',
      state: 'open',
      assignees: ['olivia@acme.example'],
      url: 'https://changes.acme.example/CHG-4411',
    });
    const closed = await send(generic, genericTicket(generic.secret, { state: 'closed', at: t0 + MINUTE }));
    expect(closed.body).toMatchObject({ outcome: 'applied', state: 'closed' });
    const before = await register();
    const unknownField = genericTicket(generic.secret, { state: 'open', at: t0 + 2 * MINUTE });
    const body = unknownField.body.replace('"state"', '"status": "x",\n  "state"');
    const refused = await send(generic, {
      ...unknownField,
      body,
      headers: { ...unknownField.headers, 'x-tether-signature': hmac(generic.secret, body) },
    });
    expect(refused).toMatchObject({ status: 400, body: { code: 'invalid_request' } });
    expect(await register()).toBe(before);
  });

  it('answers unknown webhooks, other kinds, other media types and bad payloads with a 4xx, changing nothing', async () => {
    const before = await register();
    const d = githubIssue(gh.secret, { action: 'opened', at: t0 });
    const jiraPath = { url: gh.url.replace('/github/', '/jira/') };
    const cases: [string, Promise<{ status: number; body: Record<string, unknown> }>, number, string][] = [
      [
        'unknown id',
        send({ url: `${PUBLIC_URL}/v1/webhooks/github/whk_${'0'.repeat(26)}` } as RegisteredWebhook, d),
        404,
        'not_found',
      ],
      ['another kind', send(jiraPath as RegisteredWebhook, d), 404, 'not_found'],
      [
        'not JSON',
        send(gh, { ...d, headers: { ...d.headers, 'content-type': 'text/plain' } }),
        415,
        'unsupported_media_type',
      ],
      [
        'signed, but not JSON',
        send(gh, {
          ...d,
          body: 'payload=x',
          headers: { ...d.headers, 'x-hub-signature-256': hmac(gh.secret, 'payload=x') },
        }),
        400,
        'invalid_request',
      ],
      [
        'signed, but not an issue',
        send(gh, {
          ...d,
          body: '{"action":"opened"}',
          headers: { ...d.headers, 'x-hub-signature-256': hmac(gh.secret, '{"action":"opened"}') },
        }),
        400,
        'invalid_request',
      ],
      [
        'signed, without a delivery id',
        send(gh, {
          ...d,
          headers: Object.fromEntries(Object.entries(d.headers).filter(([k]) => k !== 'x-github-delivery')),
        }),
        400,
        'invalid_request',
      ],
    ];
    for (const [name, answer, status, code] of cases) {
      expect(await answer, name).toMatchObject({ status, body: { code } });
    }
    // GitHub's ping when a webhook is set up: acknowledged.
    const ping = { ...d, body: '{"zen":"Keep it logically awesome.","hook_id":512301774}' };
    ping.headers = {
      ...d.headers,
      'x-github-event': 'ping',
      'x-hub-signature-256': hmac(gh.secret, ping.body),
    };
    expect((await send(gh, ping)).body).toMatchObject({ outcome: 'ignored', event: 'ping' });
    expect(await register()).toBe(before);

    // A removed webhook is gone for its sender.
    await admin.call('DELETE', '/v1/webhooks/gh-infra');
    expect((await send(gh, d)).status).toBe(404);
  });

  it('keeps each tenant’s register to itself', async () => {
    const globex = await startTestBroker(b.ctx.store, { tenantName: 'globex', reuse: b });
    const globexAdmin = globex.client(globex.adminIdentity);
    const theirs = await addWebhook(globexAdmin, 'github', 'gh-infra');
    await send(gh, githubIssue(gh.secret, { action: 'opened', at: t0 }));
    expect((await refusal(ticket(REF, globexAdmin))).code).toBe('not_found');
    expect((await globexAdmin.call<{ tickets: unknown[] }>('GET', '/v1/tickets')).tickets).toEqual([]);
    // One tenant's secret does not sign for another's webhook.
    const before = await register();
    const crossed = await send(theirs, githubIssue(gh.secret, { action: 'closed', at: t0 + MINUTE }));
    expect(crossed.body.code).toBe('invalid_signature');
    expect(await register()).toBe(before);
    // The same reference in the other tenant is another ticket.
    await send(theirs, githubIssue(theirs.secret, { action: 'closed', at: t0 + MINUTE }));
    expect((await ticket(REF, globexAdmin)).state).toBe('closed');
    expect((await ticket(REF)).state).toBe('open');
    expect((await globexAdmin.call<{ id: string }>('GET', '/v1/webhooks/gh-infra')).id).toBe(theirs.id);
    expect((await refusal(globexAdmin.call('GET', `/v1/webhooks/${gh.id}`))).code).toBe('not_found');
  });
});
