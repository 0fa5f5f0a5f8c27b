import { type Role, TetherError } from '@tether-broker/protocol';
import { hasRole } from '../domain/principal.js';
import type { Caller } from './context.js';

/** Administration is by role within the caller's own tenant. */
export function requireRole(caller: Caller, ...roles: Role[]): void {
  if (!roles.some((role) => hasRole(caller.principal, role))) {
    throw new TetherError('forbidden', `this needs the ${roles.join(' or ')} role`);
  }
}

/**
 * The one answer for a session the caller may not see and for one that does not exist (in this
 * tenant or at all): same code, same words, so that a refusal never tells a session exists.
 */
export function noSuchSession(id: string): TetherError {
  return new TetherError('not_found', `no session ${JSON.stringify(id)} in this tenant`);
}

/** Admins and auditors see every session of their tenant; anyone else only their own. */
export function seesAllSessions(caller: Caller): boolean {
  return hasRole(caller.principal, 'admin') || hasRole(caller.principal, 'auditor');
}

/**
 * Throws {@link noSuchSession} unless `session` exists in the caller's tenant and the caller may
 * see it: what a caller may not read, it may not learn exists by acting on it either.
 */
export function assertSessionVisible(
  session: { tenantId: string; principalId: string } | undefined,
  caller: Caller,
  id: string,
): asserts session is NonNullable<typeof session> {
  if (
    !session ||
    session.tenantId !== caller.tenant.id ||
    (session.principalId !== caller.principal.id && !seesAllSessions(caller))
  )
    throw noSuchSession(id);
}
