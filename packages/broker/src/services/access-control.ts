import { type Role, TetherError } from '@tether/protocol';
import { hasRole } from '../domain/principal.js';
import type { Caller } from './context.js';

/** Administration is by role within the caller's own tenant. */
export function requireRole(caller: Caller, ...roles: Role[]): void {
  if (!roles.some((role) => hasRole(caller.principal, role))) {
    throw new TetherError('forbidden', `this needs the ${roles.join(' or ')} role`);
  }
}
