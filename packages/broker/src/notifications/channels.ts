import { randomBytes } from 'node:crypto';
import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { sealSecret } from '../config/key-encryption.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { toPeopleOf } from '../core/notification-outbox.js';
import { isIdOf, newId } from '../domain/ids.js';
import {
  type ChannelSettings,
  NOTIFICATION_LIMITS,
  type NotificationChannel,
  type NotificationEvent,
  type SmtpTls,
} from '../domain/notification.js';
import { outboundOf } from '../net/client.js';
import { inTransaction, isUniqueViolation, type StoreHandle } from '../store/database.js';
import {
  countChannels,
  deleteChannel,
  findChannel,
  insertChannel,
  listChannels,
} from '../store/repositories/notifications.js';
import { type TeamsFormat, teamsFormatOf } from './messages.js';

/** What an admin gives to create a channel (validated in shape by the route's schema). */
export type ChannelInput = { name: string; events: NotificationEvent[] } & (
  | { kind: 'slack' | 'webhook'; url: string }
  | { kind: 'teams'; url: string; format?: TeamsFormat | undefined }
  | {
      kind: 'email';
      host: string;
      port: number;
      tls: SmtpTls;
      from: string;
      /** Fixed addresses written to as well (a shared mailbox). */
      to?: string[] | undefined;
      /** Default true: the approvers of a waiting request, the requester of a decision or an ended session. */
      to_people?: boolean | undefined;
      username?: string | undefined;
      password?: string | undefined;
    }
);

/** What is stored of a Teams channel: the format it was made with (absent on older rows: `message_card`). */
type TeamsSettings = { kind: 'teams'; target: string; format: TeamsFormat };
/** What is stored of an email channel: whether it writes to the people concerned (absent on older rows: no). */
type EmailSettings = Extract<ChannelSettings, { kind: 'email' }> & { toPeople: boolean };

/** A channel just created; a webhook channel's signing secret is given here, once. */
export interface CreatedChannel {
  channel: NotificationChannel;
  signingSecret?: string;
}

/** What a channel's secret is sealed to: its row and kind, so a sealed value moved to another row no longer opens. */
export function channelSealBinding(c: Pick<NotificationChannel, 'id' | 'kind'>): Record<string, string> {
  return { notification_channel: c.id, kind: c.kind };
}

/** Scheme and host only: a Slack or Teams webhook URL's path is its credential. */
function hostOnly(url: URL): string {
  return `${url.protocol}//${url.host}/…`;
}

function assertUrl(ctx: BrokerContext, raw: string): URL {
  const refusal = outboundOf(ctx).refusalOf(raw);
  if (refusal !== undefined) throw new TetherError('destination_refused', `url ${refusal}`);
  return new URL(raw);
}

/** The SMTP server must be one the broker may connect to; clear text only where plain http would be allowed. */
function assertSmtpHost(ctx: BrokerContext, host: string, tls: SmtpTls): void {
  const outbound = outboundOf(ctx);
  const refusal = outbound.hostRefusal(host);
  if (refusal !== undefined) throw new TetherError('destination_refused', `host ${refusal}`);
  if (tls === 'none' && !(outbound.isAllowedHost(host) && ctx.config.outboundAllowHttp))
    throw new TetherError(
      'destination_refused',
      'tls "none" (clear-text SMTP) is allowed only to hosts the operator allows plain text for (outboundAllowHosts with outboundAllowHttp)',
    );
}

/** The settings shown and the secret sealed, per kind. */
function settingsOf(
  ctx: BrokerContext,
  input: ChannelInput,
): { settings: ChannelSettings; secret: string | null; signingSecret?: string } {
  switch (input.kind) {
    case 'slack':
      return {
        settings: { kind: input.kind, target: hostOnly(assertUrl(ctx, input.url)) },
        secret: input.url,
      };
    case 'teams': {
      const settings: TeamsSettings = {
        kind: 'teams',
        target: hostOnly(assertUrl(ctx, input.url)),
        format: input.format ?? 'adaptive_card',
      };
      return { settings, secret: input.url };
    }
    case 'webhook': {
      const url = assertUrl(ctx, input.url);
      const signingSecret = randomBytes(32).toString('base64url');
      return {
        settings: { kind: 'webhook', url: `${url.protocol}//${url.host}${url.pathname}` },
        // The URL is kept whole with the key (its query may carry a token of the receiver's).
        secret: JSON.stringify({ url: input.url, key: signingSecret }),
        signingSecret,
      };
    }
    case 'email': {
      assertSmtpHost(ctx, input.host, input.tls);
      if (input.password !== undefined && input.username === undefined)
        throw new TetherError('invalid_request', 'password needs a username');
      const toPeople = input.to_people ?? true;
      const to = [...new Set(input.to ?? [])];
      if (!toPeople && to.length === 0)
        throw new TetherError(
          'invalid_request',
          'an email channel needs someone to write to: to_people, fixed addresses in to, or both',
        );
      const settings: EmailSettings = {
        kind: 'email',
        host: input.host.toLowerCase(),
        port: input.port,
        tls: input.tls,
        from: input.from,
        to,
        toPeople,
        username: input.username ?? null,
      };
      return { settings, secret: input.password ?? null };
    }
  }
}

