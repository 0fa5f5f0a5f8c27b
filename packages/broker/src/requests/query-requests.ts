import { type RequestState, TetherError } from '@tether-broker/protocol';
import type { BrokerContext, Caller } from '../core/context.js';
import { resolvePrincipal, resolvePrivilege, resolveRequest } from '../core/resolve.js';
import { type AccessRequest, expire, type Review } from '../domain/request.js';
import { listRequests, listReviews } from '../store/repositories/requests.js';

/** What a reader sees: a pending request past its deadline reads as expired even before the sweeper writes it. */
function asSeen(request: AccessRequest, now: number): AccessRequest {
  return expire(request, now) ?? request;
}

export async function getRequest(
  ctx: BrokerContext,
  caller: Caller,
  id: string,
): Promise<{ request: AccessRequest; reviews: Review[] }> {
  const request = await resolveRequest(ctx.store, caller.tenant.id, id);
  const reviews = await listReviews(ctx.store, caller.tenant.id, request.id);
  return { request: asSeen(request, ctx.clock.now()), reviews };
}

export interface RequestQuery {
  state?: RequestState | undefined;
  principal?: string | undefined;
  privilege?: string | undefined;
  ticket?: string | undefined;
  limit?: number | undefined;
}

export async function findRequests(
  ctx: BrokerContext,
  caller: Caller,
  q: RequestQuery,
): Promise<AccessRequest[]> {
  const tenantId = caller.tenant.id;
  const principalId = q.principal ? (await resolvePrincipal(ctx.store, tenantId, q.principal)).id : undefined;
  const privilegeId = q.privilege ? (await resolvePrivilege(ctx.store, tenantId, q.privilege)).id : undefined;
  const now = ctx.clock.now();
  const limit = q.limit ?? 100;
  if (limit < 1) throw new TetherError('invalid_request', 'limit must be at least 1');
  const rows = await listRequests(ctx.store, tenantId, {
    ...(q.state ? { state: q.state } : {}),
    ...(principalId ? { principalId } : {}),
    ...(privilegeId ? { privilegeId } : {}),
    ...(q.ticket ? { ticket: q.ticket } : {}),
    now,
    limit,
  });
  return rows.map((r) => asSeen(r, now));
}
