import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import type { Relationship } from '../domain/relationship.js';
import { type AccessRequest, cancel, expire } from '../domain/request.js';
import type { Session } from '../domain/session.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import {
  listLiveSessionIdsUnder,
  listOverdueRelationshipIds,
  listPendingRequestIdsUnder,
} from '../store/repositories/relationships.js';
import { lockRequest, updateRequestState } from '../store/repositories/requests.js';
import { lockSessions } from '../store/repositories/sessions.js';
import type { BrokerContext } from './context.js';
import { endSessionIn } from './end-session.js';
import { writeExpiry } from './expire-requests.js';
import { lockTrustedRelationship, storeRelationship } from './relationship-trust.js';

/** What the customer's audit records of a relationship's consequences say about it. */
const about = (r: Relationship, why: string) => ({
  reason: 'relationship_ended',
  relationship: { id: r.id, name: r.name, why },
});

/**
 * Inside the caller's transaction (which holds the relationship's row lock): every live session
 * made under the relationship ends (`relationship_ended`, through the revocation log, so every
 * PEP of the customer enforces it and receipts say when) and every pending request asked under
 * it is cancelled. With `outside`, only those the narrowed relationship no longer covers.
 * Sessions are locked, then requests, before the first end takes the audit and log heads.
 */
export async function endUnderRelationship(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  r: Relationship,
  at: number,
  by: string,
  why: string,
  outside?: { privilegeIds: string[]; seatIds: string[] },
): Promise<{ sessions: Session[]; requests: string[] }> {
  const sessions = await lockSessions(tx, await listLiveSessionIdsUnder(tx, r.id, outside));
  const requests: AccessRequest[] = [];
  for (const id of await listPendingRequestIdsUnder(tx, r.id, outside)) {
    const request = await lockRequest(tx, r.customerTenantId, id);
    if (request) requests.push(request);
  }
  const ended: Session[] = [];
  for (const session of sessions) {
    if (session.state !== 'active') continue;
    const done = await endSessionIn(ctx, tx, session, at, 'relationship_ended', by, about(r, why));
    if (done) ended.push(done);
  }
  const cancelled: string[] = [];
  for (const request of requests) {
    if (request.state !== 'pending') continue;
    const expired = expire(request, at);
    if (expired) {
      await writeExpiry(tx, expired, at);
      continue;
    }
    if (!(await updateRequestState(tx, cancel(request, at, by), 'pending'))) continue;
    cancelled.push(request.id);
    await recordAudit(tx, request.tenantId, at, {
      actor: by,
      action: 'request.cancelled',
      target: request.id,
      outcome: 'success',
      requestId: request.id,
      ticket: request.ticket,
      principalId: request.principalId,
      details: { kind: request.kind, ...about(r, why) },
    });
  }
  return { sessions: ended, requests: cancelled };
}

/** Relationships ended per sweep at most (the rest at the next). */
const SWEEP_BATCH = 100;

/**
 * The sweeper's step: every relationship (active or still only proposed) whose end has come
 * ends (`expired`), and with it everything made under it. Each in its own transaction, its row
 * locked and verified first; a tampered row is skipped (it grants nothing anyway) and logged.
 * Returns how many ended.
 */
export async function endOverdueRelationships(ctx: BrokerContext): Promise<number> {
  const now = ctx.clock.now();
  let ended = 0;
  for (const { id, customerTenantId } of await listOverdueRelationshipIds(ctx.store, now, SWEEP_BATCH)) {
    try {
      await inTransaction(ctx.store, async (tx) => {
        const r = await lockTrustedRelationship(tx, ctx.kek, customerTenantId, id);
        if (!r || r.state === 'ended' || r.endsAt > now) return;
        const over: Relationship = {
          ...r,
          state: 'ended',
          endedBy: null,
          endedAt: now,
          endReason: 'expired',
          updatedAt: now,
        };
        await storeRelationship(tx, ctx.kek, over);
        const done = await endUnderRelationship(ctx, tx, over, now, 'system', 'expired');
        for (const tenantId of [r.providerTenantId, r.customerTenantId])
          await recordAudit(tx, tenantId, now, {
            actor: 'system',
            action: 'relationship.ended',
            target: r.id,
            outcome: 'success',
            details: {
              relationship: r.name,
              state: 'ended',
              reason: 'expired',
              sessions_ended: done.sessions.length,
              requests_cancelled: done.requests.length,
            },
          });
        ended++;
      });
    } catch (err) {
      if (!(err instanceof TetherError) || err.code !== 'relationship_tampered') throw err;
      ctx.logger.error({ relationship: id }, 'a tampered relationship row was left as it is');
    }
  }
  return ended;
}