/**
 * An admin adds a notification channel. Its destination must pass the outbound rules; its
 * secret (a Slack or Teams URL, an SMTP password, a webhook's signing key, generated here) is
 * sealed under the KEK, bound to the row, and never answered again — except the signing key,
 * answered once in this call. The audit record names the channel, never a secret.
 */
export async function createChannel(
  ctx: BrokerContext,
  caller: Caller,
  input: ChannelInput,
): Promise<CreatedChannel> {
  requireRole(caller, 'admin');
  const { settings, secret, signingSecret } = settingsOf(ctx, input);
  const now = ctx.clock.now();
  const channel: NotificationChannel = {
    id: newId('notificationChannel'),
    tenantId: caller.tenant.id,
    name: input.name,
    kind: input.kind,
    events: [...new Set(input.events)],
    settings,
    createdBy: caller.principal.id,
    createdAt: now,
    lastSuccessAt: null,
    lastFailureAt: null,
    lastError: null,
  };
  const sealed = secret === null ? null : await sealSecret(ctx.kek, secret, channelSealBinding(channel));
  await inTransaction(ctx.store, async (tx) => {
    if ((await countChannels(tx, channel.tenantId)) >= NOTIFICATION_LIMITS.channelsPerTenant)
      throw new TetherError(
        'invalid_request',
        `a tenant may have at most ${NOTIFICATION_LIMITS.channelsPerTenant} notification channels`,
      );
    try {
      await insertChannel(tx, channel, sealed);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a notification channel named ${input.name} already exists`);
      throw err;
    }
    await recordAudit(tx, channel.tenantId, now, {
      actor: caller.principal.id,
      action: 'notification_channel.created',
      target: channel.id,
      outcome: 'success',
      details: { name: channel.name, kind: channel.kind, events: channel.events, ...displayed(settings) },
    });
  });
  return signingSecret === undefined ? { channel } : { channel, signingSecret };
}

/** What the audit record shows of the settings: nothing secret (the password and URLs with tokens are sealed apart). */
function displayed(settings: ChannelSettings): Record<string, unknown> {
  switch (settings.kind) {
    case 'email':
      return {
        host: settings.host,
        port: settings.port,
        tls: settings.tls,
        recipients: settings.to.length,
        to_people: toPeopleOf(settings),
      };
    case 'webhook':
      return { url: settings.url };
    case 'teams':
      return { target: settings.target, format: teamsFormatOf(settings) };
    default:
      return { target: settings.target };
  }
}

async function resolveChannel(h: StoreHandle, tenantId: string, ref: string): Promise<NotificationChannel> {
  const found = await findChannel(
    h,
    tenantId,
    isIdOf('notificationChannel', ref) ? { id: ref } : { name: ref },
  );
  if (!found)
    throw new TetherError('not_found', `no notification channel ${JSON.stringify(ref)} in this tenant`);
  return found;
}

export async function findChannels(ctx: BrokerContext, caller: Caller): Promise<NotificationChannel[]> {
  requireRole(caller, 'admin', 'auditor');
  return listChannels(ctx.store, caller.tenant.id);
}

export async function getChannel(
  ctx: BrokerContext,
  caller: Caller,
  ref: string,
): Promise<NotificationChannel> {
  requireRole(caller, 'admin', 'auditor');
  return resolveChannel(ctx.store, caller.tenant.id, ref);
}

/** An admin removes a channel: its undelivered notifications go with it. */
export async function removeChannel(ctx: BrokerContext, caller: Caller, ref: string): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const channel = await resolveChannel(tx, caller.tenant.id, ref);
    if (!(await deleteChannel(tx, caller.tenant.id, channel.id)))
      throw new TetherError('not_found', `no notification channel ${JSON.stringify(ref)} in this tenant`);
    await recordAudit(tx, channel.tenantId, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'notification_channel.deleted',
      target: channel.id,
      outcome: 'success',
      details: { name: channel.name, kind: channel.kind },
    });
  });
}
