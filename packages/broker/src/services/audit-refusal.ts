import type { AuditEntry } from '../audit/chain.js';
import { recordAudit } from '../audit/record.js';
import { inTransaction } from '../store/database.js';
import type { BrokerContext } from './context.js';

/**
 * Records a refused attempt in its own transaction: the attempt changed nothing, but who
 * tried what, and why it was refused, belongs in the audit trail.
 */
export async function recordRefusal(
  ctx: BrokerContext,
  tenantId: string,
  entry: Omit<AuditEntry, 'outcome'>,
): Promise<void> {
  try {
    await inTransaction(ctx.store, (tx) =>
      recordAudit(tx, tenantId, ctx.clock.now(), { ...entry, outcome: 'refused' }),
    );
  } catch (err) {
    ctx.logger.error({ err, action: entry.action }, 'could not record a refusal in the audit chain');
  }
}
