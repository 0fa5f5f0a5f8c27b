import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { expireOverdueRequests } from '../../packages/broker/src/core/expire-requests.js';
import type { Store } from '../../packages/broker/src/store/database.js';
import { listChannelNotifications } from '../../packages/broker/src/store/repositories/notifications.js';
import { BoundSession, BrokerError } from '../../packages/client/src/index.js';
import { PUBLIC_URL, startTestBroker, type TestBroker } from '../support/broker.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Notifications end to end: channels configured over the API, rows queued in the transaction of
 * the event, delivered by the worker to real receivers on loopback (an HTTP server standing in
 * for Slack, Teams and a generic webhook receiver; a real SMTP server), retried with backoff
 * on the broker's manual clock while a receiver is down.
 */

/** Requester text full of markup: Slack mrkdwn controls, HTML, a Markdown link, a header-injection try. */
const HOSTILE_REASON =
  'fix <!channel> <script>alert(1)</script> & <https://evil.example|click here> [x](https://evil.example)\r\nBcc: victim@evil.example';

interface Delivery {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  port: number;
  url: (path?: string) => string;
  deliveries: Delivery[];
  /** Answer 503 while true. */
  failing: boolean;
  listen(): Promise<void>;
  close(): Promise<void>;
  waitFor(n: number): Promise<Delivery[]>;
}

