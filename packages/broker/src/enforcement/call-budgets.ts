import type { DecisionRecord } from '@tether-broker/protocol';
import type { BrokerContext } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { countCalls } from '../domain/delegation.js';
import type { TxHandle } from '../store/database.js';
import { lockSessions, writeSessionCalls } from '../store/repositories/sessions.js';

/**
 * Counts the allowed calls a PEP reported against the call budgets of the sub-sessions they
 * name, inside the report's transaction, and ends each sub-session whose budget is used up
 * (`budget_exhausted`), at every PEP through the revocation log. PEPs report in batches, so a
 * sub-session used at several PEPs at once may make the calls of one batch interval past its
 * budget before it ends; the count itself is exact. Any report of an authenticated PEP counts:
 * a forged one could only end a sub-session early, never keep it alive.
 *
 * Runs before the report's audit records, so session rows are locked before the audit head.
 */
export async function countBudgetedCalls(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  tenantId: string,
  pepId: string,
  decisions: readonly DecisionRecord[],
  linked: ReadonlySet<string>,
  now: number,
): Promise<void> {
  const calls = new Map<string, string[]>();
  for (const d of decisions) {
    if (!d.allow || d.session === null || !linked.has(d.session)) continue;
    calls.set(d.session, [...(calls.get(d.session) ?? []), d.action]);
  }
  if (calls.size === 0) return;
  const budgeted = await tx.db
    .selectFrom('sessions')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', [...calls.keys()])
    .where('state', '=', 'active')
    .where('call_budget', 'is not', null)
    .execute();
  if (budgeted.length === 0) return;
  for (const session of await lockSessions(
    tx,
    budgeted.map((r) => r.id),
  )) {
    if (session.state !== 'active' || session.delegation === null) continue;
    const counted = countCalls(session.delegation, calls.get(session.id) ?? []);
    await writeSessionCalls(tx, session.id, counted.callsMade);
    if (counted.exhausted.length > 0)
      await endSessionIn(ctx, tx, session, now, 'budget_exhausted', pepId, {
        exhausted: counted.exhausted,
        calls: counted.callsMade,
        budget: session.delegation.callBudget,
      });
  }
}
