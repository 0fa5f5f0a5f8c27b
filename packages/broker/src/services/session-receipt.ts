import type { EndReason } from '../domain/session.js';
import { findSessionEndSeq, listPepEnforcement } from '../store/repositories/peps.js';
import type { BrokerContext, Caller } from './context.js';
import { getSession } from './query-sessions.js';

/** One PEP in a receipt. */
export interface PepReceiptEntry {
  principalId: string;
  name: string;
  appliedSeq: number;
  lastSeenAt: number;
  live: boolean;
  /** When its first ack covering the end arrived; null if not yet (or that ack was pruned). */
  enforcedAt: number | null;
}

/** When a session ended, and which enforcement points have applied the end. */
export interface SessionReceipt {
  sessionId: string;
  state: 'active' | 'ended';
  endedAt: number | null;
  reason: EndReason | null;
  /** The position of the session's `session_ended` event in the tenant's revocation log. */
  seq: number | null;
  enforced: boolean;
  peps: PepReceiptEntry[];
  /** Names of the live PEPs that have not applied the end. */
  pending: string[];
}

/**
 * The receipt of a session, for its holder, admins and auditors (anyone else, and every other
 * tenant, gets `not_found`, as for the session itself).
 *
 * The end is enforced once every live PEP has applied the `session_ended` event. A PEP is live
 * when heard from within `pepLivenessSeconds`; one silent for longer is past its staleness
 * budget (which must be shorter), so it denies every request and needs no waiting for. An
 * active session has nothing to enforce yet: not enforced, nothing pending.
 */
export async function sessionReceipt(
  ctx: BrokerContext,
  caller: Caller,
  sessionId: string,
): Promise<SessionReceipt> {
  const session = await getSession(ctx, caller, sessionId);
  const tenantId = caller.tenant.id;
  const seq = session.state === 'ended' ? await findSessionEndSeq(ctx.store, tenantId, session.id) : null;
  const now = ctx.clock.now();
  const livenessMs = ctx.config.pepLivenessSeconds * 1000;
  const peps = (await listPepEnforcement(ctx.store, tenantId, seq)).map((p) => ({
    principalId: p.principalId,
    name: p.name,
    appliedSeq: p.lastAppliedSeq,
    lastSeenAt: p.lastSeenAt,
    live: now - p.lastSeenAt <= livenessMs,
    enforcedAt: p.enforcedAt,
  }));
  // Without an event (a session that ended before the log existed) there is nothing to apply.
  const pending = seq === null ? [] : peps.filter((p) => p.live && p.appliedSeq < seq).map((p) => p.name);
  return {
    sessionId: session.id,
    state: session.state,
    endedAt: session.endedAt,
    reason: session.endReason,
    seq,
    enforced: seq !== null && pending.length === 0,
    peps,
    pending,
  };
}
