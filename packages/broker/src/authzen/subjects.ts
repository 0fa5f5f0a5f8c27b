import type { Static } from '@sinclair/typebox';
import { findEntitlement } from '@tether-broker/pep';
import type { AuthzenSubject } from '@tether-broker/protocol/api';
import type { BrokerContext } from '../core/context.js';
import type { Principal } from '../domain/principal.js';
import type { Session } from '../domain/session.js';
import { findPrincipal, findPrincipalByName } from '../store/repositories/principals.js';
import { findSession } from '../store/repositories/sessions.js';
import { PRIVILEGE_DETAIL_TYPE } from '../tokens/access-token.js';

/**
 * The principal an AuthZEN subject names, in `tenantId` only (another tenant's is never found):
 * `session` by the session's holder, `principal` or `user` by name or id; with the session when
 * the subject is one. Undefined `principal` when nothing matches; undefined altogether for a
 * subject type Tether does not know.
 */
export async function resolveSubject(
  ctx: Pick<BrokerContext, 'store'>,
  tenantId: string,
  subject: Static<typeof AuthzenSubject>,
): Promise<{ principal: Principal | undefined; session?: Session } | undefined> {
  if (subject.type === 'session') {
    const session = await findSession(ctx.store, tenantId, subject.id);
    if (!session) return { principal: undefined };
    return { principal: await findPrincipal(ctx.store, tenantId, session.principalId), session };
  }
  if (subject.type === 'principal' || subject.type === 'user')
    return {
      principal:
        (await findPrincipalByName(ctx.store, tenantId, subject.id)) ??
        (await findPrincipal(ctx.store, tenantId, subject.id)),
    };
  return undefined;
}

/** Whether a grant (a session's, or a privilege's) covers `action` on `resource`, as a PEP judges it. */
export function grantCovers(
  grant: { privilege: string; actions: string[]; resources: string[] },
  action: string,
  resource: string,
): boolean {
  const detail = {
    type: PRIVILEGE_DETAIL_TYPE,
    privilege: grant.privilege,
    actions: grant.actions,
    resources: grant.resources,
  } as const;
  return findEntitlement([detail], action, resource) !== undefined;
}
