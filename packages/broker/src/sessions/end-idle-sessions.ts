import type { BrokerContext } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { idleDetails, isIdle } from '../domain/idle.js';
import { isLive } from '../domain/session.js';
import { inTransaction } from '../store/database.js';
import { listIdleSessions, lockSession } from '../store/repositories/sessions.js';

/**
 * Ends every live session that has gone idle (`idle`): nothing happened in it — no refresh, no
 * allowed decision reported by an enforcement point — for its idle timeout. Each end goes
 * through {@link endSessionIn}: refresh tokens, status-list entry, revocation event and audit
 * record (with the timeout and the last activity) change together. Returns how many ended.
 *
 * @example
 * ```ts
 * clock.advance(16 * 60_000);
 * await endIdleSessions(ctx); // 1: the session with a 15 min idle timeout
 * ```
 */
export async function endIdleSessions(ctx: BrokerContext, batch = 200): Promise<number> {
  let total = 0;
  for (;;) {
    const now = ctx.clock.now();
    const idle = await listIdleSessions(ctx.store, now, batch);
    for (const candidate of idle) {
      const done = await inTransaction(ctx.store, async (tx) => {
        const current = await lockSession(tx, candidate.id);
        // Read again under the lock: a refresh or a decision report may have just moved it.
        if (!current || !isLive(current, now) || !isIdle(current, now)) return null;
        return endSessionIn(ctx, tx, current, now, 'idle', null, idleDetails(current, 'sweep'));
      });
      if (done) total += 1;
    }
    if (idle.length < batch) return total;
  }
}
