import { noSuchSession } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { resolvePrincipal, resolvePrivilege } from '../core/resolve.js';
import { hasRole } from '../domain/principal.js';
import type { Session } from '../domain/session.js';
import { findSession, listSessions } from '../store/repositories/sessions.js';

const seesAll = (caller: Caller) =>
  hasRole(caller.principal, 'admin') || hasRole(caller.principal, 'auditor');

/**
 * A session, for its holder, admins and auditors. Anyone else gets exactly the answer for a
 * session that does not exist: reading someone else's session is no existence oracle.
 */
export async function getSession(ctx: BrokerContext, caller: Caller, id: string): Promise<Session> {
  const session = await findSession(ctx.store, caller.tenant.id, id);
  if (!session || (!seesAll(caller) && session.principalId !== caller.principal.id)) throw noSuchSession(id);
  return session;
}

export interface SessionQuery {
  state?: 'active' | 'ended' | undefined;
  principal?: string | undefined;
  privilege?: string | undefined;
  ticket?: string | undefined;
  limit?: number | undefined;
}

/** Admins and auditors see the tenant's sessions; anyone else sees their own. */
export async function findSessions(ctx: BrokerContext, caller: Caller, q: SessionQuery): Promise<Session[]> {
  const tenantId = caller.tenant.id;
  const principalId = seesAll(caller)
    ? q.principal
      ? (await resolvePrincipal(ctx.store, tenantId, q.principal)).id
      : undefined
    : caller.principal.id;
  const privilegeId = q.privilege ? (await resolvePrivilege(ctx.store, tenantId, q.privilege)).id : undefined;
  return listSessions(ctx.store, tenantId, {
    ...(q.state ? { state: q.state } : {}),
    ...(principalId ? { principalId } : {}),
    ...(privilegeId ? { privilegeId } : {}),
    ...(q.ticket ? { ticket: q.ticket } : {}),
    limit: q.limit ?? 100,
  });
}
