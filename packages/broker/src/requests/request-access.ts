import type { BrokerContext, Caller } from '../core/context.js';
import { type AccessAsk, decideRequest, recordRequest } from '../core/decide-request.js';
import type { AccessRequest } from '../domain/request.js';
import { inTransaction } from '../store/database.js';

/**
 * The caller asks for a privilege. Checks, in order: the privilege exists in the tenant, the
 * ask fits its ticket and duration rules, Cedar `request` permits it; then Cedar
 * `auto_approve` may approve it at once. Otherwise it waits for reviews.
 */
export async function requestAccess(
  ctx: BrokerContext,
  caller: Caller,
  ask: AccessAsk,
): Promise<AccessRequest> {
  const decided = await decideRequest(ctx, caller, ask);
  await inTransaction(ctx.store, (tx) => recordRequest(tx, decided));
  return decided.request;
}
