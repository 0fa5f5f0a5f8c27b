import type {
  ChannelKind,
  ChannelSettings,
  Notification,
  NotificationChannel,
  NotificationEvent,
  NotificationFacts,
} from '../../domain/notification.js';
import type { Principal } from '../../domain/principal.js';
import type { StoreHandle, TxHandle } from '../database.js';
import type { NotificationChannelRow, NotificationOutboxRow } from '../schema.js';
import { fromJson, toJson } from './json.js';
import { toPrincipal } from './principals.js';

const num = (v: number | null): number | null => (v === null ? null : Number(v));

function toChannel(row: NotificationChannelRow): NotificationChannel {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    kind: row.kind as ChannelKind,
    events: fromJson<NotificationEvent[]>(row.events),
    settings: fromJson<ChannelSettings>(row.settings),
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    lastSuccessAt: num(row.last_success_at),
    lastFailureAt: num(row.last_failure_at),
    lastError: row.last_error,
  };
}

export async function insertChannel(
  tx: TxHandle,
  c: NotificationChannel,
  sealedSecret: string | null,
): Promise<void> {
  await tx.db
    .insertInto('notification_channels')
    .values({
      id: c.id,
      tenant_id: c.tenantId,
      name: c.name,
      kind: c.kind,
      events: toJson(c.events),
      settings: toJson(c.settings),
      sealed_secret: sealedSecret,
      created_by: c.createdBy,
      created_at: c.createdAt,
      last_success_at: c.lastSuccessAt,
      last_failure_at: c.lastFailureAt,
      last_error: c.lastError,
    })
    .execute();
}

export async function findChannel(
  h: StoreHandle,
  tenantId: string,
  ref: { id: string } | { name: string },
): Promise<NotificationChannel | undefined> {
  let query = h.db.selectFrom('notification_channels').selectAll().where('tenant_id', '=', tenantId);
  query = 'id' in ref ? query.where('id', '=', ref.id) : query.where('name', '=', ref.name);
  const row = await query.executeTakeFirst();
  return row && toChannel(row);
}

/** The channel with its sealed secret, for the runner (never for an API answer). */
export async function findChannelSecret(
  h: StoreHandle,
  id: string,
): Promise<{ channel: NotificationChannel; sealedSecret: string | null } | undefined> {
  const row = await h.db
    .selectFrom('notification_channels')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst();
  return row && { channel: toChannel(row), sealedSecret: row.sealed_secret };
}

export async function listChannels(h: StoreHandle, tenantId: string): Promise<NotificationChannel[]> {
  const rows = await h.db
    .selectFrom('notification_channels')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toChannel);
}

export async function countChannels(h: StoreHandle, tenantId: string): Promise<number> {
  const row = await h.db
    .selectFrom('notification_channels')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Removes a channel and its outbox rows (pending ones are dropped with it). True when it existed. */
export async function deleteChannel(tx: TxHandle, tenantId: string, id: string): Promise<boolean> {
  await tx.db.deleteFrom('notification_outbox').where('channel_id', '=', id).execute();
  const result = await tx.db
    .deleteFrom('notification_channels')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/** The tenant's channels that get `event`, with their (non-secret) settings: the one query every event pays. */
export async function channelsFor(
  tx: TxHandle,
  tenantId: string,
  event: NotificationEvent,
): Promise<{ id: string; settings: ChannelSettings }[]> {
  const rows = await tx.db
    .selectFrom('notification_channels')
    .select(['id', 'events', 'settings'])
    .where('tenant_id', '=', tenantId)
    .execute();
  return rows
    .filter((r) => fromJson<string[]>(r.events).includes(event))
    .map((r) => ({ id: r.id, settings: fromJson<ChannelSettings>(r.settings) }));
}

/**
 * The enabled principals a privilege's approver list names, directly or through its groups, by
 * name, at most `limit`: whom a waiting request's email may go to. Empty lists name nobody.
 */
export async function listNamedApprovers(
  h: StoreHandle,
  tenantId: string,
  approvers: { principals: readonly string[]; groups: readonly string[] },
  limit: number,
): Promise<Principal[]> {
  const { principals, groups } = approvers;
  if (principals.length === 0 && groups.length === 0) return [];
  const rows = await h.db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('enabled', '=', 1)
    .where((eb) =>
      eb.or([
        ...(principals.length === 0 ? [] : [eb('id', 'in', [...principals])]),
        ...(groups.length === 0
          ? []
          : [
              eb(
                'id',
                'in',
                eb
                  .selectFrom('group_members')
                  .select('principal_id')
                  .where('tenant_id', '=', tenantId)
                  .where('group_id', 'in', [...groups]),
              ),
            ]),
      ]),
    )
    .orderBy('name')
    .limit(limit)
    .execute();
  return rows.map(toPrincipal);
}

export async function recordChannelOutcome(
  tx: TxHandle,
  id: string,
  outcome: { ok: true; at: number } | { ok: false; at: number; error: string },
): Promise<void> {
  await tx.db
    .updateTable('notification_channels')
    .set(
      outcome.ok
        ? { last_success_at: outcome.at }
        : { last_failure_at: outcome.at, last_error: outcome.error },
    )
    .where('id', '=', id)
    .execute();
}

function toNotification(row: NotificationOutboxRow): Notification {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    channelId: row.channel_id,
    event: row.event as NotificationEvent,
    facts: fromJson<NotificationFacts>(row.facts),
    state: row.state as Notification['state'],
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.next_attempt_at),
    leaseUntil: num(row.lease_until),
    lastError: row.last_error,
    createdAt: Number(row.created_at),
    doneAt: num(row.done_at),
  };
}

