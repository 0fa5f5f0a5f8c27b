import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { AuditRecord } from '../domain/audit-record.js';
import { listAuditRecordsOfPrincipals } from '../store/repositories/audit.js';
import { listSeatIdsOf } from '../store/repositories/relationships.js';
import { customerOf, requireProviderTenant } from './customers.js';

/** The most records one page answers. */
export const ACTIVITY_PAGE_LIMIT = 1000;

/**
 * What the provider's operators did in one of its customers: the customer's own audit records
 * by or about their seats (requests, approvals of them, sessions, decisions' ends), read from
 * the customer's chain as it is, so the provider sees exactly what the customer sees of them and
 * nothing else of the customer. Admins and auditors of the provider.
 */
export async function operatorActivity(
  ctx: BrokerContext,
  caller: Caller,
  customerName: string,
  page: { after?: number | undefined; limit?: number | undefined },
): Promise<AuditRecord[]> {
  requireRole(caller, 'admin', 'auditor');
  requireProviderTenant(caller);
  const customer = await customerOf(ctx, caller.tenant.id, customerName);
  const seats = await listSeatIdsOf(ctx.store, customer.id, caller.tenant.id);
  return listAuditRecordsOfPrincipals(
    ctx.store,
    customer.id,
    seats,
    page.after ?? 0,
    Math.min(page.limit ?? ACTIVITY_PAGE_LIMIT, ACTIVITY_PAGE_LIMIT),
  );
}
