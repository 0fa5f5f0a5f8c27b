import { randomUUID } from 'node:crypto';
import { backoffDelay } from '@tether-broker/protocol';
import type { Logger } from 'pino';
import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
import { recordAudit } from '../audit/record.js';
import { openSecret } from '../config/key-encryption.js';
import type { BrokerContext, NotificationQueue } from '../core/context.js';
import { type OutboxFacts, onNotificationsQueued, type RecipientSkip } from '../core/notification-outbox.js';
import {
  CHANNEL_KINDS,
  NOTIFICATION_LIMITS,
  type Notification,
  shouldGiveUp,
} from '../domain/notification.js';
import { outboundOf } from '../net/client.js';
import { inTransaction } from '../store/database.js';
import {
  countPendingByKind,
  findChannelSecret,
  leaseNotification,
  listDueNotifications,
  nextNotificationDueAt,
  pruneNotifications,
  recordChannelOutcome,
  settleNotification,
} from '../store/repositories/notifications.js';
import { channelSealBinding } from './channels.js';
import { DeliveryFailed, sendNotification } from './send.js';

export type NotificationWorkerContext = Pick<BrokerContext, 'store' | 'clock' | 'kek' | 'config' | 'logger'>;

/** Rows taken per look at the outbox. */
const PAGE = 100;
/** Tenants served at once (each tenant's rows one after another): one slow receiver holds one lane. */
const TENANT_LANES = 4;
/** Rows of one tenant sent in one pass before the others get their turn. */
const BURST = 25;
/** Longest sleep between looks: other replicas' rows are found by polling. */
const POLL_MS = 5_000;
/** Settled rows pruned per pass. */
const PRUNE_BATCH = 500;
const SKIP_REASONS: readonly RecipientSkip[] = ['no_email', 'invalid_email', 'over_limit'];

/**
 * Delivers notifications from the outbox after the transactions that queued them commit: each
 * row is leased (one runner at a time across replicas), sent outside any transaction, then
 * settled with the lease token. A failure is retried with backoff and jitter until the row is
 * delivered, or given up (`failed`, with an audit record in the tenant's chain) after
 * `notificationMaxAttempts` attempts or `notificationMaxAgeSeconds`. Nothing here ever reaches
 * the request that queued the row. Metrics: delivered, failed attempts, given up, pending.
 */
