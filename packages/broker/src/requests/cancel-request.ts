import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { writeExpiry } from '../core/expire-requests.js';
import { hasRole } from '../domain/principal.js';
import { type AccessRequest, cancel, expire } from '../domain/request.js';
import { inTransaction } from '../store/database.js';
import { lockRequest, updateRequestState } from '../store/repositories/requests.js';

/** The requester, or an admin, withdraws a pending request. */
export async function cancelRequest(
  ctx: BrokerContext,
  caller: Caller,
  requestId: string,
  reason: string,
): Promise<AccessRequest> {
  const tenantId = caller.tenant.id;
  const result = await inTransaction(ctx.store, async (tx): Promise<AccessRequest | 'expired'> => {
    const request = await lockRequest(tx, tenantId, requestId);
    if (!request)
      throw new TetherError('not_found', `no request ${JSON.stringify(requestId)} in this tenant`);
    if (request.principalId !== caller.principal.id && !hasRole(caller.principal, 'admin')) {
      throw new TetherError('forbidden', 'only the requester or an admin may cancel a request');
    }
    const now = ctx.clock.now();
    const expired = expire(request, now);
    if (expired) {
      await writeExpiry(tx, expired, now);
      return 'expired';
    }
    const cancelled = cancel(request, now, caller.principal.id);
    if (!(await updateRequestState(tx, cancelled, 'pending'))) {
      throw new TetherError('request_not_pending', `request ${request.id} was resolved concurrently`);
    }
    await recordAudit(tx, tenantId, now, {
      actor: caller.principal.id,
      action: 'request.cancelled',
      target: request.id,
      outcome: 'success',
      requestId: request.id,
      ticket: request.ticket,
      principalId: request.principalId,
      details: { reason },
    });
    return cancelled;
  });
  if (result === 'expired')
    throw new TetherError('request_expired', `request ${requestId} expired before it was resolved`);
  return result;
}
