import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { createTransport } from 'nodemailer';
import { isMailbox, MAX_EMAIL_RECIPIENTS, type OutboxFacts } from '../core/notification-outbox.js';
import {
  emailSubject,
  emailText,
  type Notification,
  type NotificationChannel,
  webhookBody,
} from '../domain/notification.js';
import { type OutboundClient, Unreachable } from '../net/outbound.js';
import { slackPayload, teamsFormatOf, teamsPayload } from './messages.js';

/** Largest answer read from a receiver (Slack answers `ok`): anything past it is dropped. */
const ANSWER_LIMIT = 8 * 1024;

/** The header a generic webhook delivery is signed in: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`. */
export const NOTIFICATION_SIGNATURE_HEADER = 'x-tether-signature';

/**
 * A delivery attempt that failed. `message` is what the tenant sees on the channel and in the
 * audit trail ("unreachable", whatever happened: the admin chose the destination, and a closed
 * port, an error status or an SMTP reply must not make the broker a scanner); `reason` is for the
 * operator's log only.
 */
export class DeliveryFailed extends Error {
  override readonly name = 'DeliveryFailed';
  constructor(
    message: string,
    readonly reason: string,
    /** Retrying cannot help (nobody to write to): given up at once. */
    readonly permanent = false,
  ) {
    super(message);
  }
}

/**
 * An email's recipients: the channel's fixed addresses, then the people concerned that its row
 * carries, each checked again as a bare address (never a list or a header), deduplicated, at
 * most {@link MAX_EMAIL_RECIPIENTS}. Empty: nobody to write to, a permanent failure.
 */
export function emailRecipients(fixed: readonly string[], facts: OutboxFacts): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const address of [...fixed, ...(facts.people?.addresses ?? [])]) {
    if (!isMailbox(address) || seen.has(address.toLowerCase())) continue;
    if (out.length >= MAX_EMAIL_RECIPIENTS) break;
    seen.add(address.toLowerCase());
    out.push(address);
  }
  return out;
}

export interface SendContext {
  outbound: OutboundClient;
  publicUrl: string;
  timeoutMs: number;
  now: number;
}

/** `t=<ts>,v1=<hex HMAC-SHA256(key, "<ts>.<body>")>`: the receiver recomputes it and checks `t` is recent. */
export function signDelivery(key: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', key).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

async function post(
  ctx: SendContext,
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<void> {
  let status: number;
  try {
    const answer = await ctx.outbound.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      timeoutMs: ctx.timeoutMs,
      maxBytes: ANSWER_LIMIT,
      oversize: 'truncate',
    });
    status = answer.status;
  } catch (err) {
    throw new DeliveryFailed('unreachable', err instanceof Unreachable ? err.reason : String(err));
  }
  if (status < 200 || status > 299) throw new DeliveryFailed('unreachable', `HTTP ${status}`);
}

async function sendEmail(
  ctx: SendContext,
  channel: NotificationChannel,
  password: string | null,
  n: Notification,
): Promise<void> {
  const settings = channel.settings;
  if (settings.kind !== 'email') throw new DeliveryFailed('misconfigured', 'not an email channel');
  const to = emailRecipients(settings.to, n.facts);
  if (to.length === 0)
    throw new DeliveryFailed(
      'no_recipients',
      'none of the people concerned has a usable email attribute, and the channel has no fixed address',
      true,
    );
  // The server is resolved and checked by the outbound rules, and the connection goes to the
  // checked address (its name kept for TLS): a DNS answer that changes meanwhile cannot move it.
  let address: string;
  try {
    ({ address } = await ctx.outbound.checkedAddress(settings.host));
  } catch (err) {
    throw new DeliveryFailed('unreachable', err instanceof Unreachable ? err.reason : String(err));
  }
  const servername = isIP(settings.host) === 0 ? settings.host : undefined;
  const transport = createTransport({
    host: address,
    port: settings.port,
    secure: settings.tls === 'implicit',
    requireTLS: settings.tls === 'starttls',
    ignoreTLS: settings.tls === 'none',
    ...(servername === undefined ? {} : { servername }),
    tls: { rejectUnauthorized: true, minVersion: 'TLSv1.2', ...(servername ? { servername } : {}) },
    ...(settings.username === null ? {} : { auth: { user: settings.username, pass: password ?? '' } }),
    // What the broker says in EHLO: its public name, not the machine's host name.
    name: new URL(ctx.publicUrl).hostname,
    connectionTimeout: ctx.timeoutMs,
    greetingTimeout: ctx.timeoutMs,
    socketTimeout: ctx.timeoutMs,
    dnsTimeout: ctx.timeoutMs,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });
  try {
    await transport.sendMail({
      from: settings.from,
      to,
      subject: emailSubject(n.facts),
      text: emailText(n.facts, ctx.publicUrl),
      headers: { 'X-Tether-Event': n.event, 'X-Tether-Notification': n.id },
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  } catch (err) {
    throw new DeliveryFailed('unreachable', err instanceof Error ? err.message : String(err));
  } finally {
    transport.close();
  }
}

/**
 * Sends one notification on one channel, through the broker's guarded outbound client (HTTP)
 * or to an SMTP server checked by the same rules. Throws {@link DeliveryFailed}.
 *
 * @example
 * ```ts
 * await sendNotification({ outbound, publicUrl, timeoutMs: 10_000, now }, channel, secret, row);
 * ```
 */
export async function sendNotification(
  ctx: SendContext,
  channel: NotificationChannel,
  secret: string | null,
  n: Notification,
): Promise<void> {
  switch (channel.kind) {
    case 'slack':
      if (secret === null) throw new DeliveryFailed('misconfigured', 'no URL sealed');
      return post(ctx, secret, JSON.stringify(slackPayload(n.facts, ctx.publicUrl)));
    case 'teams':
      if (secret === null) throw new DeliveryFailed('misconfigured', 'no URL sealed');
      return post(
        ctx,
        secret,
        JSON.stringify(teamsPayload(n.facts, ctx.publicUrl, teamsFormatOf(channel.settings))),
      );
    case 'webhook': {
      const sealed = parseWebhookSecret(secret);
      const body = JSON.stringify(webhookBody(n.facts, ctx.publicUrl, n.id));
      return post(ctx, sealed.url, body, {
        [NOTIFICATION_SIGNATURE_HEADER]: signDelivery(sealed.key, body, Math.floor(ctx.now / 1000)),
        'x-tether-event': n.event,
        'x-tether-delivery': n.id,
      });
    }
    case 'email':
      return sendEmail(ctx, channel, secret, n);
  }
}

function parseWebhookSecret(secret: string | null): { url: string; key: string } {
  try {
    const value = JSON.parse(secret ?? '') as { url?: unknown; key?: unknown };
    if (typeof value.url === 'string' && typeof value.key === 'string')
      return { url: value.url, key: value.key };
  } catch {
    // reported below
  }
  throw new DeliveryFailed('misconfigured', 'the sealed webhook settings are unreadable');
}
