import type {
  Relationship,
  RelationshipApproval,
  RelationshipEndReason,
  RelationshipState,
} from '../../domain/relationship.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { RelationshipRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

/**
 * A relationship as stored, with its seal: not yet trusted. `core/relationship-trust.ts` opens
 * the seal and refuses a row a database writer forged or widened; only then is it used.
 */
export interface StoredRelationship {
  relationship: Relationship;
  seal: string;
}

function toStored(row: RelationshipRow): StoredRelationship {
  return {
    relationship: {
      id: row.id,
      providerTenantId: row.provider_tenant_id,
      customerTenantId: row.customer_tenant_id,
      name: row.name,
      state: row.state as RelationshipState,
      providerGroupIds: fromJson<string[]>(row.provider_groups),
      privilegeIds: fromJson<string[]>(row.privileges),
      approval: fromJson<RelationshipApproval>(row.approval),
      startsAt: row.starts_at === null ? null : Number(row.starts_at),
      endsAt: Number(row.ends_at),
      proposedBy: row.proposed_by,
      proposedAt: Number(row.proposed_at),
      acceptedBy: row.accepted_by,
      acceptedAt: row.accepted_at === null ? null : Number(row.accepted_at),
      endedBy: row.ended_by,
      endedAt: row.ended_at === null ? null : Number(row.ended_at),
      endReason: row.end_reason as RelationshipEndReason | null,
      updatedAt: Number(row.updated_at),
    },
    seal: row.seal,
  };
}

function toRow(r: Relationship, seal: string): RelationshipRow {
  return {
    id: r.id,
    provider_tenant_id: r.providerTenantId,
    customer_tenant_id: r.customerTenantId,
    name: r.name,
    state: r.state,
    provider_groups: toJson(r.providerGroupIds),
    privileges: toJson(r.privilegeIds),
    approval: toJson(r.approval),
    starts_at: r.startsAt,
    ends_at: r.endsAt,
    proposed_by: r.proposedBy,
    proposed_at: r.proposedAt,
    accepted_by: r.acceptedBy,
    accepted_at: r.acceptedAt,
    ended_by: r.endedBy,
    ended_at: r.endedAt,
    end_reason: r.endReason,
    updated_at: r.updatedAt,
    seal,
  };
}

export async function insertRelationship(h: StoreHandle, r: Relationship, seal: string): Promise<void> {
  await h.db.insertInto('relationships').values(toRow(r, seal)).execute();
}

/** Writes a changed relationship whose row the caller holds locked. */
export async function updateRelationship(tx: TxHandle, r: Relationship, seal: string): Promise<void> {
  const { id, provider_tenant_id, customer_tenant_id, ...changes } = toRow(r, seal);
  await tx.db.updateTable('relationships').set(changes).where('id', '=', id).execute();
}

/** A relationship the tenant is a party to (either side), or undefined. */
export async function findRelationship(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<StoredRelationship | undefined> {
  const row = await h.db
    .selectFrom('relationships')
    .selectAll()
    .where('id', '=', id)
    .where((eb) => eb.or([eb('provider_tenant_id', '=', tenantId), eb('customer_tenant_id', '=', tenantId)]))
    .executeTakeFirst();
  return row && toStored(row);
}

/** Locks and reads a relationship the tenant is a party to. */
export async function lockRelationship(
  tx: TxHandle,
  tenantId: string,
  id: string,
): Promise<StoredRelationship | undefined> {
  const row = await forUpdate(
    tx,
    tx.db
      .selectFrom('relationships')
      .selectAll()
      .where('id', '=', id)
      .where((eb) =>
        eb.or([eb('provider_tenant_id', '=', tenantId), eb('customer_tenant_id', '=', tenantId)]),
      ),
  ).executeTakeFirst();
  return row && toStored(row);
}

/** The relationships a tenant is a party to, newest first; optionally with one counterpart. */
export async function listRelationshipsOf(
  h: StoreHandle,
  tenantId: string,
  filter: { state?: RelationshipState; counterpart?: string } = {},
): Promise<StoredRelationship[]> {
  let query = h.db
    .selectFrom('relationships')
    .selectAll()
    .where((eb) => eb.or([eb('provider_tenant_id', '=', tenantId), eb('customer_tenant_id', '=', tenantId)]));
  if (filter.state) query = query.where('state', '=', filter.state);
  if (filter.counterpart) {
    const other = filter.counterpart;
    query = query.where((eb) =>
      eb.or([eb('provider_tenant_id', '=', other), eb('customer_tenant_id', '=', other)]),
    );
  }
  const rows = await query.orderBy('proposed_at', 'desc').orderBy('id').limit(500).execute();
  return rows.map(toStored);
}

/** Ids of relationships still `active` whose end has come: the sweeper ends them. */
export async function listOverdueRelationshipIds(
  h: StoreHandle,
  now: number,
  limit: number,
): Promise<{ id: string; customerTenantId: string }[]> {
  const rows = await h.db
    .selectFrom('relationships')
    .select(['id', 'customer_tenant_id'])
    .where('state', 'in', ['active', 'proposed'])
    .where('ends_at', '<=', now)
    .orderBy('ends_at')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, customerTenantId: r.customer_tenant_id }));
}

