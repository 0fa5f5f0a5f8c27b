import type { BrokerContext } from '../core/context.js';
import type { ReevaluationTrigger } from '../domain/reevaluation.js';
import type { TxHandle } from '../store/database.js';
import { listSeatsOf } from '../store/repositories/principals.js';
import { enqueueReevaluation } from './jobs.js';

/**
 * A provider operator's standing in its customers' tenants comes from home: the groups a
 * relationship names, and the operator being enabled. When either changes at home, the live
 * sessions of the operator's seats are judged again in each customer tenant (continuous
 * evaluation reads the relationship's standing), in the same transaction as the change: a
 * crash cannot lose the job. Nothing is queued for a principal without seats.
 */
export async function reevaluateSeatsOf(
  ctx: Pick<BrokerContext, 'clock' | 'reevaluation'>,
  tx: TxHandle,
  homeTenantId: string,
  homePrincipalId: string,
  trigger: ReevaluationTrigger,
): Promise<void> {
  for (const seat of await listSeatsOf(tx, homeTenantId, homePrincipalId))
    await enqueueReevaluation(ctx, tx, seat.tenantId, { principalId: seat.id }, trigger);
}
