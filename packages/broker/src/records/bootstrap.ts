import { TetherError } from '@tether-broker/protocol';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { GENESIS_HASH } from '../audit/chain.js';
import { insertAuditHead, recordAudit } from '../audit/record.js';
import type { Clock } from '../domain/clock.js';
import { newId } from '../domain/ids.js';
import type { Principal, Tenant } from '../domain/principal.js';
import { inTransaction, isUniqueViolation, type StoreHandle } from '../store/database.js';
import { insertPrincipal, insertPrincipalKey } from '../store/repositories/principals.js';
import { insertTenant } from '../store/repositories/tenants.js';
import { acceptPublicKey } from './principals.js';

export interface TenantBootstrap {
  tenantName: string;
  displayName?: string | undefined;
  timeZone?: string | undefined;
  adminName: string;
}

export interface Bootstrapped {
  tenant: Tenant;
  admin: Principal;
  /** The admin's private key: returned once, to be written 0600 by the operator's tool. Never stored. */
  adminPrivateJwk: JWK;
}

export function assertTimeZone(zone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    throw new TetherError('invalid_request', `unknown time zone ${JSON.stringify(zone)}`);
  }
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
  const timeZone = input.timeZone ?? 'UTC';
  assertTimeZone(timeZone);
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const { kid, publicJwk } = await acceptPublicKey((await exportJWK(publicKey)) as Record<string, unknown>);
  const adminPrivateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' };
  const now = clock.now();
  const tenant: Tenant = {
    id: newId('tenant'),
    name: input.tenantName,
    displayName: input.displayName ?? input.tenantName,
    timeZone,
    createdAt: now,
  };
  const admin: Principal = {
    id: newId('principal'),
    tenantId: tenant.id,
    name: input.adminName,
    kind: 'human',
    enabled: true,
    roles: ['admin'],
    attributes: {},
    createdAt: now,
    updatedAt: now,
  };
  await inTransaction(store, async (tx) => {
    try {
      await insertTenant(tx, tenant);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a tenant named ${input.tenantName} already exists`);
      throw err;
    }
    await insertAuditHead(tx, tenant.id, GENESIS_HASH);
    await insertPrincipal(tx, admin);
    await insertPrincipalKey(tx, tenant.id, { principalId: admin.id, kid, publicJwk, createdAt: now });
    await recordAudit(tx, tenant.id, now, {
      actor: 'operator',
      action: 'tenant.created',
      target: tenant.id,
      outcome: 'success',
      details: { name: tenant.name, time_zone: timeZone },
    });
    await recordAudit(tx, tenant.id, now, {
      actor: 'operator',
      action: 'principal.created',
      target: admin.id,
      outcome: 'success',
      principalId: admin.id,
      details: { name: admin.name, kind: admin.kind, roles: admin.roles, keys: [kid] },
    });
  });
  return { tenant, admin, adminPrivateJwk };
}
