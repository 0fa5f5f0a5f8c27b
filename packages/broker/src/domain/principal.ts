import type { PrincipalKind, Role } from '@tether-broker/protocol';

export interface Principal {
  id: string;
  tenantId: string;
  name: string;
  kind: PrincipalKind;
  enabled: boolean;
  roles: Role[];
  attributes: Record<string, string>;
  createdAt: number;
  updatedAt: number;
}

/** A registered public key (RFC 7638 thumbprint as `kid`). */
export interface PrincipalKey {
  principalId: string;
  kid: string;
  publicJwk: Record<string, unknown>;
  createdAt: number;
}

export interface Group {
  id: string;
  tenantId: string;
  name: string;
  description: string;
  createdAt: number;
}

export interface Tenant {
  id: string;
  name: string;
  displayName: string;
  timeZone: string;
  createdAt: number;
}

export function hasRole(principal: Pick<Principal, 'roles'>, role: Role): boolean {
  return principal.roles.includes(role);
}

/** Private members of a JWK, across key types. Their presence makes a key unacceptable here. */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

export function hasPrivateMembers(jwk: Record<string, unknown>): boolean {
  return PRIVATE_JWK_MEMBERS.some((m) => m in jwk);
}
