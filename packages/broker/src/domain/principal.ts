import type { PrincipalKind, Role } from '@tether-broker/protocol';
import type { ContractWindow } from './contract.js';

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
  /** The contract window the principal may act in (see domain/contract.ts); absent: no bounds. */
  contract?: ContractWindow | undefined;
  /**
   * A provider operator's seat in a customer tenant (issue 14): the operator it stands for, in
   * the provider tenant. A seat authenticates with its home principal's keys, is usable only
   * while a relationship covers it, and holds no role.
   */
  home?: PrincipalHome | undefined;
}

/** Where a seat's operator lives. */
export interface PrincipalHome {
  tenantId: string;
  principalId: string;
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

/** `standalone`: made by `tether init`; `provider`: an MSP; `customer`: one of a provider's customers. */
export type TenantKind = 'standalone' | 'provider' | 'customer';

export interface Tenant {
  id: string;
  name: string;
  displayName: string;
  timeZone: string;
  createdAt: number;
  kind: TenantKind;
  /** A customer's provider tenant; null for the others. */
  providerTenantId: string | null;
}

export function hasRole(principal: Pick<Principal, 'roles'>, role: Role): boolean {
  return principal.roles.includes(role);
}

/** Private members of a JWK, across key types. Their presence makes a key unacceptable here. */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

export function hasPrivateMembers(jwk: Record<string, unknown>): boolean {
  return PRIVATE_JWK_MEMBERS.some((m) => m in jwk);
}
