import { readRevocationEvent } from '@tether-broker/protocol';
import type { StoreHandle } from '../store/database.js';

/**
 * The tenant-wide cut-off in force (epoch seconds: every token of the tenant issued before it is
 * refused), 0 for none. Read from the `tenant_cutoff` events still in the log, by their subject
 * (the tenant id, indexed); one compacted away refused only tokens that have since expired.
 *
 * @example
 * ```ts
 * const iat = Math.max(Math.floor(now / 1000), await readTenantCutoff(ctx.store, tenantId));
 * ```
 */
export async function readTenantCutoff(h: StoreHandle, tenantId: string): Promise<number> {
  const rows = await h.db
    .selectFrom('revocation_events')
    .select(['type', 'payload'])
    .where('tenant_id', '=', tenantId)
    .where('subject', '=', tenantId)
    .where('type', '=', 'tenant_cutoff')
    .execute();
  return rows.reduce((latest, row) => {
    const event = readRevocationEvent(row.type, JSON.parse(row.payload));
    return event?.type === 'tenant_cutoff' ? Math.max(latest, event.data.before) : latest;
  }, 0);
}
