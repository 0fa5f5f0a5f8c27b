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
  // From the principals out of contract (few), then their active sessions through the
  // (tenant, principal) index: a join led by sessions read every active session on every sweep
  // (35–218 ms at 100k live sessions on SQLite, with the broker's one connection held).
  const outOf = await h.db
    .selectFrom('principals')
    .select(['id', 'tenant_id', 'contract_starts_at', 'contract_ends_at'])
    .where((eb) => eb.or([eb('contract_ends_at', '<=', now), eb('contract_starts_at', '>', now)]))
    .execute();
  const found: { id: string; depth: number; contract: ContractWindow }[] = [];
  for (const p of outOf) {
    let q = h.db
      .selectFrom('sessions')
      .select(['id', 'delegation_depth'])
      .where('tenant_id', '=', p.tenant_id)
      .where('principal_id', '=', p.id)
      .where('state', '=', 'active');
    // Ended contract: only sessions still live when it ended (the expiry sweep takes the rest).
    if (p.contract_ends_at !== null && p.contract_ends_at <= now)
      q = q.where('hard_expires_at', '>=', p.contract_ends_at);
    for (const s of await q.orderBy('id').limit(limit).execute())
      found.push({
        id: s.id,
        depth: s.delegation_depth,
        contract: { startsAt: p.contract_starts_at, endsAt: p.contract_ends_at },
      });
  }
  // Parents before sub-sessions, then by id, as many as the sweep takes.
  return found
    .sort((a, b) => a.depth - b.depth || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, limit)
    .map(({ id, contract }) => ({ id, contract }));
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
