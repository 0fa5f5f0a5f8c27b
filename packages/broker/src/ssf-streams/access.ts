import { TetherError } from '@tether-broker/protocol';
import { requireRole } from '../core/access-control.js';
import type { Caller } from '../core/context.js';
import { hasRole } from '../domain/principal.js';
import type { Stream } from '../domain/ssf-stream.js';
import type { StoreHandle, TxHandle } from '../store/database.js';
import { findStream, lockStream } from '../store/repositories/ssf-streams.js';

/**
 * Who manages streams: a principal with the `receiver` role manages the streams it created;
 * an admin manages every stream of the tenant. Anyone else is refused outright.
 */
export function requireStreamManager(caller: Caller): void {
  requireRole(caller, 'admin', 'receiver');
}

/** Whether the caller may see and manage this stream (a stream of another tenant does not exist for it). */
export function mayManage(caller: Caller, stream: Stream): boolean {
  return (
    stream.tenantId === caller.tenant.id &&
    (hasRole(caller.principal, 'admin') || stream.ownerId === caller.principal.id)
  );
}

function notFound(streamId: string): TetherError {
  return new TetherError('not_found', `no event stream ${JSON.stringify(streamId)} for this receiver`);
}

/** The caller's stream, or `not_found` (also for another receiver's or another tenant's stream: no probing). */
export async function visibleStream(h: StoreHandle, caller: Caller, streamId: string): Promise<Stream> {
  requireStreamManager(caller);
  const stream = await findStream(h, caller.tenant.id, streamId);
  if (!stream || !mayManage(caller, stream)) throw notFound(streamId);
  return stream;
}

/** As {@link visibleStream}, with the stream row locked until the transaction ends. */
export async function lockVisibleStream(tx: TxHandle, caller: Caller, streamId: string): Promise<Stream> {
  requireStreamManager(caller);
  const stream = await lockStream(tx, caller.tenant.id, streamId);
  if (!stream || !mayManage(caller, stream)) throw notFound(streamId);
  return stream;
}
