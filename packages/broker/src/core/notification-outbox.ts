import { newId } from '../domain/ids.js';
import type { ChannelSettings, NotificationEvent, NotificationFacts } from '../domain/notification.js';
import type { Principal } from '../domain/principal.js';
import type { AccessRequest } from '../domain/request.js';
import type { EndReason, Session } from '../domain/session.js';
import type { TxHandle } from '../store/database.js';
import { channelsFor, insertNotification, listNamedApprovers } from '../store/repositories/notifications.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { findRequest } from '../store/repositories/requests.js';

/** Recipients of one email, all told: the channel's fixed addresses first, then the people. */
export const MAX_EMAIL_RECIPIENTS = 50;

/** Named approvers read for one waiting request (past it, counted as `over_limit`). */
const APPROVER_CANDIDATES = 200;

/** Why a person concerned was not written to. */
export type RecipientSkip = 'no_email' | 'invalid_email' | 'over_limit';

/**
 * The people an email channel writes to for one event, resolved in the event's transaction:
 * the approvers who may decide a waiting request (never its requester), or the requester of a
 * decision or an ended session. Stored on the outbox row, so retries go to the same people.
 */
export interface PeopleRecipients {
  addresses: string[];
  skipped: Record<RecipientSkip, number>;
}

/** The facts of an email channel's row that writes to the people concerned. */
export type OutboxFacts = NotificationFacts & { people?: PeopleRecipients };

const MAILBOX =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * A bare address (`local@domain`, ASCII, at most 254 characters): no display name, comment,
 * list, space or CR/LF, so it can only ever be one recipient and never a header.
 */
export function isMailbox(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 254 && MAILBOX.test(value);
}

/**
 * Whether an email channel writes to the people concerned. Channels stored before the option
 * existed have no `toPeople` and keep what they were made for: their fixed addresses only.
 */
export function toPeopleOf(settings: ChannelSettings): boolean {
  return settings.kind === 'email' && (settings as { toPeople?: unknown }).toPeople === true;
}

/** The fixed addresses of an email channel (none for other kinds). */
function fixedAddressesOf(settings: ChannelSettings): readonly string[] {
  return settings.kind === 'email' ? settings.to : [];
}

/** The addresses of `people` (their `email` attribute), checked, deduplicated, at most `room`. */
export function peopleRecipients(
  people: readonly Principal[],
  room: number,
  exclude: readonly string[] = [],
): PeopleRecipients {
  const skipped: Record<RecipientSkip, number> = { no_email: 0, invalid_email: 0, over_limit: 0 };
  const seen = new Set(exclude.map((a) => a.toLowerCase()));
  const addresses: string[] = [];
  for (const person of people) {
    const email = person.attributes.email;
    if (email === undefined || email === '') skipped.no_email++;
    else if (!isMailbox(email)) skipped.invalid_email++;
    else if (seen.has(email.toLowerCase())) continue;
    else if (addresses.length >= room) skipped.over_limit++;
    else {
      seen.add(email.toLowerCase());
      addresses.push(email);
    }
  }
  return { addresses, skipped };
}

/** Whom an event concerns: the principals to write to, and the requester, never written to about a waiting request. */
interface Concerned {
  people: Principal[];
  /** Candidates past those read (a very large approver list). */
  overflow: number;
  /** Addresses never to write to (the requester's, on a waiting request). */
  exclude: string[];
}

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

/**
 * One outbox row per channel that gets the event; nothing (one query) when none does. An email
 * channel that writes to the people concerned gets their addresses on its row (read once).
 */
async function queue(
  tx: TxHandle,
  tenantId: string,
  event: NotificationEvent,
  at: number,
  facts: () => Promise<Omit<NotificationFacts, 'event' | 'at' | 'tenantId'> | undefined>,
  concerned: () => Promise<Concerned>,
): Promise<number> {
  const channels = await channelsFor(tx, tenantId, event);
  if (channels.length === 0) return 0;
  const found = await facts();
  if (found === undefined) return 0;
  let whom: Promise<Concerned> | undefined;
  for (const { id: channelId, settings } of channels) {
    const row: OutboxFacts = { ...found, event, at, tenantId };
    if (toPeopleOf(settings)) {
      whom ??= concerned();
      const { people, overflow, exclude } = await whom;
      const fixed = fixedAddressesOf(settings);
      row.people = peopleRecipients(people, Math.max(0, MAX_EMAIL_RECIPIENTS - fixed.length), [
        ...exclude,
        ...fixed,
      ]);
      row.people.skipped.over_limit += overflow;
    }
    await insertNotification(tx, {
      id: newId('notification'),
      tenantId,
      channelId,
      event,
      facts: row,
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
  return queue(
    tx,
    request.tenantId,
    event,
    at,
    async () => ({
      ...(await requestFacts(tx, request)),
      ...(by === undefined ? {} : { by }),
    }),
    () =>
      event === 'request.pending'
        ? approversOf(tx, request)
        : principalConcerned(tx, request.tenantId, request.principalId),
  );
}

/** The requester (of a decision) or holder (of an ended session). */
async function principalConcerned(tx: TxHandle, tenantId: string, principalId: string): Promise<Concerned> {
  const principal = await findPrincipal(tx, tenantId, principalId);
  return { people: principal ? [principal] : [], overflow: 0, exclude: [] };
}

/**
 * The approvers a waiting request may be decided by, as the privilege's approver list names
 * them (principals and group members, enabled), without its requester (no self-review) nor
 * the requester's address. A privilege without a list leaves approvers to Cedar alone: it names
 * nobody to write to, and only the channel's fixed addresses are written to.
 */
async function approversOf(tx: TxHandle, request: AccessRequest): Promise<Concerned> {
  const privilege = await findPrivilege(tx, request.tenantId, request.privilegeId);
  const requester = await findPrincipal(tx, request.tenantId, request.principalId);
  const exclude = isMailbox(requester?.attributes.email) ? [requester.attributes.email] : [];
  if (!privilege) return { people: [], overflow: 0, exclude };
  const named = await listNamedApprovers(
    tx,
    request.tenantId,
    privilege.approval.approvers,
    APPROVER_CANDIDATES + 1,
  );
  const people = named.filter((p) => p.id !== request.principalId);
  const overflow = Math.max(0, people.length - APPROVER_CANDIDATES);
  return { people: people.slice(0, APPROVER_CANDIDATES), overflow, exclude };
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
  const concerned = () => principalConcerned(tx, session.tenantId, session.principalId);
  return queue(
    tx,
    session.tenantId,
    'session.ended',
    at,
    async () => {
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
    },
    concerned,
  );
}
