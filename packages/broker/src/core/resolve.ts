import { TetherError } from '@tether-broker/protocol';
import { isIdOf } from '../domain/ids.js';
import type { Group, Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import type { AccessRequest } from '../domain/request.js';
import type { StoreHandle } from '../store/database.js';
import { findGroup, findGroupByName } from '../store/repositories/groups.js';
import { findPrincipal, findPrincipalByName } from '../store/repositories/principals.js';
import { findPrivilege, findPrivilegeByName } from '../store/repositories/privileges.js';
import { findRequest } from '../store/repositories/requests.js';

/** Records are addressed by id or by name; both stay inside the caller's tenant. */
export async function resolvePrincipal(h: StoreHandle, tenantId: string, ref: string): Promise<Principal> {
  const found = isIdOf('principal', ref)
    ? await findPrincipal(h, tenantId, ref)
    : await findPrincipalByName(h, tenantId, ref);
  if (!found) throw new TetherError('not_found', `no principal ${JSON.stringify(ref)} in this tenant`);
  return found;
}

export async function resolveGroup(h: StoreHandle, tenantId: string, ref: string): Promise<Group> {
  const found = isIdOf('group', ref)
    ? await findGroup(h, tenantId, ref)
    : await findGroupByName(h, tenantId, ref);
  if (!found) throw new TetherError('not_found', `no group ${JSON.stringify(ref)} in this tenant`);
  return found;
}

export async function resolvePrivilege(h: StoreHandle, tenantId: string, ref: string): Promise<Privilege> {
  const found = isIdOf('privilege', ref)
    ? await findPrivilege(h, tenantId, ref)
    : await findPrivilegeByName(h, tenantId, ref);
  if (!found) throw new TetherError('not_found', `no privilege ${JSON.stringify(ref)} in this tenant`);
  return found;
}

export async function resolveRequest(h: StoreHandle, tenantId: string, id: string): Promise<AccessRequest> {
  const found = isIdOf('request', id) ? await findRequest(h, tenantId, id) : undefined;
  if (!found) throw new TetherError('not_found', `no request ${JSON.stringify(id)} in this tenant`);
  return found;
}