/**
 * Live sessions made under the relationship (their sub-sessions end with them), optionally
 * only those `outside` says are no longer covered: by privilege, or by the seat whose home
 * principal left every named group. Parents before sub-sessions.
 */
export async function listLiveSessionIdsUnder(
  h: StoreHandle,
  relationshipId: string,
  outside?: { privilegeIds: string[]; seatIds: string[] },
): Promise<string[]> {
  let query = h.db
    .selectFrom('sessions')
    .select('id')
    .where('relationship_id', '=', relationshipId)
    .where('state', '=', 'active');
  if (outside) {
    const { privilegeIds, seatIds } = outside;
    // A relationship keeps at least one privilege, so `privilegeIds` is never empty.
    query = query.where((eb) =>
      seatIds.length > 0
        ? eb.or([eb('privilege_id', 'not in', privilegeIds), eb('principal_id', 'in', seatIds)])
        : eb('privilege_id', 'not in', privilegeIds),
    );
  }
  const rows = await query.orderBy('delegation_depth').orderBy('id').execute();
  return rows.map((r) => r.id);
}

/** Pending requests asked under the relationship (optionally only those `outside` names). */
export async function listPendingRequestIdsUnder(
  h: StoreHandle,
  relationshipId: string,
  outside?: { privilegeIds: string[]; seatIds: string[] },
): Promise<string[]> {
  let query = h.db
    .selectFrom('access_requests')
    .select('id')
    .where('relationship_id', '=', relationshipId)
    .where('state', '=', 'pending');
  if (outside) {
    const { privilegeIds, seatIds } = outside;
    // A relationship keeps at least one privilege, so `privilegeIds` is never empty.
    query = query.where((eb) =>
      seatIds.length > 0
        ? eb.or([eb('privilege_id', 'not in', privilegeIds), eb('principal_id', 'in', seatIds)])
        : eb('privilege_id', 'not in', privilegeIds),
    );
  }
  return (await query.orderBy('id').execute()).map((r) => r.id);
}

/**
 * Seats (principals of the customer tenant standing for a provider operator) whose operator is
 * a member of none of `groupIds` in the provider tenant.
 */
export async function listSeatsOutsideGroups(
  h: StoreHandle,
  customerTenantId: string,
  providerTenantId: string,
  groupIds: string[],
): Promise<string[]> {
  const rows = await h.db
    .selectFrom('principals')
    .select('id')
    .where('tenant_id', '=', customerTenantId)
    .where('home_tenant_id', '=', providerTenantId)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('group_members')
            .select('group_members.principal_id')
            .whereRef('group_members.principal_id', '=', 'principals.home_principal_id')
            .where('group_members.group_id', 'in', groupIds.length > 0 ? groupIds : ['']),
        ),
      ),
    )
    .execute();
  return rows.map((r) => r.id);
}

/** The seats a provider's operators hold in a customer tenant. */
export async function listSeatIdsOf(
  h: StoreHandle,
  customerTenantId: string,
  providerTenantId: string,
): Promise<string[]> {
  const rows = await h.db
    .selectFrom('principals')
    .select('id')
    .where('tenant_id', '=', customerTenantId)
    .where('home_tenant_id', '=', providerTenantId)
    .limit(10_000)
    .execute();
  return rows.map((r) => r.id);
}
