import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { StreamStatus } from '../domain/ssf-vocabulary.js';
import { queueVerification } from '../ssf/outbox.js';
import { inTransaction } from '../store/database.js';
import { clearOutbox } from '../store/repositories/ssf-outbox.js';
import { writeStreamStatus } from '../store/repositories/ssf-streams.js';
import { lockVisibleStream, visibleStream } from './access.js';

export interface StreamStatusView {
  streamId: string;
  status: StreamStatus;
  reason: string | null;
}

/** A stream's status (SSF 1.0 §8.1.2.1). */
export async function readStreamStatus(
  ctx: BrokerContext,
  caller: Caller,
  streamId: string,
): Promise<StreamStatusView> {
  const stream = await visibleStream(ctx.store, caller, streamId);
  return { streamId: stream.id, status: stream.status, reason: stream.statusReason };
}

/**
 * Sets a stream's status (SSF 1.0 §8.1.2.2). `paused`: SETs are held, in order, and sent once
 * the stream is enabled again. `disabled`: nothing is sent or held; what was waiting is dropped,
 * and the audit record says how much.
 */
export async function updateStreamStatus(
  ctx: BrokerContext,
  caller: Caller,
  input: { streamId: string; status: StreamStatus; reason?: string | undefined },
): Promise<StreamStatusView> {
  return inTransaction(ctx.store, async (tx) => {
    const stream = await lockVisibleStream(tx, caller, input.streamId);
    const reason = input.reason ?? null;
    if (stream.status === input.status && stream.statusReason === reason)
      return { streamId: stream.id, status: stream.status, reason };
    const now = ctx.clock.now();
    const dropped = input.status === 'disabled' ? await clearOutbox(tx, stream.id) : 0;
    await writeStreamStatus(tx, stream.id, input.status, reason, now);
    await recordAudit(tx, stream.tenantId, now, {
      actor: caller.principal.id,
      action: 'ssf.stream.status_changed',
      target: stream.id,
      outcome: 'success',
      principalId: stream.ownerId,
      details: { from: stream.status, to: input.status, reason, dropped },
    });
    return { streamId: stream.id, status: input.status, reason };
  });
}

/**
 * Queues a verification event on the stream (SSF 1.0 §8.1.4.2), behind the SETs already
 * waiting. A paused stream holds it like any other; a disabled one would drop it, so the
 * request is refused (`stream_disabled`) rather than answered with a promise that cannot be kept.
 */
export async function requestVerification(
  ctx: BrokerContext,
  caller: Caller,
  input: { streamId: string; state?: string | undefined },
): Promise<void> {
  await inTransaction(ctx.store, async (tx) => {
    const stream = await lockVisibleStream(tx, caller, input.streamId);
    if (stream.status === 'disabled')
      throw new TetherError('stream_disabled', `event stream ${stream.id} is disabled; enable it first`);
    await queueVerification(tx, stream, input.state, ctx.clock.now());
  });
}
