import type { AuditRecord } from '../audit/chain.js';
import type { ChainVerification } from '../audit/verify.js';
import { verifyAndCheckpoint } from '../audit/verify-chain.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { resolvePrincipal } from '../core/resolve.js';
import { listAuditRecords } from '../store/repositories/audit.js';

export interface AuditQuery {
  request?: string | undefined;
  session?: string | undefined;
  ticket?: string | undefined;
  principal?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
  after?: number | undefined;
  limit?: number | undefined;
}

export async function queryAudit(ctx: BrokerContext, caller: Caller, q: AuditQuery): Promise<AuditRecord[]> {
  requireRole(caller, 'admin', 'auditor');
  const principalId = q.principal
    ? (await resolvePrincipal(ctx.store, caller.tenant.id, q.principal)).id
    : undefined;
  return listAuditRecords(ctx.store, caller.tenant.id, {
    ...(q.request ? { requestId: q.request } : {}),
    ...(q.session ? { target: q.session } : {}),
    ...(q.ticket ? { ticket: q.ticket } : {}),
    ...(principalId ? { principalId } : {}),
    ...(q.since !== undefined ? { since: q.since } : {}),
    ...(q.until !== undefined ? { until: q.until } : {}),
    ...(q.after !== undefined ? { afterSeq: q.after } : {}),
    limit: q.limit ?? 200,
  });
}

export async function verifyAudit(ctx: BrokerContext, caller: Caller): Promise<ChainVerification> {
  requireRole(caller, 'admin', 'auditor');
  return verifyAndCheckpoint(ctx.store, caller.tenant.id, ctx.clock.now());
}
