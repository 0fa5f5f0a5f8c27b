import type { AuditEntry } from '../audit/chain.js';
import { recordAuditBatch } from '../audit/record.js';
import type { BrokerContext } from '../core/context.js';
import { endSessionIn, lockLiveDescendants } from '../core/end-session.js';
import type { Verdict } from '../domain/reevaluation.js';
import {
  grantWithin,
  isEmptyGrant,
  isNarrower,
  narrowed,
  type Session,
  type SessionGrant,
} from '../domain/session.js';
import { announceOnCommit, appendRevocationEvents } from '../revocation/log.js';
import type { TxHandle } from '../store/database.js';
import { writeSessionNarrowings } from '../store/repositories/sessions.js';

/** One live session to narrow: the grant it keeps and what its audit record says about why. */
export interface Narrowing {
  session: Session;
  grant: SessionGrant;
  details: Record<string, unknown>;
}

const removed = (before: string[], after: string[]) => before.filter((x) => !after.includes(x));

function narrowedRecord(n: Narrowing, next: Session): AuditEntry {
  return {
    actor: 'system',
    action: 'session.narrowed',
    target: n.session.id,
    outcome: 'success',
    requestId: n.session.requestId,
    ticket: n.session.ticket,
    principalId: n.session.principalId,
    details: {
      ...n.details,
      before: next.narrowedBefore,
      removed: {
        actions: removed(n.session.grant.actions, n.grant.actions),
        resources: removed(n.session.grant.resources, n.grant.resources),
        audiences: removed(n.session.grant.audiences, n.grant.audiences),
      },
      kept: { actions: n.grant.actions, resources: n.grant.resources, audiences: n.grant.audiences },
    },
  };
}

/**
 * Narrows live sessions of one tenant inside the caller's transaction, which holds their row
 * locks and knows them active: the smaller grants, the cutoff under which PEPs refuse their
 * earlier tokens (a `session_narrowed` event each in the revocation log), and an audit record
 * each, together or not at all. Later tokens of a session carry the smaller grant and an `iat`
 * at or past its cutoff. Answers the narrowed sessions.
 */
export async function narrowSessionsIn(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  tenantId: string,
  asked: readonly Narrowing[],
  at: number,
): Promise<Session[]> {
  let narrowings = asked;
  if (narrowings.length === 0) return [];
  const cascade = await narrowDescendants(tx, narrowings);
  narrowings = [...narrowings, ...cascade.narrowings];
  const next = narrowings.map((n) => narrowed(n.session, n.grant, at));
  await writeSessionNarrowings(tx, next);
  await recordAuditBatch(
    tx,
    tenantId,
    at,
    narrowings.map((n, i) => narrowedRecord(n, next[i] as Session)),
  );
  const entries = await appendRevocationEvents(
    tx,
    tenantId,
    at,
    next.map((s) => ({
      type: 'session_narrowed' as const,
      data: { sid: s.id, before: s.narrowedBefore ?? 0, session_exp: Math.floor(s.hardExpiresAt / 1000) },
    })),
  );
  announceOnCommit(tx, ctx.revocations, entries);
  for (const { session, parent } of cascade.emptied)
    await endSessionIn(ctx, tx, session, at, 'parent_ended', null, {
      parent,
      why: 'the parent session no longer holds any of what the sub-session holds',
    });
  return next;
}

/**
 * A narrowed session's sub-sessions keep only what it still holds, at once (not at their next
 * evaluation): each descendant, locked before anything is written, is narrowed to within its
 * parent's new grant, or ended (`parent_ended`) when nothing is left.
 */
async function narrowDescendants(
  tx: TxHandle,
  narrowings: readonly Narrowing[],
): Promise<{ narrowings: Narrowing[]; emptied: { session: Session; parent: string }[] }> {
  const out: Narrowing[] = [];
  const emptied: { session: Session; parent: string }[] = [];
  for (const n of narrowings) {
    const grants = new Map<string, SessionGrant | null>([[n.session.id, n.grant]]);
    for (const child of await lockLiveDescendants(tx, n.session.id)) {
      const parentId = child.delegation?.parentSessionId ?? '';
      const parentGrant = grants.get(parentId);
      const grant = parentGrant ? grantWithin(child.grant, parentGrant) : null;
      if (grant === null || isEmptyGrant(grant)) {
        grants.set(child.id, null);
        emptied.push({ session: child, parent: parentId });
      } else {
        grants.set(child.id, grant);
        if (isNarrower(grant, child.grant))
          out.push({ session: child, grant, details: { ...n.details, parent: parentId } });
      }
    }
  }
  return { narrowings: out, emptied };
}

/** One session, as {@link narrowSessionsIn} does it (a refresh narrows the session it holds). */
export async function narrowSessionIn(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  session: Session,
  grant: SessionGrant,
  at: number,
  details: Record<string, unknown>,
): Promise<Session> {
  const [next] = await narrowSessionsIn(ctx, tx, session.tenantId, [{ session, grant, details }], at);
  return next as Session;
}

/** What a verdict's narrowing or end records besides the reason: the why, the policies, the trigger. */
export function verdictDetails(
  verdict: Exclude<Verdict, { outcome: 'keep' }>,
  details: Record<string, unknown>,
): Record<string, unknown> {
  return { why: verdict.why, policies: verdict.policies, ...details };
}

/**
 * Ends a session whose verdict says so, inside the caller's transaction (endSessionIn records
 * the reason itself). Answers the ended session, or null if it had already ended.
 */
export function endByVerdict(
  ctx: Pick<BrokerContext, 'revocations' | 'connectors'>,
  tx: TxHandle,
  session: Session,
  verdict: Extract<Verdict, { outcome: 'end' }>,
  at: number,
  details: Record<string, unknown>,
): Promise<Session | null> {
  return endSessionIn(ctx, tx, session, at, verdict.reason, null, verdictDetails(verdict, details));
}
