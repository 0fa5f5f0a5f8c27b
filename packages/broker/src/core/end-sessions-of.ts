import type { EndReason, Session } from '../domain/session.js';
import type { TxHandle } from '../store/database.js';
import { lockSession } from '../store/repositories/sessions.js';
import type { BrokerContext } from './context.js';
import { endSessionIn } from './end-session.js';

/**
 * Ends, inside the caller's transaction, every live session that selects: used when the record
 * a session stands on (its principal, its privilege) goes away, or a signal revokes them, so
 * the change and the end of what depended on it commit together. `details` go into each
 * session's audit record.
 */
export async function endLiveSessionsOf(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  tenantId: string,
  selector: { principalId?: string; privilegeId?: string },
  at: number,
  reason: EndReason,
  by: string | null,
  details: Record<string, unknown> = {},
): Promise<Session[]> {
  let query = tx.db
    .selectFrom('sessions')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('state', '=', 'active');
  if (selector.principalId) query = query.where('principal_id', '=', selector.principalId);
  if (selector.privilegeId) query = query.where('privilege_id', '=', selector.privilegeId);
  // Every session is locked before the first end writes the audit and log heads: a refresh
  // takes a session, then the heads, so taking heads before the next session could deadlock.
  const locked: Session[] = [];
  // Parents before their sub-sessions (ending a parent locks its children): by depth, then id.
  for (const { id } of await query.orderBy('delegation_depth').orderBy('id').execute()) {
    const session = await lockSession(tx, id);
    if (session) locked.push(session);
  }
  const ended: Session[] = [];
  for (const session of locked) {
    const done = await endSessionIn(ctx, tx, session, at, reason, by, details);
    if (done) ended.push(done);
  }
  return ended;
}
