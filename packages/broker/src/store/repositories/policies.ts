import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import { fromJson, toJson } from './json.js';

/** One immutable version of a tenant's Cedar policy set. */
export interface PolicyVersion {
  tenantId: string;
  version: number;
  policies: Record<string, string>;
  createdBy: string;
  createdAt: number;
}

export async function currentPolicyVersion(
  h: StoreHandle,
  tenantId: string,
): Promise<PolicyVersion | undefined> {
  const row = await h.db
    .selectFrom('policy_versions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  return (
    row && {
      tenantId: row.tenant_id,
      version: row.version,
      policies: fromJson<Record<string, string>>(row.policies),
      createdBy: row.created_by,
      createdAt: row.created_at,
    }
  );
}

export async function findPolicyVersion(
  h: StoreHandle,
  tenantId: string,
  version: number,
): Promise<PolicyVersion | undefined> {
  const row = await h.db
    .selectFrom('policy_versions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('version', '=', version)
    .executeTakeFirst();
  return (
    row && {
      tenantId: row.tenant_id,
      version: row.version,
      policies: fromJson<Record<string, string>>(row.policies),
      createdBy: row.created_by,
      createdAt: row.created_at,
    }
  );
}

export async function listPolicyVersions(
  h: StoreHandle,
  tenantId: string,
): Promise<{ version: number; createdBy: string; createdAt: number; count: number }[]> {
  const rows = await h.db
    .selectFrom('policy_versions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('version', 'desc')
    .execute();
  return rows.map((r) => ({
    version: r.version,
    createdBy: r.created_by,
    createdAt: r.created_at,
    count: Object.keys(fromJson<Record<string, string>>(r.policies)).length,
  }));
}

/**
 * Appends the next version. The tenant row is locked so that two concurrent replacements
 * get consecutive versions instead of one failing on the primary key.
 */
export async function appendPolicyVersion(
  tx: TxHandle,
  tenantId: string,
  policies: Record<string, string>,
  createdBy: string,
  at: number,
): Promise<number> {
  await forUpdate(tx, tx.db.selectFrom('tenants').select('id').where('id', '=', tenantId)).execute();
  const latest = await tx.db
    .selectFrom('policy_versions')
    .select('version')
    .where('tenant_id', '=', tenantId)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  const version = (latest?.version ?? 0) + 1;
  await tx.db
    .insertInto('policy_versions')
    .values({
      tenant_id: tenantId,
      version,
      policies: toJson(policies),
      created_by: createdBy,
      created_at: at,
    })
    .execute();
  return version;
}
