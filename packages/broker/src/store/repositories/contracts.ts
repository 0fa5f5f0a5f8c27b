import type { ContractWindow } from '../../domain/contract.js';
import type { StoreHandle } from '../database.js';

/**
 * The questions contract windows ask of the store (see domain/contract.ts). Each answers ids
 * (and the contract that selected them): the caller locks each row and judges it again before
 * it changes it.
 */

/**
 * Active sessions of principals out of their contract at `now` that were still live when it
 * ended (or whose contract has not started): those end `contract_ended`. A session whose own
 * hard expiry came first is left to the expiry sweep (`expired`). Parents before sub-sessions.
 */
export async function listSessionsOutOfContract(
  h: StoreHandle,
  now: number,
  limit: number,
): Promise<{ id: string; contract: ContractWindow }[]> {
  const rows = await h.db
    .selectFrom('sessions')
    .innerJoin('principals', 'principals.id', 'sessions.principal_id')
    .select(['sessions.id', 'principals.contract_starts_at', 'principals.contract_ends_at'])
    .where('sessions.state', '=', 'active')
    .where((eb) =>
      eb.or([
        eb.and([
          eb('principals.contract_ends_at', '<=', now),
          eb('sessions.hard_expires_at', '>=', eb.ref('principals.contract_ends_at')),
        ]),
        eb('principals.contract_starts_at', '>', now),
      ]),
    )
    .orderBy('sessions.delegation_depth')
    .orderBy('sessions.id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    contract: { startsAt: r.contract_starts_at, endsAt: r.contract_ends_at },
  }));
}

/** Pending requests (access and extension) of principals out of their contract at `now`. */
export async function listPendingOutOfContract(
  h: StoreHandle,
  now: number,
  limit: number,
): Promise<{ id: string; tenantId: string; contract: ContractWindow }[]> {
  const rows = await h.db
    .selectFrom('access_requests')
    .innerJoin('principals', 'principals.id', 'access_requests.principal_id')
    .select([
      'access_requests.id',
      'access_requests.tenant_id',
      'principals.contract_starts_at',
      'principals.contract_ends_at',
    ])
    .where('access_requests.state', '=', 'pending')
    .where((eb) =>
      eb.or([eb('principals.contract_ends_at', '<=', now), eb('principals.contract_starts_at', '>', now)]),
    )
    .orderBy('access_requests.id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    tenantId: r.tenant_id,
    contract: { startsAt: r.contract_starts_at, endsAt: r.contract_ends_at },
  }));
}

/** Ids of the principal's pending requests, in id order (the order they are locked in). */
export async function listPendingRequestIdsOf(
  h: StoreHandle,
  tenantId: string,
  principalId: string,
): Promise<string[]> {
  const rows = await h.db
    .selectFrom('access_requests')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('principal_id', '=', principalId)
    .where('state', '=', 'pending')
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Ids of the principal's active sessions, or of those whose hard expiry passes `endsAt` when given. */
export async function listLiveSessionIdsOf(
  h: StoreHandle,
  tenantId: string,
  principalId: string,
  endsAt?: number,
): Promise<string[]> {
  let query = h.db
    .selectFrom('sessions')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('principal_id', '=', principalId)
    .where('state', '=', 'active');
  if (endsAt !== undefined) query = query.where('hard_expires_at', '>', endsAt);
  const rows = await query.orderBy('delegation_depth').orderBy('id').execute();
  return rows.map((r) => r.id);
}
