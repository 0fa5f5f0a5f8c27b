import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { hasRole } from '../domain/principal.js';
import { type EndReason, ended, type Session } from '../domain/session.js';
import { announceOnCommit, appendRevocationEvent } from '../revocation/log.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { revokeSessionRefreshTokens } from '../store/repositories/refresh-tokens.js';
import {
  listLiveChildIds,
  listOverdueSessions,
  listSessions,
  lockSession,
  writeSessionEnd,
} from '../store/repositories/sessions.js';
import { assertSessionVisible } from './access-control.js';
import { enqueueDestroys } from './connector-jobs.js';
import type { BrokerContext, Caller } from './context.js';
import { queueSessionEnded } from './notification-outbox.js';
import { resolvePrincipal, resolvePrivilege } from './resolve.js';
import { invalidateStatusSlot } from './status-slots.js';

/**
 * Ends a session inside the caller's transaction: state, refresh tokens, status-list entry,
 * audit record and revocation event change together or not at all; the tenant's revocation
 * streams are woken once it commits. Returns the ended session, or null if it had already ended.
 */
export async function endSessionIn(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  session: Session,
  at: number,
  reason: EndReason,
  by: string | null,
  details: Record<string, unknown> = {},
): Promise<Session | null> {
  // Its sub-sessions end with it. Their rows are locked before the first write takes the
  // audit and log heads (a sub-session's refresh takes its row, then the heads), parents
  // before children, the order delegation takes them in.
  const descendants = await lockLiveDescendants(tx, session.id);
  const next = ended(session, at, reason, by);
  if (!(await writeSessionEnd(tx, next))) return null;
  await endOne(ctx, tx, session, at, reason, by, details);
  for (const child of descendants) {
    const parentEnded = ended(child, at, 'parent_ended', null);
    if (await writeSessionEnd(tx, parentEnded))
      await endOne(ctx, tx, child, at, 'parent_ended', null, {
        parent: child.delegation?.parentSessionId,
        cause: { session: session.id, reason },
      });
  }
  return next;
}

/** Every live session delegated from this one, at any depth, locked, parents first. */
export async function lockLiveDescendants(tx: TxHandle, sessionId: string): Promise<Session[]> {
  const found: Session[] = [];
  let level = [sessionId];
  // Depth is bounded by the delegation setting (at most 8); the bound here only guards a loop.
  for (let depth = 0; level.length > 0 && depth < 16; depth++) {
    const next: string[] = [];
    for (const parent of level) {
      for (const id of await listLiveChildIds(tx, parent)) {
        const child = await lockSession(tx, id);
        if (child?.state === 'active') {
          found.push(child);
          next.push(child.id);
        }
      }
    }
    level = next;
  }
  return found;
}

/** What ending one session writes besides its row: tokens, status, audit, log, downstream credentials. */
async function endOne(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  session: Session,
  at: number,
  reason: EndReason,
  by: string | null,
  details: Record<string, unknown>,
): Promise<void> {
  await revokeSessionRefreshTokens(tx, session.id);
  await invalidateStatusSlot(tx, session.statusListId, session.statusIdx, session.id);
  await recordAudit(tx, session.tenantId, at, {
    actor: by ?? 'system',
    action: 'session.ended',
    target: session.id,
    outcome: 'success',
    requestId: session.requestId,
    ticket: session.ticket,
    principalId: session.principalId,
    details: { reason, ...details },
  });
  const event = await appendRevocationEvent(tx, session.tenantId, at, {
    type: 'session_ended',
    data: { sid: session.id, reason, session_exp: Math.floor(session.hardExpiresAt / 1000) },
  });
  announceOnCommit(tx, ctx.revocations, [event]);
  // Downstream credentials die with the session, whatever ended it.
  await enqueueDestroys(ctx, tx, session, at);
  await queueSessionEnded(tx, session, at, reason);
}

/** The holder, or an admin of the tenant, ends a session. Ending an ended session is refused. */
export async function endSession(
  ctx: BrokerContext,
  caller: Caller,
  sessionId: string,
  reason: 'completed' | 'revoked',
  note: string,
): Promise<Session> {
  return inTransaction(ctx.store, async (tx) => {
    const session = await lockSession(tx, sessionId);
    assertSessionVisible(session, caller, sessionId);
    if (session.principalId !== caller.principal.id && !hasRole(caller.principal, 'admin')) {
      throw new TetherError('forbidden', 'only the holder of a session or an admin may end it');
    }
    const result = await endSessionIn(
      ctx,
      tx,
      session,
      ctx.clock.now(),
      reason,
      caller.principal.id,
      note ? { note } : {},
    );
    if (!result)
      throw new TetherError(
        'session_not_live',
        `session ${session.id} has already ended (${session.endReason})`,
      );
    return result;
  });
}

export interface RevokeSelector {
  principal?: string | undefined;
  ticket?: string | undefined;
  privilege?: string | undefined;
}

/** An admin ends every live session of a principal, a ticket or a privilege. */
export async function revokeSessions(
  ctx: BrokerContext,
  caller: Caller,
  selector: RevokeSelector,
  note: string,
): Promise<Session[]> {
  if (!hasRole(caller.principal, 'admin'))
    throw new TetherError('forbidden', 'revoking sessions needs the admin role');
  if (!selector.principal && !selector.ticket && !selector.privilege) {
    throw new TetherError('invalid_request', 'name a principal, a ticket or a privilege');
  }
  const tenantId = caller.tenant.id;
  const principalId = selector.principal
    ? (await resolvePrincipal(ctx.store, tenantId, selector.principal)).id
    : undefined;
  const privilegeId = selector.privilege
    ? (await resolvePrivilege(ctx.store, tenantId, selector.privilege)).id
    : undefined;
  const revoked: Session[] = [];
  for (;;) {
    const batch = await listSessions(ctx.store, tenantId, {
      state: 'active',
      ...(principalId ? { principalId } : {}),
      ...(privilegeId ? { privilegeId } : {}),
      ...(selector.ticket ? { ticket: selector.ticket } : {}),
      limit: 200,
    });
    if (batch.length === 0) return revoked;
    for (const candidate of batch) {
      const done = await inTransaction(ctx.store, async (tx) => {
        const current = await lockSession(tx, candidate.id);
        return current
          ? endSessionIn(ctx, tx, current, ctx.clock.now(), 'revoked', caller.principal.id, {
              selector,
              ...(note ? { note } : {}),
            })
          : null;
      });
      if (done) revoked.push(done);
    }
  }
}

/** Ends every active session whose hard expiry has passed (`expired`). Returns how many. */
export async function endExpiredSessions(ctx: BrokerContext, batch = 200): Promise<number> {
  let total = 0;
  for (;;) {
    const now = ctx.clock.now();
    const overdue = await listOverdueSessions(ctx.store, now, batch);
    for (const candidate of overdue) {
      const done = await inTransaction(ctx.store, async (tx) => {
        const current = await lockSession(tx, candidate.id);
        // `ended()` dates the end at the hard expiry itself: that is when the session stopped being valid.
        return current && current.state === 'active'
          ? endSessionIn(ctx, tx, current, now, 'expired', null)
          : null;
      });
      if (done) total += 1;
    }
    if (overdue.length < batch) return total;
  }
}
