import { randomUUID } from 'node:crypto';
import type { RevocationEvent } from '@tether-broker/protocol';
import { carries } from '../domain/ssf-stream.js';
import {
  SESSION_REVOKED,
  type SetKind,
  type SupportedEvent,
  TOKEN_CLAIMS_CHANGE,
  VERIFICATION,
} from '../domain/ssf-vocabulary.js';
import type { TxHandle } from '../store/database.js';
import { insertOutboxEntry } from '../store/repositories/ssf-outbox.js';
import { listOpenStreams, takeOutboxSeq } from '../store/repositories/ssf-streams.js';
import type { SessionEventFacts } from './set.js';

/** Called with the streams that got new entries, after the transaction that queued them committed. */
export type OutboxListener = (streamIds: readonly string[]) => void;

const listeners = new Set<OutboxListener>();

/**
 * Listens for committed outbox entries of this process (the delivery worker and long polls
 * wake on it). Only a hint: other replicas' entries are found by polling the table.
 */
export function onOutboxCommitted(listener: OutboxListener): () => void {
  const entry: OutboxListener = (ids) => listener(ids);
  listeners.add(entry);
  return () => listeners.delete(entry);
}

function announce(tx: TxHandle, streamIds: string[]): void {
  if (streamIds.length === 0) return;
  tx.onCommit(() => {
    for (const listener of [...listeners]) {
      try {
        listener(streamIds);
      } catch {
        // A listener's failure must not stop the others; the table is the truth anyway.
      }
    }
  });
}

/** Queues one SET on a stream; false when the stream went away or was disabled meanwhile. */
async function enqueue(
  tx: TxHandle,
  stream: { id: string; tenantId: string },
  kind: SetKind,
  facts: Record<string, unknown>,
  at: number,
): Promise<boolean> {
  const seq = await takeOutboxSeq(tx, stream.id);
  if (seq === undefined) return false;
  await insertOutboxEntry(tx, {
    streamId: stream.id,
    seq,
    tenantId: stream.tenantId,
    jti: randomUUID(),
    kind,
    facts,
    createdAt: at,
  });
  return true;
}

type LogEntry = { tenantId: string; seq: number; at: number; event: RevocationEvent };

/** The SET a revocation log entry calls for, if any, and the facts it is built from. */
function signalFor(entry: LogEntry): { kind: SupportedEvent; facts: SessionEventFacts } | undefined {
  const { event } = entry;
  const when = { at: entry.at, txn: `${entry.tenantId}.${entry.seq}` };
  switch (event.type) {
    case 'session_ended':
      return { kind: SESSION_REVOKED, facts: { sid: event.data.sid, reason: event.data.reason, ...when } };
    case 'session_narrowed':
      return { kind: TOKEN_CLAIMS_CHANGE, facts: { sid: event.data.sid, ...when } };
    default:
      return undefined;
  }
}

/**
 * Queues the CAEP SET that a revocation log entry calls for (`session_ended` →
 * `session-revoked`, `session_narrowed` → `token-claims-change`) on every stream of the tenant
 * that carries it, inside the transaction that appends the entry: the SETs exist exactly when
 * the change does. Called by `appendRevocationEvent`; other events queue nothing.
 *
 * @example
 * ```ts
 * await queueSessionSignals(tx, { tenantId, seq, at, event });
 * ```
 */
export async function queueSessionSignals(tx: TxHandle, entry: LogEntry): Promise<void> {
  const signal = signalFor(entry);
  if (signal === undefined) return;
  const queued: string[] = [];
  for (const stream of await listOpenStreams(tx, entry.tenantId)) {
    if (!carries(stream, signal.kind)) continue;
    const target = { id: stream.id, tenantId: entry.tenantId };
    if (await enqueue(tx, target, signal.kind, { ...signal.facts }, entry.at)) queued.push(stream.id);
  }
  announce(tx, queued);
}

/** Queues a verification event (SSF 1.0 §8.1.4) on one stream, echoing the receiver's `state`. */
export async function queueVerification(
  tx: TxHandle,
  stream: { id: string; tenantId: string },
  state: string | undefined,
  at: number,
): Promise<void> {
  if (await enqueue(tx, stream, VERIFICATION, state === undefined ? {} : { state }, at))
    announce(tx, [stream.id]);
}