/** A loopback HTTP receiver that records every POST; it can be closed and reopened on the same port. */
async function startReceiver(): Promise<Receiver> {
  let server: Server | undefined;
  const waiters: (() => void)[] = [];
  const r: Receiver = {
    port: 0,
    url: (path = '/hook') => `http://127.0.0.1:${r.port}${path}`,
    deliveries: [],
    failing: false,
    async listen() {
      server = createServer(async (req, res) => {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        if (r.failing) return void res.writeHead(503).end();
        r.deliveries.push({
          at: Date.now(),
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        for (const w of waiters.splice(0)) w();
      });
      // Reopened on the port it had (a receiver coming back); a few tries in case it is not free at once.
      for (let attempt = 0; ; attempt++) {
        try {
          await new Promise<void>((resolve, reject) => {
            server!.once('error', reject);
            server!.listen(r.port, '127.0.0.1', () => resolve());
          });
          break;
        } catch (err) {
          if (attempt >= 20) throw err;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      r.port = (server.address() as AddressInfo).port;
    },
    async close() {
      if (!server) return;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
    },
    waitFor(n) {
      return new Promise((resolve) => {
        const check = () => (r.deliveries.length >= n ? resolve(r.deliveries) : waiters.push(check));
        check();
      });
    },
  };
  await r.listen();
  return r;
}

interface Mail {
  at: number;
  from: string | undefined;
  to: string[];
  user: string | undefined;
  password: string | undefined;
  raw: string;
}

/** A real SMTP server on loopback (smtp-server), with AUTH PLAIN/LOGIN over clear text allowed for the test. */
async function startSmtp(): Promise<{
  port: number;
  mails: Mail[];
  waitFor(n: number): Promise<Mail[]>;
  close(): Promise<void>;
}> {
  const mails: Mail[] = [];
  const waiters: (() => void)[] = [];
  const credentials = new Map<string, { user: string; password: string }>();
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authOptional: true,
    logger: false,
    onAuth(auth, session, callback) {
      credentials.set(session.id, { user: auth.username ?? '', password: auth.password ?? '' });
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const auth = credentials.get(session.id);
        mails.push({
          at: Date.now(),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
          to: session.envelope.rcptTo.map((a) => a.address),
          user: auth?.user,
          password: auth?.password,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
        for (const w of waiters.splice(0)) w();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    mails,
    waitFor(n) {
      return new Promise((resolve) => {
        const check = () => (mails.length >= n ? resolve(mails) : waiters.push(check));
        check();
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A header of a raw message (unfolded), and its text body with quoted-printable undone. */
function parseMail(raw: string): { headers: Map<string, string>; body: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = raw.slice(split + 4);
  if (/quoted-printable/i.test(headers.get('content-transfer-encoding') ?? '')) {
    const bytes = body
      .replace(/=\r\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_, hex: string) => `%${hex}`)
      .replace(/%(?![0-9A-F]{2})/g, '%25');
    body = decodeURIComponent(bytes.replace(/%(?=[0-9A-F]{2})/g, '%'));
  } else if (/base64/i.test(headers.get('content-transfer-encoding') ?? '')) {
    body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  }
  return { headers, body: body.replace(/\r\n/g, '\n') };
}

async function refusal(p: Promise<unknown>): Promise<BrokerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BrokerError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describeEachStore('notifications', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;
  let receiver: Receiver;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;

  beforeEach(async () => {
    store = await fixture.open();
    // The receivers are on loopback over plain text: allowed here by the operator, as for a lab.
    b = await startTestBroker(store, {
      config: { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true },
    });
    s = await setUpScenario(b);
    receiver = await startReceiver();
    smtp = await startSmtp();
  });
  afterEach(async () => {
    await b.ctx.notifications.stop();
    await receiver.close();
    await smtp.close();
    await b.close();
    await store.close();
  });
  afterAll(() => fixture.cleanup());

  const ask = (justification = 'rotate the edge rules') =>
    s.operator.client.call<{ id: string; state: string }>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'CHG-42',
      justification,
      duration: 1800,
    });

  const slackChannel = (events = ['request.pending']) =>
    s.admin.call<{ id: string; name: string }>('POST', '/v1/notification-channels', {
      name: 'ops-slack',
      kind: 'slack',
      events,
      url: receiver.url('/services/T000/B000/slacktokenxyz'),
    });

  const emailChannel = (events = ['request.pending']) =>
    s.admin.call<{ id: string }>('POST', '/v1/notification-channels', {
      name: 'approvers-mail',
      kind: 'email',
      events,
      host: '127.0.0.1',
      port: smtp.port,
      tls: 'none',
      from: 'tether@example.com',
      to: ['approvers@example.com', 'secops@example.com'],
      username: 'tether',
      password: 'smtp-pa55word-do-not-leak',
    });

  async function skipped(reason: string): Promise<number> {
    const text = (await b.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = new RegExp(
      `^tether_notification_recipients_skipped_total\\{reason="${reason}"\\} (\\d+)`,
      'm',
    ).exec(text);
    return line ? Number(line[1]) : Number.NaN;
  }

  async function metric(name: string, kind: string): Promise<number> {
    const text = (await b.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = new RegExp(`^${name}\\{kind="${kind}"\\} (\\d+)`, 'm').exec(text);
    return line ? Number(line[1]) : Number.NaN;
  }

  it('sends a Slack-compatible webhook and an email within 2 s of a request starting to wait', async () => {
    await slackChannel();
    await emailChannel();
    b.ctx.notifications.start();
    const started = Date.now();
    const request = await ask();
    expect(request.state).toBe('pending');
    const [slack] = await receiver.waitFor(1);
    const [mail] = await smtp.waitFor(1);
    const slackMs = slack!.at - started;
    const mailMs = mail!.at - started;
    console.log(
      `[${fixture.dialect}] request created → Slack webhook received in ${slackMs} ms, email received in ${mailMs} ms`,
    );
    expect(slackMs).toBeLessThan(2000);
    expect(mailMs).toBeLessThan(2000);

    // Slack: JSON {text, blocks}, the link to the console, requester text escaped for mrkdwn.
    expect(slack!.path).toBe('/services/T000/B000/slacktokenxyz');
    expect(slack!.headers['content-type']).toBe('application/json');
    const message = JSON.parse(slack!.body) as {
      text: string;
      blocks: { type: string; text?: { text: string } }[];
    };
    expect(message.text).toContain('firewall-admin');
    expect(message.text).toContain(`${PUBLIC_URL}/console/requests/${request.id}`);
    const fields = message.blocks.map((block) => block.text?.text ?? '').join('\n');
    expect(fields).toContain('olivia');
    expect(fields).toContain('CHG-42');
    expect(fields).toContain('30 min');
    expect(message.blocks.some((block) => block.type === 'actions')).toBe(true);

    // Email: to every configured recipient, from the configured sender, authenticated with the sealed password.
    expect(mail!.to.sort()).toEqual(['approvers@example.com', 'secops@example.com']);
    expect(mail!.from).toBe('tether@example.com');
    expect(mail!.user).toBe('tether');
    expect(mail!.password).toBe('smtp-pa55word-do-not-leak');
    const parsed = parseMail(mail!.raw);
    expect(parsed.headers.get('subject')).toBe(
      '[Tether] Access request waiting for approval: firewall-admin for olivia',
    );
    expect(parsed.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(parsed.body).toContain(`Request: ${request.id}`);
    expect(parsed.body).toContain('Reason: rotate the edge rules');
    expect(parsed.body).toContain(`Approve or deny: ${PUBLIC_URL}/console/requests/${request.id}`);

    await b.ctx.notifications.idle();
    expect(await metric('tether_notifications_delivered_total', 'slack')).toBe(1);
    expect(await metric('tether_notifications_delivered_total', 'email')).toBe(1);
    const view = await s.admin.call<{ last_success_at: string | null; last_error: string | null }>(
      'GET',
      '/v1/notification-channels/ops-slack',
    );
    expect(view.last_success_at).not.toBeNull();
    expect(view.last_error).toBeNull();
  });

  it('escapes requester text for Slack mrkdwn, Teams and email, and keeps it out of the email headers', async () => {
    await slackChannel();
    await emailChannel();
    await s.admin.call('POST', '/v1/notification-channels', {
      name: 'ops-teams',
      kind: 'teams',
      events: ['request.pending'],
      url: receiver.url('/teams/webhookb2/abc'),
      format: 'message_card',
    });
    const request = await ask(HOSTILE_REASON);
    await b.ctx.notifications.runOnce();
    const slack = receiver.deliveries.find((d) => d.path.startsWith('/services/'))!;
    const teams = receiver.deliveries.find((d) => d.path.startsWith('/teams/'))!;

    const slackText = JSON.stringify(JSON.parse(slack.body));
    // No mention, link or tag survives: every < > & is an entity.
    expect(slackText).not.toContain('<!channel>');
    expect(slackText).not.toContain('<https://evil.example');
    expect(slackText).not.toContain('<script>');
    expect(slackText).toContain('&lt;!channel&gt; &lt;script&gt;alert(1)&lt;/script&gt; &amp;');

    const card = JSON.parse(teams.body) as {
      '@type': string;
      sections: { facts: { name: string; value: string }[] }[];
      potentialAction: { name: string; targets: { uri: string }[] }[];
    };
    expect(card['@type']).toBe('MessageCard');
    const reason = card.sections[0]!.facts.find((f) => f.name === 'Reason')!.value;
    expect(reason).not.toMatch(/<script>|\]\(https/);
    expect(reason).toContain('&lt;script&gt;');
    expect(reason).toContain('\\[x\\]\\(https://evil.example\\)');
    expect(card.potentialAction.map((a) => a.name)).toEqual(['Approve', 'Deny']);
    expect(card.potentialAction[0]!.targets[0]!.uri).toBe(`${PUBLIC_URL}/console/requests/${request.id}`);

    const [mail] = await smtp.waitFor(1);
    expect(mail!.to.sort()).toEqual(['approvers@example.com', 'secops@example.com']);
    const parsed = parseMail(mail!.raw);
    // The CR/LF in the reason did not start a header: no Bcc, and the reason is one line of the body.
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(mail!.raw).not.toMatch(/^Bcc:/im);
    expect(parsed.body).toContain('Reason: fix <!channel> <script>alert(1)</script> & ');
    expect(parsed.body).toMatch(/\[x\]\(https:\/\/evil\.example\) Bcc: victim@evil\.example\n/);
  });

  it('posts an Adaptive Card to Teams by default, and requester text arrives inert in Slack and Teams', async () => {
    const attack =
      'see [click](https://evil.example) or <https://evil.example|approve> <!channel> @channel {{DATE(x)}}';
    await slackChannel();
    const teams = await s.admin.call<{ teams?: { format: string } }>('POST', '/v1/notification-channels', {
      name: 'ops-teams',
      kind: 'teams',
      events: ['request.pending'],
      url: receiver.url('/teams/workflows/abc'),
    });
    expect(teams.teams).toEqual({ format: 'adaptive_card' });
    const request = await ask(attack);
    await b.ctx.notifications.runOnce();
    const link = `${PUBLIC_URL}/console/requests/${request.id}`;

    // Teams: a message with one Adaptive Card attachment, Approve/Deny opening the console.
    const teamsBody = JSON.parse(receiver.deliveries.find((d) => d.path.startsWith('/teams/'))!.body) as {
      type: string;
      attachments: {
        contentType: string;
        contentUrl: null;
        content: {
          type: string;
          version: string;
          body: { type: string; text?: string; facts?: { title: string; value: string }[] }[];
          actions: { type: string; title: string; url: string }[];
        };
      }[];
    };
    expect(teamsBody.type).toBe('message');
    expect(teamsBody.attachments).toHaveLength(1);
    const [attachment] = teamsBody.attachments;
    expect(attachment!.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(attachment!.contentUrl).toBeNull();
    expect(attachment!.content).toMatchObject({ type: 'AdaptiveCard', version: '1.4' });
    expect(attachment!.content.actions.map((a) => [a.type, a.title, a.url])).toEqual([
      ['Action.OpenUrl', 'Approve…', link],
      ['Action.OpenUrl', 'Deny…', link],
    ]);
    const facts = attachment!.content.body.flatMap((block) => block.facts ?? []);
    const reason = facts.find((f) => f.title === 'Reason')!.value;
    // No Markdown link, autolink or date function survives: `](`, `<http` and `{{` never appear.
    expect(reason).toBe(
      String.raw`see \[click\]\(https://evil.example\) or \<https://evil.example\|approve\> \<\!channel\> @channel \{\{DATE\(x\)\}\}`,
    );
    const texts = attachment!.content.body.flatMap((block) => [
      block.text ?? '',
      ...(block.facts ?? []).map((f) => f.value),
    ]);
    for (const text of texts) {
      expect(text).not.toContain('](');
      expect(text).not.toContain('{{');
      expect(text).not.toMatch(/(^|[^\\])</);
    }
    expect(facts.find((f) => f.title === 'Ticket')!.value).toBe('CHG-42');

    // Slack: no link, mention or tag; Slack's own auto-parsing of the text is off (verbatim).
    const slack = JSON.parse(receiver.deliveries.find((d) => d.path.startsWith('/services/'))!.body) as {
      text: string;
      blocks: { type: string; text?: { type: string; text: string; verbatim?: boolean } }[];
    };
    const fields = slack.blocks.map((block) => block.text?.text ?? '').join('\n');
    expect(fields).toContain(
      'see [click](https://evil.example) or &lt;https://evil.example|approve&gt; &lt;!channel&gt; @channel',
    );
    expect(JSON.stringify(slack)).not.toMatch(/<https:\/\/evil|<!channel>/);
    for (const block of slack.blocks)
      if (block.text?.type === 'mrkdwn') expect(block.text.verbatim, JSON.stringify(block)).toBe(true);
  });

  it('emails the approvers of a waiting request at their own addresses, and the requester of its decision', async () => {
    const setEmail = (name: string, email: string) =>
      s.admin.call('PATCH', `/v1/principals/${name}`, { attributes: { email } });
    await setEmail('olivia', 'olivia@example.com');
    await setEmail('approver-0', 'approver0@example.com');
    await setEmail('approver-1', 'approver1@example.com\r\nBcc: x@evil.example');
    // approver-2 has no email attribute.
    const created = await s.admin.call<{ email: { to: string[]; to_people: boolean } }>(
      'POST',
      '/v1/notification-channels',
      {
        name: 'people-mail',
        kind: 'email',
        events: ['request.pending', 'request.approved'],
        host: '127.0.0.1',
        port: smtp.port,
        tls: 'none',
        from: 'tether@example.com',
      },
    );
    expect(created.email).toMatchObject({ to: [], to_people: true });
    const request = await ask();
    await b.ctx.notifications.runOnce();
    const [waits] = await smtp.waitFor(1);
    // Olivia is in a group the privilege names, but she asked: the waiting mail never goes to her.
    expect(waits!.to).toEqual(['approver0@example.com']);
    const parsedWaits = parseMail(waits!.raw);
    expect(parsedWaits.headers.get('to')).toBe('approver0@example.com');
    expect(parsedWaits.headers.has('bcc')).toBe(false);
    expect(waits!.raw).not.toMatch(/^Bcc:/im);
    expect(waits!.raw).not.toContain('evil.example');
    expect(parsedWaits.headers.get('subject')).toContain('waiting for approval');
    expect(await skipped('no_email')).toBe(1);
    expect(await skipped('invalid_email')).toBe(1);

    await s.approvers[0]!.client.call('POST', `/v1/requests/${request.id}/approve`, { comment: 'ok' });
    await b.ctx.notifications.runOnce();
    const [, decided] = await smtp.waitFor(2);
    expect(decided!.to).toEqual(['olivia@example.com']);
    expect(parseMail(decided!.raw).headers.get('subject')).toBe(
      '[Tether] Access request approved: firewall-admin for olivia',
    );
    expect(smtp.mails).toHaveLength(2);
  });

  it('adds the fixed addresses, and gives up at once, audited, when nobody can be written to', async () => {
    await s.admin.call('PATCH', '/v1/principals/approver-0', {
      attributes: { email: 'approver0@example.com' },
    });
    await emailChannel();
    const lonely = await s.admin.call<{ id: string }>('POST', '/v1/notification-channels', {
      name: 'decisions-mail',
      kind: 'email',
      events: ['request.denied'],
      host: '127.0.0.1',
      port: smtp.port,
      tls: 'none',
      from: 'tether@example.com',
      to_people: true,
    });
    const request = await ask();
    await b.ctx.notifications.runOnce();
    const [waits] = await smtp.waitFor(1);
    expect(waits!.to.sort()).toEqual([
      'approver0@example.com',
      'approvers@example.com',
      'secops@example.com',
    ]);
    // Olivia has no email attribute: the denial has nobody to go to, and retrying cannot help.
    await s.approvers[0]!.client.call('POST', `/v1/requests/${request.id}/deny`, { comment: 'no' });
    await b.ctx.notifications.runOnce();
    const [row] = await listChannelNotifications(store, lonely.id);
    expect(row).toMatchObject({ state: 'failed', attempts: 1, lastError: 'no_recipients' });
    const audit = await s.admin.call<{
      records: { action: string; details: Record<string, unknown> }[];
    }>('GET', '/v1/audit');
    expect(audit.records.find((r) => r.action === 'notification.failed')?.details).toMatchObject({
      reason: 'no_recipients',
      skipped: { no_email: 1, invalid_email: 0, over_limit: 0 },
    });
    expect(smtp.mails).toHaveLength(1);
  });

  it('keeps channels stored before the options existed as they were: MessageCard, fixed addresses only', async () => {
    await s.admin.call('PATCH', '/v1/principals/approver-0', {
      attributes: { email: 'approver0@example.com' },
    });
    await emailChannel();
    await s.admin.call('POST', '/v1/notification-channels', {
      name: 'ops-teams',
      kind: 'teams',
      events: ['request.pending'],
      url: receiver.url('/teams/webhookb2/abc'),
    });
    // As a row written by the previous version: no `format`, no `toPeople`.
    for (const row of await store.db
      .selectFrom('notification_channels')
      .select(['id', 'settings'])
      .execute()) {
      const { format: _f, toPeople: _p, ...settings } = JSON.parse(row.settings) as Record<string, unknown>;
      await store.db
        .updateTable('notification_channels')
        .set({ settings: JSON.stringify(settings) })
        .where('id', '=', row.id)
        .execute();
    }
    const views = await s.admin.call<{
      channels: { name: string; teams?: { format: string }; email?: { to_people: boolean } }[];
    }>('GET', '/v1/notification-channels');
    expect(views.channels.find((c) => c.name === 'ops-teams')?.teams).toEqual({ format: 'message_card' });
    expect(views.channels.find((c) => c.name === 'approvers-mail')?.email?.to_people).toBe(false);
    await ask();
    await b.ctx.notifications.runOnce();
    const [mail] = await smtp.waitFor(1);
    expect(mail!.to.sort()).toEqual(['approvers@example.com', 'secops@example.com']);
    const card = JSON.parse(receiver.deliveries[0]!.body) as { '@type': string };
    expect(card['@type']).toBe('MessageCard');
  });

  it('tells of approval, denial, expiry and the end of a session, as each channel asked', async () => {
    await slackChannel(['request.approved', 'request.denied', 'request.expired', 'session.ended']);
    const approved = await ask();
    await s.approvers[0]!.client.call('POST', `/v1/requests/${approved.id}/approve`, { comment: 'ok' });
    const session = await BoundSession.activate(s.operator.client, approved.id);
    await session.end();
    const denied = await ask();
    await s.approvers[1]!.client.call('POST', `/v1/requests/${denied.id}/deny`, { comment: 'no' });
    const expiring = await ask('will expire');
    b.clock.advance(3601_000);
    await expireOverdueRequests(b.ctx);
    await b.ctx.notifications.runOnce();
    const texts = receiver.deliveries.map((d) => (JSON.parse(d.body) as { text: string }).text);
    expect(
      texts.filter((t) => t.startsWith('Access request approved') && t.includes(approved.id)),
    ).toHaveLength(1);
    expect(texts.filter((t) => t.startsWith('Access request denied') && t.includes(denied.id))).toHaveLength(
      1,
    );
    expect(
      texts.filter((t) => t.startsWith('Access request expired') && t.includes(expiring.id)),
    ).toHaveLength(1);
    expect(texts.filter((t) => t.startsWith('Session ended') && t.includes(approved.id))).toHaveLength(1);
    // No channel asked for request.pending: three requests waited, none was told.
    expect(texts.some((t) => t.startsWith('Access request waiting'))).toBe(false);
    const approvedMessage = receiver.deliveries.find((d) => d.body.includes('Access request approved'))!;
    expect(approvedMessage.body).toContain('Approved by:* approver-0');
    const endedMessage = receiver.deliveries.find((d) => d.body.includes('Session ended'))!;
    expect(endedMessage.body).toContain(session.info.id);
    expect(endedMessage.body).toContain('End reason:* completed');
  });

  it('retries a receiver that is down with backoff, and delivers exactly once after it returns', async () => {
    const channel = await slackChannel();
    await receiver.close();
    const request = await ask();
    // The request was not slowed or failed by the receiver being down.
    expect(request.state).toBe('pending');
    await b.ctx.notifications.runOnce();
    let [row] = await listChannelNotifications(store, channel.id);
    expect(row).toMatchObject({ state: 'pending', attempts: 1, lastError: 'unreachable' });
    // Backoff with jitter: the second attempt is between half and all of 1 s later.
    expect(row!.nextAttemptAt - b.clock.now()).toBeGreaterThanOrEqual(500);
    expect(row!.nextAttemptAt - b.clock.now()).toBeLessThanOrEqual(1000);

    // Not due yet: a pass tries nothing.
    await b.ctx.notifications.runOnce();
    [row] = await listChannelNotifications(store, channel.id);
    expect(row!.attempts).toBe(1);

    b.clock.advance(1000);
    await b.ctx.notifications.runOnce();
    [row] = await listChannelNotifications(store, channel.id);
    expect(row).toMatchObject({ state: 'pending', attempts: 2 });
    expect(row!.nextAttemptAt - b.clock.now()).toBeGreaterThanOrEqual(1000);
    expect(row!.nextAttemptAt - b.clock.now()).toBeLessThanOrEqual(2000);
    expect(await metric('tether_notification_failures_total', 'slack')).toBe(2);
    expect(await metric('tether_notifications_pending', 'slack')).toBe(1);
    const failing = await s.admin.call<{ last_error: string | null; last_failure_at: string | null }>(
      'GET',
      `/v1/notification-channels/${channel.id}`,
    );
    expect(failing.last_error).toBe('unreachable');
    expect(failing.last_failure_at).not.toBeNull();

    await receiver.listen();
    b.clock.advance(2000);
    await b.ctx.notifications.runOnce();
    [row] = await listChannelNotifications(store, channel.id);
    expect(row).toMatchObject({ state: 'delivered', attempts: 3 });
    expect(receiver.deliveries).toHaveLength(1);
    expect(receiver.deliveries[0]!.body).toContain(request.id);

    // Delivered is settled: later passes send nothing more.
    b.clock.advance(10 * 60_000);
    await b.ctx.notifications.runOnce();
    await b.ctx.notifications.runOnce();
    expect(receiver.deliveries).toHaveLength(1);
    expect(await metric('tether_notifications_delivered_total', 'slack')).toBe(1);
    expect(await metric('tether_notifications_pending', 'slack')).toBe(0);
  });

  it('gives up after the last attempt: marked failed, audited, counted', async () => {
    // A broker of its own, on a store of its own, that gives up after two attempts.
    await b.ctx.notifications.stop();
    await b.close();
    await store.close();
    store = await fixture.open();
    b = await startTestBroker(store, {
      config: { outboundAllowHosts: ['127.0.0.1'], outboundAllowHttp: true, notificationMaxAttempts: 2 },
    });
    s = await setUpScenario(b);
    receiver.failing = true;
    const channel = await slackChannel();
    await ask();
    await b.ctx.notifications.runOnce();
    b.clock.advance(1000);
    await b.ctx.notifications.runOnce();
    const [row] = await listChannelNotifications(store, channel.id);
    expect(row).toMatchObject({ state: 'failed', attempts: 2, lastError: 'unreachable' });
    b.clock.advance(10 * 60_000);
    await b.ctx.notifications.runOnce();
    expect(receiver.deliveries).toHaveLength(0);
    expect(await metric('tether_notifications_given_up_total', 'slack')).toBe(1);
    const audit = await s.admin.call<{
      records: { action: string; outcome: string; details: Record<string, unknown> }[];
    }>('GET', '/v1/audit');
    const failed = audit.records.filter((r) => r.action === 'notification.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      outcome: 'failure',
      details: { attempts: 2, reason: 'unreachable', kind: 'slack' },
    });
  });

  it('signs each generic webhook delivery with the secret shown once at creation', async () => {
    const created = await s.admin.call<{ id: string; signing_secret: string; target: string }>(
      'POST',
      '/v1/notification-channels',
      { name: 'siem', kind: 'webhook', events: ['request.pending'], url: receiver.url('/tether?token=abc') },
    );
    expect(created.signing_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.target).toBe(receiver.url('/tether'));
    const request = await ask();
    await b.ctx.notifications.runOnce();
    const [delivery] = receiver.deliveries;
    expect(delivery!.path).toBe('/tether?token=abc');
    // Verified as a receiver would, with node:crypto alone.
    const header = String(delivery!.headers['x-tether-signature']);
    const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
    expect(match).not.toBeNull();
    const expected = createHmac('sha256', created.signing_secret)
      .update(`${match![1]}.${delivery!.body}`)
      .digest();
    expect(timingSafeEqual(expected, Buffer.from(match![2]!, 'hex'))).toBe(true);
    expect(Number(match![1])).toBe(Math.floor(b.clock.now() / 1000));
    expect(delivery!.headers['x-tether-event']).toBe('request.pending');
    const body = JSON.parse(delivery!.body) as Record<string, unknown>;
    expect(body).toMatchObject({
      event: 'request.pending',
      id: delivery!.headers['x-tether-delivery'],
      request: {
        id: request.id,
        privilege: 'firewall-admin',
        requester: 'olivia',
        ticket: 'CHG-42',
        reason: 'rotate the edge rules',
        duration_s: 1800,
        url: `${PUBLIC_URL}/console/requests/${request.id}`,
      },
    });
  });

  it('refuses a destination on a private address unless the operator allows its host', async () => {
    for (const url of [
      'not a url',
      'https://10.0.0.1/hook',
      'https://169.254.169.254/latest/meta-data/',
      'https://localhost/hook',
      'http://hooks.example.com/services/x',
    ]) {
      const err = await refusal(
        s.admin.call('POST', '/v1/notification-channels', {
          name: 'bad',
          kind: 'slack',
          events: ['request.pending'],
          url,
        }),
      );
      expect([err.status, err.code], url).toEqual([400, 'destination_refused']);
    }
    const smtpRefused = await refusal(
      s.admin.call('POST', '/v1/notification-channels', {
        name: 'bad-mail',
        kind: 'email',
        events: ['request.pending'],
        host: '192.168.1.10',
        port: 25,
        tls: 'starttls',
        from: 'tether@example.com',
        to: ['a@example.com'],
      }),
    );
    expect([smtpRefused.status, smtpRefused.code]).toEqual([400, 'destination_refused']);
    // Clear-text SMTP to a public host: refused (plain text only where the operator allows it).
    const clear = await refusal(
      s.admin.call('POST', '/v1/notification-channels', {
        name: 'bad-mail',
        kind: 'email',
        events: ['request.pending'],
        host: 'smtp.example.com',
        port: 25,
        tls: 'none',
        from: 'tether@example.com',
        to: ['a@example.com'],
      }),
    );
    expect([clear.status, clear.code]).toEqual([400, 'destination_refused']);
    // The allowed loopback host is accepted.
    await slackChannel();
    const list = await s.admin.call<{ channels: { name: string }[] }>('GET', '/v1/notification-channels');
    expect(list.channels.map((c) => c.name)).toEqual(['ops-slack']);
  });

  it('never answers, logs or audits a channel secret', async () => {
    const created = [await slackChannel(['request.pending']), await emailChannel()];
    const webhook = await s.admin.call<{ signing_secret: string }>('POST', '/v1/notification-channels', {
      name: 'siem',
      kind: 'webhook',
      events: ['request.pending'],
      url: receiver.url('/siem'),
    });
    await ask();
    await b.ctx.notifications.runOnce();
    await smtp.waitFor(1);
    const secrets = ['smtp-pa55word-do-not-leak', webhook.signing_secret, 'slacktokenxyz'];
    const answers: string[] = [JSON.stringify(created)];
    for (const name of ['ops-slack', 'approvers-mail', 'siem'])
      answers.push(JSON.stringify(await s.admin.call('GET', `/v1/notification-channels/${name}`)));
    const list = await s.admin.call<{ channels: { name: string; target: string }[] }>(
      'GET',
      '/v1/notification-channels',
    );
    answers.push(JSON.stringify(list));
    // A Slack URL's path is its credential: only the host is shown.
    expect(list.channels.find((c) => c.name === 'ops-slack')?.target).toBe(
      `http://127.0.0.1:${receiver.port}/…`,
    );
    const audit = JSON.stringify(await store.db.selectFrom('audit_records').selectAll().execute());
    const stored = JSON.stringify(await store.db.selectFrom('notification_channels').selectAll().execute());
    for (const secret of secrets) {
      for (const answer of answers) expect(answer).not.toContain(secret);
      expect(b.logs.join('\n')).not.toContain(secret);
      expect(audit).not.toContain(secret);
      // Sealed at rest.
      expect(stored).not.toContain(secret);
    }
    expect(audit).toContain('notification_channel.created');
  });

  it('refuses bad input with a typed 400 and writes nothing', async () => {
    const bodies: Record<string, unknown>[] = [
      { name: 'x', kind: 'slack', url: receiver.url() },
      { name: 'x', kind: 'slack', events: [], url: receiver.url() },
      { name: 'x', kind: 'slack', events: ['request.created'], url: receiver.url() },
      { name: 'x', kind: 'pager', events: ['request.pending'], url: receiver.url() },
      { name: 'x', kind: 'slack', events: ['request.pending'], url: receiver.url(), secret: 'mine' },
      { name: 'X Y', kind: 'slack', events: ['request.pending'], url: receiver.url() },
      { name: 'x', kind: 'slack', events: ['request.pending'], url: `${receiver.url()}/${'a'.repeat(3000)}` },
      {
        name: 'x',
        kind: 'email',
        events: ['request.pending'],
        host: '127.0.0.1',
        port: smtp.port,
        tls: 'none',
        from: 'tether@example.com',
        to: ['a@example.com\r\nBcc: victim@evil.example'],
      },
      {
        name: 'x',
        kind: 'email',
        events: ['request.pending'],
        host: '127.0.0.1',
        port: smtp.port,
        tls: 'none',
        from: 'Tether <tether@example.com>',
        to: ['a@example.com'],
      },
      {
        name: 'x',
        kind: 'email',
        events: ['request.pending'],
        host: '127.0.0.1',
        port: smtp.port,
        tls: 'none',
        from: 'tether@example.com',
        to: Array.from({ length: 21 }, (_, i) => `user${i}@example.com`),
      },
      {
        name: 'x',
        kind: 'email',
        events: ['request.pending'],
        host: '127.0.0.1',
        port: smtp.port,
        tls: 'none',
        from: 'tether@example.com',
        to_people: false,
      },
      {
        name: 'x',
        kind: 'email',
        events: ['request.pending'],
        host: '127.0.0.1',
        port: smtp.port,
        tls: 'none',
        from: 'tether@example.com',
        to: [],
        to_people: false,
      },
      { name: 'x', kind: 'teams', events: ['request.pending'], url: receiver.url(), format: 'hero_card' },
      { name: 'x', kind: 'slack', events: ['request.pending'], url: receiver.url(), format: 'adaptive_card' },
      {
        name: 'x',
        kind: 'email',
        events: ['request.pending'],
        host: '127.0.0.1',
        port: 0,
        tls: 'none',
        from: 'tether@example.com',
        to: ['a@example.com'],
      },
      {
        name: 'x',
        kind: 'email',
        events: ['request.pending'],
        host: '127.0.0.1',
        port: smtp.port,
        tls: 'none',
        from: 'tether@example.com',
        to: ['a@example.com'],
        password: 'no-user',
      },
    ];
    for (const body of bodies) {
      const err = await refusal(s.admin.call('POST', '/v1/notification-channels', body));
      expect([err.status, err.code], JSON.stringify(body).slice(0, 120)).toEqual([400, 'invalid_request']);
    }
    // Admins only.
    const forbidden = await refusal(
      s.operator.client.call('POST', '/v1/notification-channels', {
        name: 'x',
        kind: 'slack',
        events: ['request.pending'],
        url: receiver.url(),
      }),
    );
    expect(forbidden.status).toBe(403);
    const list = await s.admin.call<{ channels: unknown[] }>('GET', '/v1/notification-channels');
    expect(list.channels).toEqual([]);
    const rows = await store.db.selectFrom('notification_channels').selectAll().execute();
    expect(rows).toEqual([]);
    const audit = await store.db
      .selectFrom('audit_records')
      .select('action')
      .where('action', 'like', 'notification%')
      .execute();
    expect(audit).toEqual([]);
  });

  it('removes a channel with its undelivered notifications', async () => {
    const channel = await slackChannel();
    receiver.failing = true;
    await ask();
    await b.ctx.notifications.runOnce();
    expect(await listChannelNotifications(store, channel.id)).toHaveLength(1);
    await s.admin.call('DELETE', '/v1/notification-channels/ops-slack');
    expect(await listChannelNotifications(store, channel.id)).toHaveLength(0);
    const missing = await refusal(s.admin.call('GET', '/v1/notification-channels/ops-slack'));
    expect([missing.status, missing.code]).toEqual([404, 'not_found']);
  });
});
