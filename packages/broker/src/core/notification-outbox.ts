import { newId } from '../domain/ids.js';
import type { NotificationEvent, NotificationFacts } from '../domain/notification.js';
import type { AccessRequest } from '../domain/request.js';
import type { EndReason, Session } from '../domain/session.js';
import type { TxHandle } from '../store/database.js';
import { channelsFor, insertNotification } from '../store/repositories/notifications.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { findRequest } from '../store/repositories/requests.js';

/** Told, after a transaction that queued notifications commits, that there is work. */
export type NotificationListener = () => void;

const listeners = new Set<NotificationListener>();

/**
 * Listens for notifications queued by this process (the delivery worker wakes on it). Only a
 * hint: other replicas' rows are found by polling the outbox. Returns the unsubscriber.
 */
export function onNotificationsQueued(listener: NotificationListener): () => void {
  const entry: NotificationListener = () => listener();
  listeners.add(entry);
  return () => listeners.delete(entry);
}

function announce(tx: TxHandle): void {
  tx.onCommit(() => {
    for (const listener of [...listeners]) {
      try {
        listener();
      } catch {
        // A listener's failure must not stop the others; the table is the truth anyway.
      }
    }
  });
}

/** One outbox row per channel that gets the event; nothing (one query) when none does. */
async function queue(
  tx: TxHandle,
  tenantId: string,
  event: NotificationEvent,
  at: number,
  facts: () => Promise<Omit<NotificationFacts, 'event' | 'at' | 'tenantId'> | undefined>,
): Promise<number> {
  const channels = await channelsFor(tx, tenantId, event);
  if (channels.length === 0) return 0;
  const found = await facts();
  if (found === undefined) return 0;
  for (const channelId of channels) {
    await insertNotification(tx, {
      id: newId('notification'),
      tenantId,
      channelId,
      event,
      facts: { ...found, event, at, tenantId },
      state: 'pending',
      attempts: 0,
      nextAttemptAt: at,
      leaseUntil: null,
      lastError: null,
      createdAt: at,
      doneAt: null,
    });
  }
  announce(tx);
  return channels.length;
}

async function requestFacts(tx: TxHandle, request: AccessRequest) {
  const privilege = await findPrivilege(tx, request.tenantId, request.privilegeId);
  const requester = await findPrincipal(tx, request.tenantId, request.principalId);
  return {
    requestId: request.id,
    privilege: privilege?.name ?? request.privilegeId,
    requester: requester?.name ?? request.principalId,
    ticket: request.ticket,
    reason: request.justification,
    durationSeconds: request.durationSeconds,
  };
}

/**
 * Queues the notifications of a request event (waiting, approved, denied, expired) inside the
 * transaction that records it: they exist exactly when the change does, and are delivered
 * after it commits. Costs one query when no channel of the tenant gets the event; never
 * calls out, so it cannot slow or fail the request.
 *
 * @example
 * ```ts
 * await queueRequestNotification(tx, 'request.pending', request, now);
 * ```
 */
export async function queueRequestNotification(
  tx: TxHandle,
  event: Exclude<NotificationEvent, 'session.ended'>,
  request: AccessRequest,
  at: number,
  by?: string,
): Promise<number> {
  return queue(tx, request.tenantId, event, at, async () => ({
    ...(await requestFacts(tx, request)),
    ...(by === undefined ? {} : { by }),
  }));
}

/** The request event a freshly recorded request calls for: waiting, or resolved at once by policy. */
export function eventOfRecorded(
  request: AccessRequest,
): Exclude<NotificationEvent, 'session.ended'> | undefined {
  switch (request.state) {
    case 'pending':
      return 'request.pending';
    case 'approved':
      return 'request.approved';
    case 'denied':
      return 'request.denied';
    default:
      return undefined;
  }
}

/** Queues a new request's notification (`request.pending`, or its immediate resolution). */
export async function queueRecordedRequest(tx: TxHandle, request: AccessRequest): Promise<number> {
  const event = eventOfRecorded(request);
  return event === undefined ? 0 : queueRequestNotification(tx, event, request, request.createdAt);
}

/** Queues `session.ended` inside the transaction that ends the session (whatever ended it). */
export async function queueSessionEnded(
  tx: TxHandle,
  session: Session,
  at: number,
  reason: EndReason,
): Promise<number> {
  return queue(tx, session.tenantId, 'session.ended', at, async () => {
    const request = await findRequest(tx, session.tenantId, session.requestId);
    const privilege = await findPrivilege(tx, session.tenantId, session.privilegeId);
    const holder = await findPrincipal(tx, session.tenantId, session.principalId);
    return {
      requestId: session.requestId,
      privilege: privilege?.name ?? session.privilegeId,
      requester: holder?.name ?? session.principalId,
      ticket: session.ticket,
      reason: request?.justification ?? '',
      durationSeconds:
        request?.durationSeconds ??
        Math.max(0, Math.round((session.hardExpiresAt - session.activatedAt) / 1000)),
      sessionId: session.id,
      endReason: reason,
    };
  });
}