export async function insertNotification(tx: TxHandle, n: Notification): Promise<void> {
  await tx.db
    .insertInto('notification_outbox')
    .values({
      id: n.id,
      tenant_id: n.tenantId,
      channel_id: n.channelId,
      event: n.event,
      facts: toJson(n.facts),
      state: n.state,
      attempts: n.attempts,
      next_attempt_at: n.nextAttemptAt,
      lease_until: n.leaseUntil,
      lease_token: null,
      last_error: n.lastError,
      created_at: n.createdAt,
      done_at: n.doneAt,
    })
    .execute();
}

/** Pending rows due now and not held by a live lease, oldest first. */
export async function listDueNotifications(
  h: StoreHandle,
  now: number,
  limit: number,
): Promise<Notification[]> {
  const rows = await h.db
    .selectFrom('notification_outbox')
    .selectAll()
    .where('state', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
  return rows.map(toNotification);
}

/** The earliest time a pending row is due, or undefined. */
export async function nextNotificationDueAt(h: StoreHandle): Promise<number | undefined> {
  const row = await h.db
    .selectFrom('notification_outbox')
    .select((eb) => eb.fn.min('next_attempt_at').as('at'))
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
}

/** Takes a row for `lease.until` under `lease.token` if no live lease holds it. True when taken. */
export async function leaseNotification(
  h: StoreHandle,
  id: string,
  now: number,
  lease: { until: number; token: string },
): Promise<boolean> {
  const result = await h.db
    .updateTable('notification_outbox')
    .set({ lease_until: lease.until, lease_token: lease.token })
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Settles a row held under `token`: delivered, failed for good, or failed once and due again
 * at `retryAt`. A runner that stalled past its lease changes nothing. True when written.
 */
export async function settleNotification(
  tx: TxHandle,
  id: string,
  token: string,
  outcome:
    | { state: 'delivered'; at: number; attempts: number }
    | { state: 'failed'; at: number; attempts: number; error: string }
    | { state: 'pending'; attempts: number; retryAt: number; error: string },
): Promise<boolean> {
  const result = await tx.db
    .updateTable('notification_outbox')
    .set(
      outcome.state === 'pending'
        ? {
            attempts: outcome.attempts,
            next_attempt_at: outcome.retryAt,
            last_error: outcome.error,
            lease_until: null,
            lease_token: null,
          }
        : {
            state: outcome.state,
            attempts: outcome.attempts,
            done_at: outcome.at,
            last_error: outcome.state === 'failed' ? outcome.error : null,
            lease_until: null,
            lease_token: null,
          },
    )
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .where('lease_token', '=', token)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Pending rows per channel kind: the metric's gauge. */
export async function countPendingByKind(h: StoreHandle): Promise<Map<string, number>> {
  const rows = await h.db
    .selectFrom('notification_outbox')
    .innerJoin('notification_channels', 'notification_channels.id', 'notification_outbox.channel_id')
    .select(['notification_channels.kind as kind', (eb) => eb.fn.countAll<number>().as('n')])
    .where('notification_outbox.state', '=', 'pending')
    .groupBy('notification_channels.kind')
    .execute();
  return new Map(rows.map((r) => [r.kind, Number(r.n)]));
}

/** Deletes settled rows done before `before`, a bounded batch at a time. */
export async function pruneNotifications(h: StoreHandle, before: number, limit: number): Promise<number> {
  const ids = await h.db
    .selectFrom('notification_outbox')
    .select('id')
    .where('state', '<>', 'pending')
    .where('done_at', '<', before)
    .limit(limit)
    .execute();
  if (ids.length === 0) return 0;
  await h.db
    .deleteFrom('notification_outbox')
    .where(
      'id',
      'in',
      ids.map((r) => r.id),
    )
    .execute();
  return ids.length;
}

/** A tenant's rows for one channel (tests and diagnostics), oldest first. */
export async function listChannelNotifications(h: StoreHandle, channelId: string): Promise<Notification[]> {
  const rows = await h.db
    .selectFrom('notification_outbox')
    .selectAll()
    .where('channel_id', '=', channelId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(toNotification);
}