export class NotificationWorker implements NotificationQueue {
  readonly #ctx: NotificationWorkerContext;
  readonly #log: Logger;
  #running: Promise<void> | undefined;
  #again = false;
  #stopping = false;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  // Created unregistered: each app's registry adopts them (several brokers share a test process).
  readonly #delivered = new Counter({
    name: 'tether_notifications_delivered_total',
    help: 'Notifications delivered, by channel kind',
    labelNames: ['kind'] as const,
    registers: [],
  });
  readonly #failures = new Counter({
    name: 'tether_notification_failures_total',
    help: 'Failed notification delivery attempts, by channel kind (each is retried until given up)',
    labelNames: ['kind'] as const,
    registers: [],
  });
  readonly #givenUp = new Counter({
    name: 'tether_notifications_given_up_total',
    help: 'Notifications given up after their last retry, by channel kind',
    labelNames: ['kind'] as const,
    registers: [],
  });
  readonly #skipped = new Counter({
    name: 'tether_notification_recipients_skipped_total',
    help: 'People concerned by an email notification who were not written to, by reason (no_email, invalid_email, over_limit)',
    labelNames: ['reason'] as const,
    registers: [],
  });
  readonly #pending = new Gauge({
    name: 'tether_notifications_pending',
    help: 'Notifications waiting to be delivered (first attempt or retry), by channel kind',
    labelNames: ['kind'] as const,
    registers: [],
  });

  constructor(ctx: NotificationWorkerContext) {
    this.#ctx = ctx;
    this.#log = ctx.logger.child({ component: 'notifications' });
    for (const kind of CHANNEL_KINDS) {
      this.#delivered.inc({ kind }, 0);
      this.#failures.inc({ kind }, 0);
      this.#givenUp.inc({ kind }, 0);
      this.#pending.set({ kind }, 0);
    }
    for (const reason of SKIP_REASONS) this.#skipped.inc({ reason }, 0);
    // Rows queued by this process: delivered as soon as their transaction commits.
    // Held weakly: a broker that is dropped without being stopped (a test's) is not kept alive by it.
    const self = new WeakRef(this);
    this.#unsubscribe = onNotificationsQueued(() => self.deref()?.wake());
  }

  expose(registry: Registry): void {
    const metrics: Record<string, Metric<string>> = {
      tether_notifications_delivered_total: this.#delivered,
      tether_notification_failures_total: this.#failures,
      tether_notifications_given_up_total: this.#givenUp,
      tether_notifications_pending: this.#pending,
      tether_notification_recipients_skipped_total: this.#skipped,
    };
    for (const [name, metric] of Object.entries(metrics))
      if (!registry.getSingleMetric(name)) registry.registerMetric(metric);
  }

  /** Starts polling for other replicas' rows and ended backoffs (rows of this process wake it anyway). */
  start(): void {
    this.wake();
  }

  wake(): void {
    if (this.#stopping) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#again = false;
    clearTimeout(this.#timer);
    this.#running = this.#runDue()
      .catch((err: unknown) => this.#log.error({ err }, 'notification run failed; will retry'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) this.wake();
        else void this.#sleepUntilDue();
      });
  }

  /** One pass now (tests): resolves when every due row has been tried once. */
  async runOnce(): Promise<void> {
    await this.idle();
    this.wake();
    await this.idle();
  }

  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearTimeout(this.#timer);
    await this.idle();
  }

  async #sleepUntilDue(): Promise<void> {
    if (this.#stopping) return;
    const due = await nextNotificationDueAt(this.#ctx.store).catch(() => undefined);
    if (this.#stopping || this.#running) return;
    const delay = due === undefined ? POLL_MS : Math.min(POLL_MS, Math.max(0, due - this.#ctx.clock.now()));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.wake(), delay);
    this.#timer.unref();
  }

  async #runDue(): Promise<void> {
    for (;;) {
      if (this.#stopping) return;
      const due = await listDueNotifications(this.#ctx.store, this.#ctx.clock.now(), PAGE);
      await this.#runFairly(due);
      if (due.length < PAGE) break;
    }
    await this.#housekeep();
  }

  /** Pending gauge, and settled rows past their retention pruned (bounded). */
  async #housekeep(): Promise<void> {
    const pending = await countPendingByKind(this.#ctx.store);
    for (const kind of CHANNEL_KINDS) this.#pending.set({ kind }, pending.get(kind) ?? 0);
    await pruneNotifications(
      this.#ctx.store,
      this.#ctx.clock.now() - NOTIFICATION_LIMITS.retentionMs,
      PRUNE_BATCH,
    );
  }

  /**
   * A page of due rows, one tenant lane per slot, {@link TENANT_LANES} at once, at most
   * {@link BURST} rows of a tenant per pass: a tenant with a flood of rows, or a receiver that
   * hangs (each send capped by the outbound timeout), does not hold up the others.
   */
  async #runFairly(due: readonly Notification[]): Promise<void> {
    const lanes = new Map<string, Notification[]>();
    for (const n of due) {
      const lane = lanes.get(n.tenantId) ?? [];
      if (lane.length < BURST) lane.push(n);
      lanes.set(n.tenantId, lane);
    }
    const queue = [...lanes.values()];
    const worker = async () => {
      for (let lane = queue.shift(); lane; lane = queue.shift())
        for (const n of lane) {
          if (this.#stopping) return;
          await this.#deliver(n);
        }
    };
    await Promise.all(Array.from({ length: Math.min(TENANT_LANES, queue.length) }, worker));
  }

  async #deliver(listed: Notification): Promise<void> {
    const { store, clock, config, kek } = this.#ctx;
    const token = randomUUID();
    const now = clock.now();
    if (
      !(await leaseNotification(store, listed.id, now, { until: now + NOTIFICATION_LIMITS.leaseMs, token }))
    )
      return;
    const found = await findChannelSecret(store, listed.channelId);
    // Removed meanwhile (its rows went with it).
    if (!found) return;
    if (found.channel.tenantId !== listed.tenantId) {
      // A row pointed in SQL at another tenant's channel: never sent there.
      this.#log.error(
        { notification: listed.id },
        "a notification row names another tenant's channel; not sent",
      );
      await inTransaction(store, (tx) =>
        settleNotification(tx, listed.id, token, {
          state: 'failed',
          at: now,
          attempts: listed.attempts,
          error: 'inconsistent',
        }),
      );
      return;
    }
    const { channel, sealedSecret } = found;
    // Counted once per row, on its first attempt (its people were resolved when it was queued).
    const people = (listed.facts as OutboxFacts).people;
    if (people && listed.attempts === 0)
      for (const reason of SKIP_REASONS)
        if (people.skipped[reason] > 0) this.#skipped.inc({ reason }, people.skipped[reason]);
    try {
      const secret =
        sealedSecret === null ? null : await openSecret(kek, sealedSecret, channelSealBinding(channel));
      await sendNotification(
        {
          outbound: outboundOf(this.#ctx),
          publicUrl: config.publicUrl,
          timeoutMs: config.outboundTimeoutMs,
          now,
        },
        channel,
        secret,
        listed,
      );
    } catch (err) {
      await this.#failed(listed, channel.kind, token, err);
      return;
    }
    this.#delivered.inc({ kind: channel.kind });
    await inTransaction(store, async (tx) => {
      const at = clock.now();
      if (
        !(await settleNotification(tx, listed.id, token, {
          state: 'delivered',
          at,
          attempts: listed.attempts + 1,
        }))
      )
        return;
      await recordChannelOutcome(tx, channel.id, { ok: true, at });
    }).catch((err: unknown) =>
      this.#log.error({ err, notification: listed.id }, 'could not record a delivery'),
    );
  }

  async #failed(n: Notification, kind: string, token: string, err: unknown): Promise<void> {
    const { store, clock, config } = this.#ctx;
    const attempts = n.attempts + 1;
    const error = err instanceof DeliveryFailed ? err.message : 'delivery failed';
    const people = (n.facts as OutboxFacts).people;
    const now = clock.now();
    this.#failures.inc({ kind });
    const giveUp =
      (err instanceof DeliveryFailed && err.permanent) ||
      shouldGiveUp(attempts, now - n.createdAt, {
        maxAttempts: config.notificationMaxAttempts,
        maxAgeMs: config.notificationMaxAgeSeconds * 1000,
      });
    // The detail (an address, an SMTP reply, a status) is the operator's: the log, never the API.
    this.#log.warn(
      {
        notification: n.id,
        channel: n.channelId,
        kind,
        attempts,
        reason: err instanceof DeliveryFailed ? err.reason : undefined,
        ...(err instanceof DeliveryFailed ? {} : { err }),
      },
      giveUp ? 'notification given up' : 'notification delivery failed; will retry',
    );
    await inTransaction(store, async (tx) => {
      const settled = giveUp
        ? await settleNotification(tx, n.id, token, { state: 'failed', at: now, attempts, error })
        : await settleNotification(tx, n.id, token, {
            state: 'pending',
            attempts,
            retryAt:
              now +
              Math.ceil(
                backoffDelay(attempts, {
                  initialMs: NOTIFICATION_LIMITS.baseDelayMs,
                  maxMs: NOTIFICATION_LIMITS.maxDelayMs,
                }),
              ),
            error,
          });
      if (!settled) return;
      await recordChannelOutcome(tx, n.channelId, { ok: false, at: now, error });
      if (giveUp) {
        this.#givenUp.inc({ kind });
        await recordAudit(tx, n.tenantId, now, {
          actor: 'system',
          action: 'notification.failed',
          target: n.channelId,
          outcome: 'failure',
          requestId: n.facts.requestId,
          details: {
            notification: n.id,
            event: n.event,
            kind,
            attempts,
            reason: error,
            ...(people ? { skipped: people.skipped } : {}),
          },
        });
      }
    }).catch((writeErr: unknown) =>
      // The store itself is failing: the lease runs out and the row is taken again.
      this.#log.error({ err: writeErr, notification: n.id }, 'could not record a notification failure'),
    );
  }
}
