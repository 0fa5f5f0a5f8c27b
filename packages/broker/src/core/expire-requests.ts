import { recordAudit } from '../audit/record.js';
import { type AccessRequest, expire } from '../domain/request.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { listOverduePending, lockRequest, updateRequestState } from '../store/repositories/requests.js';
import type { BrokerContext } from './context.js';
import { queueRequestNotification } from './notification-outbox.js';

/** Writes the `expired` transition and its audit record, unless someone resolved it first. */
export async function writeExpiry(tx: TxHandle, expired: AccessRequest, now: number): Promise<boolean> {
  if (!(await updateRequestState(tx, expired, 'pending'))) return false;
  await recordAudit(tx, expired.tenantId, now, {
    actor: 'system',
    action: 'request.expired',
    target: expired.id,
    outcome: 'success',
    requestId: expired.id,
    ticket: expired.ticket,
    principalId: expired.principalId,
    details: { expires_at: expired.expiresAt },
  });
  await queueRequestNotification(tx, 'request.expired', expired, now);
  return true;
}

/** Expires every pending request past its deadline, a bounded batch at a time. Returns how many. */
export async function expireOverdueRequests(ctx: BrokerContext, batch = 200): Promise<number> {
  let total = 0;
  for (;;) {
    const now = ctx.clock.now();
    const overdue = await listOverduePending(ctx.store, now, batch);
    for (const candidate of overdue) {
      const done = await inTransaction(ctx.store, async (tx) => {
        const current = await lockRequest(tx, candidate.tenantId, candidate.id);
        const expired = current && expire(current, now);
        return expired ? writeExpiry(tx, expired, now) : false;
      });
      if (done) total += 1;
    }
    if (overdue.length < batch) return total;
  }
}
