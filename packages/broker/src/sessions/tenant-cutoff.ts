import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { endLiveSessionsOf } from '../core/end-sessions-of.js';
import { narrowingCutoff } from '../domain/session.js';
import { announceOnCommit, appendRevocationEvent } from '../revocation/log.js';
import { readTenantCutoff } from '../revocation/tenant-cutoff.js';
import { inTransaction } from '../store/database.js';
import { lockAuditHead } from '../store/repositories/audit.js';

export interface TenantCutoffOrder {
  /** Why, for the audit trail (1..200 characters; the route checks it). */
  reason: string;
  /** Also end every live session of the tenant (reason `tenant_cutoff`). */
  endSessions: boolean;
}

export interface TenantCutoff {
  /** The `tenant_cutoff` event's position in the tenant's revocation log. */
  seq: number;
  /** Epoch seconds: every PEP refuses the tenant's tokens issued (`iat`) before it. */
  before: number;
  /** The sessions this cut-off ended (none unless asked to). */
  endedSessions: string[];
}

/**
 * An admin revokes every token of their tenant issued until now: one `tenant_cutoff` event,
 * its audit record and, when asked, the end of every live session, in one transaction. Sessions
 * left live get tokens that pass the cut-off by refreshing; the broker dates every token it
 * issues afterwards at or past `before`.
 *
 * `before` follows the rule of a narrowing's cut-off: the second after now (a token issued
 * earlier in this second has a smaller `iat`), and past the cut-off already in force, so it
 * never moves back, even on a clock that did, and tokens issued since that one are refused too.
 *
 * @example
 * ```ts
 * const { seq, before } = await cutOffTenant(ctx, caller, { reason: 'key leak', endSessions: false });
 * ```
 */
export async function cutOffTenant(
  ctx: BrokerContext,
  caller: Caller,
  order: TenantCutoffOrder,
): Promise<TenantCutoff> {
  requireRole(caller, 'admin');
  const tenantId = caller.tenant.id;
  const by = caller.principal.id;
  return inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    // Sessions are locked before the audit and log heads, the order a refresh takes them in.
    const ended = order.endSessions
      ? await endLiveSessionsOf(ctx, tx, tenantId, {}, now, 'tenant_cutoff', by, { note: order.reason })
      : [];
    // Under the audit head's lock, concurrent cut-offs run one after the other: each reads the
    // one before it, so none answers a `before` below the cut-off in force.
    await lockAuditHead(tx, tenantId);
    const before = narrowingCutoff(now, await readTenantCutoff(tx, tenantId));
    await recordAudit(tx, tenantId, now, {
      actor: by,
      action: 'tenant.cutoff',
      target: tenantId,
      outcome: 'success',
      details: {
        reason: order.reason,
        before,
        end_sessions: order.endSessions,
        ended_sessions: ended.length,
      },
    });
    const entry = await appendRevocationEvent(tx, tenantId, now, { type: 'tenant_cutoff', data: { before } });
    announceOnCommit(tx, ctx.revocations, [entry]);
    return { seq: entry.seq, before, endedSessions: ended.map((s) => s.id) };
  });
}
