import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { assertTimeZone, createTenantWithAdmin } from '../core/new-tenant.js';
import { acceptPublicKey } from '../core/public-keys.js';
import type { Clock } from '../domain/clock.js';
import type { Principal, Tenant } from '../domain/principal.js';
import type { StoreHandle } from '../store/database.js';

export { assertTimeZone };

export interface TenantBootstrap {
  tenantName: string;
  displayName?: string | undefined;
  timeZone?: string | undefined;
  adminName: string;
  /** `provider` for an MSP's own tenant (it onboards customers); `standalone` otherwise. */
  kind?: 'standalone' | 'provider' | undefined;
}

export interface Bootstrapped {
  tenant: Tenant;
  admin: Principal;
  /** The admin's private key: returned once, to be written 0600 by the operator's tool. Never stored. */
  adminPrivateJwk: JWK;
}

/**
 * Creates a tenant, its audit chain and its first admin with a fresh Ed25519 key. Run where
 * the store is (`tether init`): there is no standing root token to do this over the API.
 */
export async function bootstrapTenant(
  store: StoreHandle,
  clock: Clock,
  input: TenantBootstrap,
): Promise<Bootstrapped> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const adminKey = await acceptPublicKey((await exportJWK(publicKey)) as Record<string, unknown>);
  const adminPrivateJwk = { ...(await exportJWK(privateKey)), kid: adminKey.kid, alg: 'EdDSA' };
  const { tenant, admin } = await createTenantWithAdmin(store, clock.now(), {
    ...input,
    kind: input.kind ?? 'standalone',
    providerTenantId: null,
    adminKey,
    actor: 'operator',
  });
  return { tenant, admin, adminPrivateJwk };
}
