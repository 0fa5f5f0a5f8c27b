import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Stream } from '../domain/ssf-stream.js';
import { onOutboxCommitted } from '../ssf/outbox.js';
import { buildSetClaims, signSet } from '../ssf/set.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  deleteOutboxByJti,
  listOutbox,
  type OutboxEntry,
  writeOutboxClaims,
} from '../store/repositories/ssf-outbox.js';
import { lockVisibleStream } from './access.js';

/** An RFC 8936 §2.4 poll request, as parsed. */
export interface PollRequest {
  /** How many SETs to return at most; 0 acknowledges without asking for more. */
  maxEvents?: number | undefined;
  /** False (the default) makes it a long poll: wait a while for a SET when none is waiting. */
  returnImmediately?: boolean | undefined;
  /** SETs the receiver has processed: removed for good. */
  ack?: string[] | undefined;
  /** SETs the receiver could not accept, with its RFC 8935 error: removed and recorded. */
  setErrs?: Record<string, { err: string; description?: string | undefined }> | undefined;
}

export interface PollAnswer {
  sets: Record<string, string>;
  moreAvailable: boolean;
}

export const POLL_LIMITS = {
  /** SETs returned by one poll, whatever `maxEvents` asks. */
  maxEvents: 100,
  /** How long a long poll waits for a first SET. */
  waitMs: 10_000,
  /** How often a waiting long poll looks at the table (another replica may have queued the SET). */
  recheckMs: 1_000,
} as const;

async function recordRefusals(
  tx: TxHandle,
  caller: Caller,
  stream: Stream,
  refused: OutboxEntry[],
  errors: NonNullable<PollRequest['setErrs']>,
  at: number,
): Promise<void> {
  for (const entry of refused) {
    const error = errors[entry.jti];
    await recordAudit(tx, stream.tenantId, at, {
      actor: caller.principal.id,
      action: 'ssf.delivery.refused',
      target: stream.id,
      outcome: 'refused',
      details: { jti: entry.jti, event: entry.kind, err: error?.err, description: error?.description ?? '' },
    });
  }
}

/**
 * Applies the acknowledgements, then reads the oldest waiting SETs (their claims fixed the
 * first time they are handed out). A SET stays waiting until it is acknowledged: a receiver
 * that loses an answer gets the same SETs, in the same order, from its next poll.
 */
async function acknowledgeAndRead(
  ctx: BrokerContext,
  caller: Caller,
  streamId: string,
  request: PollRequest,
  limit: number,
): Promise<{ stream: Stream; entries: OutboxEntry[]; more: boolean }> {
  return inTransaction(ctx.store, async (tx) => {
    const stream = await lockVisibleStream(tx, caller, streamId);
    if (stream.method !== 'poll')
      throw new TetherError('invalid_request', `event stream ${stream.id} delivers by push, not by poll`);
    await deleteOutboxByJti(tx, stream.id, request.ack ?? []);
    const errors = request.setErrs ?? {};
    const refused = await deleteOutboxByJti(tx, stream.id, Object.keys(errors));
    await recordRefusals(tx, caller, stream, refused, errors, ctx.clock.now());
    // SSF: a paused or disabled stream transmits nothing (a paused one keeps what it holds).
    if (limit === 0 || stream.status !== 'enabled') return { stream, entries: [], more: false };
    const waiting = await listOutbox(tx, stream.id, limit + 1);
    const entries = waiting.slice(0, limit);
    for (const entry of entries) {
      if (entry.claims !== null) continue;
      entry.claims = await buildSetClaims(tx, ctx.config.publicUrl, stream, entry);
      await writeOutboxClaims(tx, stream.id, entry.seq, entry.claims);
    }
    return { stream, entries, more: waiting.length > limit };
  });
}

/** Resolves when this process commits a SET for the stream, after `ms`, or when `signal` aborts. */
function waitForSets(streamId: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stopListening();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const stopListening = onOutboxCommitted((ids) => {
      if (ids.includes(streamId)) done();
    });
    signal?.addEventListener('abort', done, { once: true });
    if (signal?.aborted) done();
  });
}

/**
 * RFC 8936 poll delivery for a poll stream: acknowledges, reports errors, and answers up to
 * `maxEvents` SETs signed by the broker, oldest first, with `moreAvailable`. A long poll
 * (`returnImmediately` false) waits up to {@link POLL_LIMITS}.waitMs for a first SET; `signal`
 * ends the wait early (the server is closing).
 *
 * @example
 * ```ts
 * const { sets } = await pollSets(ctx, caller, streamId, { ack: lastJtis, returnImmediately: true });
 * ```
 */
export async function pollSets(
  ctx: BrokerContext,
  caller: Caller,
  streamId: string,
  request: PollRequest,
  signal?: AbortSignal,
): Promise<PollAnswer> {
  const limit = Math.min(request.maxEvents ?? POLL_LIMITS.maxEvents, POLL_LIMITS.maxEvents);
  let read = await acknowledgeAndRead(ctx, caller, streamId, request, limit);
  const deadline = performance.now() + POLL_LIMITS.waitMs;
  const longPoll = request.returnImmediately !== true && limit > 0;
  while (longPoll && read.entries.length === 0 && read.stream.status === 'enabled' && !signal?.aborted) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    await waitForSets(streamId, Math.min(left, POLL_LIMITS.recheckMs), signal);
    // The acknowledgements are applied already; later rounds only read.
    read = await acknowledgeAndRead(ctx, caller, streamId, {}, limit);
  }
  const key = ctx.keys.signer();
  const sets: Record<string, string> = {};
  for (const entry of read.entries) sets[entry.jti] = await signSet(key, entry.claims ?? {});
  return { sets, moreAvailable: read.more };
}
